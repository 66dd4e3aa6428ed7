//! What happened during an operation, carried in the final response's extensions.

use std::time::Duration;

use http::{StatusCode, Uri};

/// How the operation's progress was monitored (PROTOCOL §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MonitorKind {
    /// A status monitor named by `Azure-AsyncOperation` (the name
    /// [`FinalStateVia::AzureAsyncOperation`](crate::FinalStateVia::AzureAsyncOperation) uses
    /// too).
    AzureAsyncOperation,
    /// A status monitor named by `Operation-Location` (the data-plane form).
    OperationLocation,
    /// The `Location` of a `202 Accepted`: 202 while running, the result when done.
    Location,
    /// The resource itself, by its `provisioningState`.
    Resource,
    /// A Google `Operation` resource (AIP-151), polled at `{version}/{name}`.
    GoogleOperation,
    /// A monitor of a dialect outside this crate, by the dialect's name for it.
    Other(&'static str),
}

impl MonitorKind {
    /// The former name of [`MonitorKind::AzureAsyncOperation`].
    #[deprecated(
        since = "0.2.0",
        note = "renamed to `MonitorKind::AzureAsyncOperation`"
    )]
    #[allow(non_upper_case_globals)]
    pub const AsyncOperation: MonitorKind = MonitorKind::AzureAsyncOperation;

    /// A short lowercase name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            MonitorKind::AzureAsyncOperation => "azure-async-operation",
            MonitorKind::OperationLocation => "operation-location",
            MonitorKind::Location => "location",
            MonitorKind::Resource => "resource",
            MonitorKind::GoogleOperation => "google-operation",
            MonitorKind::Other(name) => name,
        }
    }
}

/// What the layer did to reach a response, found in the final response's extensions and in
/// errors ([`Error::operation`](crate::Error::operation)).
///
/// Only responses of operations the layer followed carry one: a response returned untouched
/// because it was not long-running has none.
///
/// ```
/// # fn check(resp: http::Response<()>) {
/// if let Some(info) = resp.extensions().get::<tower_lro::OperationInfo>() {
///     println!("{} polls of {} over {:?}", info.polls, info.monitor_url, info.elapsed);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OperationInfo {
    /// The kind of monitor followed.
    pub monitor: MonitorKind,
    /// The monitor URL: the one polled last, or the one a "running" answer moved the operation
    /// to.
    pub monitor_url: Uri,
    /// Status requests sent to the monitor, transient retries included; the final GET is not a
    /// poll.
    pub polls: u32,
    /// Time from the call to the layer until this information was taken.
    pub elapsed: Duration,
    /// The last `status` or `provisioningState` the server reported, as it spelled it.
    pub status: Option<String>,
    /// The HTTP status of the last monitor response.
    pub last_http_status: Option<StatusCode>,
    /// The last `percentComplete` the server reported.
    pub percent_complete: Option<f64>,
    /// The operation's `id` from its status body, when it had one.
    pub operation_id: Option<String>,
    /// The operation's `name` from its status body, when it had one.
    pub operation_name: Option<String>,
    /// The URI of the final GET, when one was made.
    pub final_uri: Option<Uri>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn the_former_name_still_compiles_in_expressions_and_patterns() {
        assert_eq!(
            MonitorKind::AsyncOperation,
            MonitorKind::AzureAsyncOperation
        );
        let named = match MonitorKind::AzureAsyncOperation {
            MonitorKind::AsyncOperation => "the same kind",
            _ => "another",
        };
        assert_eq!(named, "the same kind");
        assert_eq!(
            MonitorKind::AsyncOperation.as_str(),
            "azure-async-operation"
        );
    }
}
