//! What has been observed of an operation being followed: its monitor, counters and the last
//! things the server said. It builds [`OperationInfo`] and [`ResumeToken`]s.

use std::time::Duration;

use http::{StatusCode, Uri};

use crate::config::Config;
use crate::dialect::{Dialect, Observed};
use crate::future::original::Original;
use crate::info::OperationInfo;
use crate::protocol::trace_context::TraceContext;
use crate::protocol::url;
use crate::token::{CancelSpec, ResumeToken, Snapshot};

/// What the next request is.
#[derive(Debug)]
pub(crate) enum Target {
    Poll,
    Final(Uri),
    /// The cancel request, sent once; polling follows when the server takes it.
    Cancel,
}

/// An operation being followed. Exists only once a monitor is known, so everything that needs
/// one has it.
pub(crate) struct Ledger<M> {
    pub(crate) monitor: M,
    pub(crate) kind: &'static str,
    /// The URL polled: admitted, and where a "running" answer moved the monitor.
    pub(crate) url: Uri,
    /// The reference the URL was last taken from, so a repeat of it is not admitted again.
    pub(crate) reference: Option<Vec<u8>>,
    pub(crate) target: Target,
    pub(crate) polls: u32,
    /// Transient failures in a row.
    pub(crate) retries: u32,
    /// Waits without a server hint, which the default delay doubles over.
    pub(crate) unhinted_waits: u32,
    /// Whether the wait scheduled last is the server's hint (clamped), not the layer's own
    /// delay or a retry backoff: what a token's `next_poll_hinted` reports.
    pub(crate) hinted: bool,
    pub(crate) observed: Observed,
    pub(crate) last_http_status: Option<StatusCode>,
    pub(crate) final_uri: Option<Uri>,
    /// How the token this operation was resumed from said to cancel it (the caller's
    /// `CancelVia` when it started, or its dialect's request then): kept for the tokens taken
    /// from now on.
    pub(crate) carried_cancel: Option<CancelSpec>,
    /// The W3C trace context of the operation's start, which every token carries on: captured
    /// when the operation started here, or the resumed token's.
    pub(crate) trace: Option<TraceContext>,
}

impl<M> Ledger<M> {
    pub(crate) fn new(
        monitor: M,
        kind: &'static str,
        url: Uri,
        reference: Option<Vec<u8>>,
    ) -> Self {
        Ledger {
            monitor,
            kind,
            url,
            reference,
            target: Target::Poll,
            polls: 0,
            retries: 0,
            unhinted_waits: 0,
            hinted: false,
            observed: Observed::default(),
            last_http_status: None,
            final_uri: None,
            carried_cancel: None,
            trace: None,
        }
    }

    pub(crate) fn info(&self, elapsed: Duration) -> OperationInfo {
        OperationInfo {
            monitor: self.kind,
            monitor_url: self.url.clone(),
            polls: self.polls,
            elapsed,
            state: self.observed.state.clone(),
            last_http_status: self.last_http_status,
            percent_complete: self.observed.percent_complete,
            operation_id: self.observed.operation_id.clone(),
            operation_name: self.observed.operation_name.clone(),
            final_uri: self.final_uri.clone(),
        }
    }

    /// A token to continue the operation, `elapsed` into it, without `config`'s credentials.
    pub(crate) fn token<D>(
        &self,
        dialect: &D,
        original: &Original,
        config: &Config,
        elapsed: Duration,
    ) -> ResumeToken
    where
        D: Dialect<Monitor = M>,
        M: serde::Serialize,
    {
        ResumeToken::new(Snapshot {
            dialect: dialect.token_dialect(&self.monitor),
            // Serialising a dialect's state is not expected to fail; if it did, the token would
            // carry `null` and be refused, with a reason, by the layer that resumes it.
            monitor: dialect.token_state(&self.monitor).unwrap_or_default(),
            monitor_url: &self.url,
            method: &original.method,
            uri: &original.uri,
            final_uri: match &self.target {
                Target::Final(uri) => Some(uri),
                Target::Poll | Target::Cancel => None,
            },
            headers: &original.headers,
            withheld: &config.withheld,
            polls: self.polls,
            retries: self.retries,
            unhinted_waits: self.unhinted_waits,
            elapsed,
            state: self.observed.state.as_deref(),
            cancel: self.cancel(dialect, original),
            trace: self.trace.as_ref(),
        })
    }

    /// How to cancel the operation: the caller's [`CancelVia`](crate::CancelVia), else the
    /// dialect's request, with its URL made absolute; else what the resumed token carried.
    fn cancel<D>(&self, dialect: &D, original: &Original) -> Option<CancelSpec>
    where
        D: Dialect<Monitor = M>,
    {
        // The dialect is asked only when the caller attached no way of its own.
        let (request, base) = match original.cancel_via() {
            Some(via) => (via.0.clone(), &original.uri),
            None => match dialect.cancel(&self.monitor, &self.url) {
                Some(request) => (request, &self.url),
                None => return self.carried_cancel.clone(),
            },
        };
        Some(CancelSpec {
            method: request.method.as_str().to_owned(),
            url: url::resolve(base, &request.url)?,
            body: request.body,
            json: request.json,
        })
    }
}
