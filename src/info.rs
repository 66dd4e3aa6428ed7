//! What happened during an operation, carried in the final response's extensions.

use std::fmt;
use std::time::Duration;

use http::{StatusCode, Uri};

use crate::protocol::redact;

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
///
/// Its `Debug` output redacts the URLs (see
/// [`telemetry::set_redact_urls`](crate::telemetry::set_redact_urls)); the fields hold them whole.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct OperationInfo {
    /// The kind of monitor followed, as its dialect names it (Azure: `"azure-async-operation"`,
    /// `"operation-location"`, `"location"`, `"resource"`; Google: `"google-operation"`).
    pub monitor: &'static str,
    /// The monitor URL: the one polled last, or the one a "running" answer moved the operation
    /// to.
    pub monitor_url: Uri,
    /// Status requests sent to the monitor, transient retries included; the final GET is not a
    /// poll.
    pub polls: u32,
    /// Time from the call to the layer until this information was taken.
    pub elapsed: Duration,
    /// The operation's state as the server last reported it, spelled as it spelled it: Azure's
    /// `status` or `provisioningState` (`"InProgress"`), Google's `done` as `"running"`/`"done"`
    /// ("status" in this crate always means an HTTP status).
    pub state: Option<String>,
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

impl fmt::Debug for OperationInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |uri: &Uri| redact::url(&uri.to_string()).into_owned();
        f.debug_struct("OperationInfo")
            .field("monitor", &self.monitor)
            .field("monitor_url", &shown(&self.monitor_url))
            .field("polls", &self.polls)
            .field("elapsed", &self.elapsed)
            .field("state", &self.state)
            .field("last_http_status", &self.last_http_status)
            .field("percent_complete", &self.percent_complete)
            .field("operation_id", &self.operation_id)
            .field("operation_name", &self.operation_name)
            .field("final_uri", &self.final_uri.as_ref().map(shown))
            .finish()
    }
}
