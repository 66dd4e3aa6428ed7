//! What an operation tells the world while it runs: spans and events (feature `tracing`),
//! metrics (feature `metrics`: `OPERATIONS_ACTIVE` and the rest, with their recommended
//! `DURATION_BUCKETS`), and the names every span, field and metric is recorded under. The whole list, with what each
//! means, is docs/OBSERVABILITY.md; a test keeps the two equal.
//!
//! Every URL recorded is redacted first (query values but `api-version` hidden, userinfo
//! dropped): a monitor URL's `sig=` or `code=` is a credential, and logs are not where
//! credentials belong. [`set_redact_urls`] turns that off for a process, for debugging.
//!
//! ```
//! // The names are the contract between this crate and your dashboards.
//! assert_eq!(tower_lro::telemetry::SPAN_OPERATION, "lro.operation");
//! assert_eq!(tower_lro::telemetry::SPAN_POLL, "lro.poll");
//! ```

use std::time::Duration;

use http::{Method, StatusCode, Uri};

use crate::dialect::Observed;
use crate::error::{Error, ErrorKind};
#[cfg(feature = "tracing")]
use crate::protocol::redact;
use crate::protocol::trace_context::TraceContext;

#[cfg(feature = "opentelemetry")]
mod otel;

#[cfg(feature = "metrics")]
mod metrics;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use self::metrics::{
    describe_metrics, DURATION_BUCKETS, OPERATIONS, OPERATIONS_ACTIVE, OPERATION_DURATION, POLLS,
    WAIT, WAIT_BUCKETS,
};

/// The span of one operation, from the original request to the final response or error
/// (`INFO`). A resumed operation's span is one too, with `lro.resumed = true`.
pub const SPAN_OPERATION: &str = "lro.operation";
/// The span of one step of an operation ([`LongRunning::step`](crate::LongRunning::step)), `INFO`.
pub const SPAN_STEP: &str = "lro.step";
/// The span of a cancel request and the polls after it
/// ([`ResumeToken::into_cancel_request`](crate::ResumeToken::into_cancel_request)), `INFO`.
pub const SPAN_CANCEL: &str = "lro.cancel";
/// The span of one poll or final GET, a child of the operation's span, entered while the inner
/// service runs (`INFO`): spans of the layers below nest under it.
pub const SPAN_POLL: &str = "lro.poll";
/// The event of a transient failure that is retried (`WARN`), in the poll's span.
pub const EVENT_RETRY: &str = "lro.retry";

/// Whether URLs are redacted wherever this crate records or shows them: spans, events, and the
/// `Debug` and `Display` of [`Error`], [`ResumeToken`](crate::ResumeToken) and
/// [`OperationInfo`](crate::OperationInfo). On by default.
///
/// Redaction hides every query value but `api-version`'s and drops userinfo, because a monitor
/// URL often carries a credential (an Azure SAS `sig=`, a Durable Functions `code=`, a signed
/// Google URL's `X-Goog-Signature=`). Turn it off only where logs are as private as the
/// credentials themselves, e.g. while debugging locally; it applies to the whole process.
///
/// ```
/// tower_lro::telemetry::set_redact_urls(false);
/// assert!(!tower_lro::telemetry::redacts_urls());
/// tower_lro::telemetry::set_redact_urls(true);
/// ```
pub fn set_redact_urls(redact: bool) {
    crate::protocol::redact::set_enabled(redact);
}

/// Whether URLs are redacted (see [`set_redact_urls`]).
pub fn redacts_urls() -> bool {
    crate::protocol::redact::enabled()
}

/// How an operation future came to follow its operation: what its span is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// From its original request.
    Original,
    /// An operation resumed from a token.
    Resumed,
    /// One step of an operation.
    Step,
    /// A cancel request and the polls after it.
    Cancel,
}

/// How a poll was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollResult {
    /// Still running.
    Running,
    /// The operation ended (succeeded, failed or canceled), or the final GET answered.
    Done,
    /// A transient failure, retried or not.
    Transient,
    /// An answer the protocol does not allow here, or that could not be judged.
    Unexpected,
}

impl PollResult {
    #[cfg(feature = "tracing")]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            PollResult::Running => "running",
            PollResult::Done => "done",
            PollResult::Transient => "transient",
            PollResult::Unexpected => "unexpected",
        }
    }
}

/// How an operation future ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeeded,
    Failed,
    Canceled,
    TimedOut,
    /// The layer could not follow the operation to its end (any other error).
    Error,
    /// The future ended while the operation runs on: a step that waits, or an operation handed
    /// back by `Polling::AcceptOnly`.
    Running,
    /// The response was not a long-running operation's: returned untouched.
    NotLongRunning,
}

impl Outcome {
    pub(crate) fn of<B>(result: &Result<B, Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Succeeded,
            Err(e) => Outcome::of_error(e),
        }
    }

    pub(crate) fn of_error(error: &Error) -> Outcome {
        match error.kind() {
            ErrorKind::Failed => Outcome::Failed,
            ErrorKind::Canceled => Outcome::Canceled,
            ErrorKind::TimedOut => Outcome::TimedOut,
            _ => Outcome::Error,
        }
    }

    #[cfg(feature = "tracing")]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Canceled => "canceled",
            Outcome::TimedOut => "timed_out",
            Outcome::Error => "error",
            Outcome::Running => "running",
            Outcome::NotLongRunning => "not_long_running",
        }
    }
}

/// The telemetry of one operation future: its span, the span of the request in flight, and
/// (feature `metrics`) its instruments. Every method is a no-op for what is compiled out, and
/// costs a check of the subscriber's interest for what is compiled in but not listened to.
pub(crate) struct Telemetry {
    #[cfg(feature = "tracing")]
    operation: tracing::Span,
    #[cfg(feature = "tracing")]
    request: tracing::Span,
    /// Whether an operation is known (its monitor found, or a token adopted).
    followed: bool,
    /// Whether a poll or final GET was sent and its answer is not judged yet.
    pending: bool,
    /// Whether the request in flight is the final GET, which `lro.client.polls` does not count
    /// (as `OperationInfo::polls` does not).
    #[cfg(feature = "metrics")]
    final_get: bool,
    /// From when the operation is known.
    #[cfg(feature = "metrics")]
    metrics: Option<metrics::OperationMetrics>,
}

impl Telemetry {
    /// The telemetry of a future about to send `method uri` (the original request, or the first
    /// request of a resumed, stepped or canceled operation) for `dialect`.
    pub(crate) fn start(dialect: &'static str, start: Start, method: &Method, uri: &Uri) -> Self {
        #[cfg(not(feature = "tracing"))]
        let _ = (dialect, start, method, uri);
        Telemetry {
            #[cfg(feature = "tracing")]
            operation: spans::operation(dialect, start, method, uri),
            #[cfg(feature = "tracing")]
            request: tracing::Span::none(),
            followed: false,
            pending: false,
            #[cfg(feature = "metrics")]
            final_get: false,
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }

    /// Telemetry that records nothing: a future that follows nothing (polling disabled), or
    /// before it knows what it follows.
    pub(crate) fn none() -> Self {
        Telemetry {
            #[cfg(feature = "tracing")]
            operation: tracing::Span::none(),
            #[cfg(feature = "tracing")]
            request: tracing::Span::none(),
            followed: false,
            pending: false,
            #[cfg(feature = "metrics")]
            final_get: false,
            #[cfg(feature = "metrics")]
            metrics: None,
        }
    }

    /// Whether anyone listens to the operation's span. Everything the spans record is behind
    /// this one check, so that an operation no subscriber wants costs next to nothing.
    #[cfg(feature = "tracing")]
    fn traced(&self) -> bool {
        !self.operation.is_disabled()
    }

    /// The span the future is in while it runs (the request's in flight, else the
    /// operation's), entered; `None` when nobody listens.
    #[cfg(feature = "tracing")]
    pub(crate) fn entered(&self) -> Option<tracing::span::EnteredSpan> {
        self.traced().then(|| self.current().clone().entered())
    }

    /// As [`entered`](Self::entered), for a scope that borrows the telemetry.
    #[cfg(feature = "tracing")]
    pub(crate) fn enter(&self) -> Option<tracing::span::Entered<'_>> {
        self.traced().then(|| self.current().enter())
    }

    /// The span to enter while the future runs: the request's in flight, else the operation's.
    #[cfg(feature = "tracing")]
    pub(crate) fn current(&self) -> &tracing::Span {
        if self.request.is_none() {
            &self.operation
        } else {
            &self.request
        }
    }

    /// The W3C trace context of the operation's span, for its tokens to carry: `None` unless
    /// feature `opentelemetry` is on and an OpenTelemetry layer records the span.
    pub(crate) fn start_context(&self) -> Option<TraceContext> {
        #[cfg(feature = "opentelemetry")]
        {
            otel::capture(&self.operation)
        }
        #[cfg(not(feature = "opentelemetry"))]
        None
    }

    /// Links the operation's span (a resumption, a step, a cancel) to the span the operation
    /// started in (feature `opentelemetry`).
    pub(crate) fn link_to_start(&self, start: &TraceContext) {
        #[cfg(feature = "opentelemetry")]
        otel::link(&self.operation, start);
        #[cfg(not(feature = "opentelemetry"))]
        let _ = start;
    }

    /// Whether an operation is known.
    pub(crate) fn is_following(&self) -> bool {
        self.followed
    }

    /// The operation is known: its monitor, where it is polled, and the polls a token says were
    /// sent before.
    /// `dialect` is the one that follows it: within a `dialect::Or`, the one that took it.
    pub(crate) fn followed(
        &mut self,
        dialect: &'static str,
        kind: &'static str,
        monitor_url: &Uri,
        polls: u32,
    ) {
        self.followed = true;
        #[cfg(feature = "metrics")]
        if self.metrics.is_none() {
            self.metrics = Some(metrics::OperationMetrics::followed(dialect, kind));
        }
        #[cfg(feature = "tracing")]
        if self.traced() {
            let span = &self.operation;
            span.record("lro.dialect", dialect);
            span.record("lro.monitor.kind", kind);
            let url = monitor_url.to_string();
            span.record("lro.monitor.url", redact::url(&url).as_ref());
            span.record("lro.polls", polls);
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (dialect, kind, monitor_url, polls);
    }

    /// A poll (`final_get` false, `attempt` its number) or the final GET is about to be sent.
    pub(crate) fn request_sent(&mut self, attempt: u32, final_get: bool) {
        self.pending = true;
        #[cfg(feature = "metrics")]
        {
            self.final_get = final_get;
        }
        #[cfg(feature = "tracing")]
        if self.traced() {
            self.request = spans::poll(&self.operation, attempt, final_get);
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (attempt, final_get);
    }

    /// The request in flight was answered with `status`.
    pub(crate) fn answer_status(&mut self, status: StatusCode) {
        #[cfg(feature = "tracing")]
        if self.traced() {
            self.request
                .record("http.response.status_code", status.as_u16());
            self.operation
                .record("http.response.status_code", status.as_u16());
        }
        #[cfg(not(feature = "tracing"))]
        let _ = status;
    }

    /// The answer of the request in flight was judged `result`; `observed` is what the
    /// operation reported so far. Only the first judgement of an answer counts.
    pub(crate) fn poll_result(&mut self, result: PollResult, observed: &Observed) {
        if !std::mem::take(&mut self.pending) {
            return;
        }
        #[cfg(feature = "metrics")]
        if let Some(metrics) = self.metrics.as_mut().filter(|_| !self.final_get) {
            metrics.poll(result);
        }
        #[cfg(feature = "tracing")]
        if self.traced() {
            let span = &self.request;
            span.record("lro.poll.result", result.as_str());
            if let Some(state) = observed.state.as_deref() {
                span.record("lro.state", state);
            }
            if let Some(percent) = observed.percent_complete {
                span.record("lro.percent_complete", percent);
            }
            if let Some(id) = observed.operation_id.as_deref() {
                self.operation.record("lro.operation.id", id);
            }
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (result, observed);
    }

    /// The next request waits `delay`: the server's `hint`, bounded by the layer's delays
    /// (clamped when they changed it), or the layer's own when there was none. An answer not
    /// judged otherwise was a "running" one.
    pub(crate) fn waiting(&mut self, hint: Option<Duration>, delay: Duration, observed: &Observed) {
        self.poll_result(PollResult::Running, observed);
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &mut self.metrics {
            metrics.wait(delay);
        }
        #[cfg(feature = "tracing")]
        if self.traced() {
            // The wait follows the answer of the request in flight, or the initial response.
            let span = self.current();
            if let Some(hint) = hint {
                span.record("lro.wait.hint", hint.as_secs_f64());
            }
            span.record("lro.wait.delay", delay.as_secs_f64());
            span.record("lro.wait.clamped", hint.is_some_and(|h| h != delay));
            tracing::debug!(
                parent: span,
                lro.state = observed.state.as_deref(),
                lro.percent_complete = observed.percent_complete,
                lro.wait.delay = delay.as_secs_f64(),
                "operation running"
            );
            self.request = tracing::Span::none();
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (hint, delay);
    }

    /// Whether [`retrying`](Self::retrying) records anything: building its error costs.
    pub(crate) fn records_retries(&self) -> bool {
        #[cfg(feature = "tracing")]
        {
            tracing::enabled!(tracing::Level::WARN)
        }
        #[cfg(not(feature = "tracing"))]
        false
    }

    /// A transient failure, `error`, is retried after `delay` (`attempt` in a row).
    pub(crate) fn retrying(&mut self, attempt: u32, error: &Error, delay: Duration) {
        #[cfg(feature = "tracing")]
        {
            let parent = self.current();
            tracing::event!(
                name: "lro.retry",
                parent: parent,
                tracing::Level::WARN,
                {
                    lro.retry.attempt = attempt,
                    error = %error,
                    "error.type" = ?error.kind(),
                    lro.wait.delay = delay.as_secs_f64(),
                },
                "transient failure while following an operation; retrying"
            );
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (attempt, error, delay);
    }

    /// The future ends with `outcome` after `polls` polls, `elapsed` into the operation (earlier
    /// steps included); `error` when it is one.
    pub(crate) fn ended(
        &mut self,
        outcome: Outcome,
        error: Option<&Error>,
        polls: u32,
        observed: &Observed,
        elapsed: Duration,
    ) {
        let answered = match outcome {
            Outcome::Succeeded | Outcome::Failed | Outcome::Canceled => PollResult::Done,
            _ => PollResult::Unexpected,
        };
        self.poll_result(answered, observed);
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &mut self.metrics {
            metrics.ended(outcome, elapsed);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = elapsed;
        #[cfg(feature = "tracing")]
        if self.traced() {
            let span = &self.operation;
            span.record("lro.outcome", outcome.as_str());
            if let Some(error) = error {
                span.record("error.type", tracing::field::debug(error.kind()));
                span.record("otel.status_code", "ERROR");
                if let Some(status) = error.status() {
                    span.record("http.response.status_code", status.as_u16());
                }
            }
            if self.followed {
                span.record("lro.polls", polls);
                match error {
                    None => tracing::info!(
                        parent: span,
                        lro.outcome = outcome.as_str(),
                        lro.polls = polls,
                        "long-running operation ended"
                    ),
                    Some(error) => tracing::info!(
                        parent: span,
                        lro.outcome = outcome.as_str(),
                        lro.polls = polls,
                        error = %error,
                        "long-running operation ended"
                    ),
                }
            }
            self.request = tracing::Span::none();
        }
        #[cfg(not(feature = "tracing"))]
        let _ = (outcome, error, polls);
    }
}

#[cfg(feature = "tracing")]
mod spans {
    use http::{Method, Uri};
    use tracing::field::Empty;

    use super::{redact, Start};

    /// One macro call per span name: a span's name is part of its static callsite.
    pub(super) fn operation(
        dialect: &'static str,
        start: Start,
        method: &Method,
        uri: &Uri,
    ) -> tracing::Span {
        macro_rules! span {
            ($name:literal) => {
                tracing::info_span!(
                    $name,
                    lro.dialect = dialect,
                    lro.resumed = start == Start::Resumed,
                    lro.monitor.kind = Empty,
                    lro.monitor.url = Empty,
                    lro.operation.id = Empty,
                    http.request.method = method.as_str(),
                    server.address = uri.host(),
                    url.full = Empty,
                    http.response.status_code = Empty,
                    lro.polls = Empty,
                    lro.outcome = Empty,
                    lro.wait.hint = Empty,
                    lro.wait.delay = Empty,
                    lro.wait.clamped = Empty,
                    "error.type" = Empty,
                    otel.status_code = Empty,
                )
            };
        }
        let span = match start {
            Start::Original | Start::Resumed => span!("lro.operation"),
            Start::Step => span!("lro.step"),
            Start::Cancel => span!("lro.cancel"),
        };
        // Formatting a URL costs: only for a span someone listens to.
        if !span.is_disabled() {
            span.record("url.full", redact::url(&uri.to_string()).as_ref());
        }
        span
    }

    pub(super) fn poll(parent: &tracing::Span, attempt: u32, final_get: bool) -> tracing::Span {
        tracing::info_span!(
            parent: parent,
            "lro.poll",
            lro.poll.attempt = attempt,
            lro.request = if final_get { "final" } else { "poll" },
            http.response.status_code = Empty,
            lro.poll.result = Empty,
            lro.state = Empty,
            lro.percent_complete = Empty,
            lro.wait.hint = Empty,
            lro.wait.delay = Empty,
            lro.wait.clamped = Empty,
        )
    }
}
