//! What a simulated operation does: its monitor, its pace, its hints and how it ends.

use std::time::Duration;

use http::{Method, StatusCode};

/// Which monitor a simulated operation hands out, and so which protocol it speaks.
///
/// [`as_str`](Self::as_str) gives the name tower-lro reports for the same monitor in
/// `OperationInfo::monitor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Monitor {
    /// A status monitor named by `Azure-AsyncOperation`.
    AzureAsyncOperation,
    /// A status monitor named by `Operation-Location` (the data-plane form).
    OperationLocation,
    /// The `Location` of a `202 Accepted`: `202` while running, the result when done.
    Location,
    /// The resource itself, by its `provisioningState`.
    Resource,
    /// A Google `Operation` resource (AIP-151), polled at `/{version}/{name}`.
    GoogleOperation,
    /// An Azure Durable Functions orchestration, through the extension's HTTP API (see
    /// [`Scenario::new`]).
    DurableFunctions,
    /// The Asynchronous Request-Reply pattern's status endpoint (see [`Scenario::new`]).
    AsyncRequestReply,
    /// An OData 4.01 status monitor (Part 1 §11.6), named by the `Location` of a `202` to a
    /// request that said `Prefer: respond-async`; see [`Scenario::new`].
    ODataAsync,
    /// An HL7 FHIR Bulk Data export's status endpoint, named by the `Content-Location` of a
    /// `202` to a kick-off that said `Prefer: respond-async`; see [`Scenario::new`].
    FhirBulkData,
    /// An OpenAI-style job: `POST {path}` answers `200` with a job object (a `batch`, or a
    /// `fine_tuning.job` when the path ends in `/fine_tuning/jobs`, or a `response` when it
    /// ends in `/responses`), polled at `GET {path}/{id}` (`in_progress`, then `completed`,
    /// `succeeded` for fine-tuning, `failed` with the code and message, or `cancelled`),
    /// canceled by `POST {path}/{id}/cancel`. `request_counts` when
    /// [`percent_complete`](Scenario::percent_complete).
    OpenAiJob,
    /// An Anthropic-style message batch: `POST {path}` answers `200` with a `message_batch`
    /// whose `processing_status` is `in_progress`, polled at `GET {path}/{id}` until `ended`
    /// (with a `results_url` of JSON Lines at `{path}/{id}/results`); canceled by
    /// `POST {path}/{id}/cancel` (`canceling`, then `ended`). There is no failed state: an
    /// [`Ending::Failed`] batch ends with every request `errored`.
    AnthropicBatch,
    /// A Replicate-style prediction: `POST {path}` answers `201` with a prediction whose
    /// `urls.get` (`/v1/predictions/{id}`) is polled (`starting`, `processing`, then
    /// `succeeded` with its `output`, `failed` with the message as `error`, or `canceled`) and
    /// whose `urls.cancel` cancels it.
    ReplicatePrediction,
}

impl Monitor {
    /// A short lowercase name: `azure-async-operation`, `operation-location`, `location`,
    /// `resource`, `google-operation`, `durable-functions`, `async-request-reply`, `odata-async`,
    /// `fhir-bulk-data`, `openai-job`, `anthropic-batch` or `replicate-prediction`.
    pub fn as_str(self) -> &'static str {
        match self {
            Monitor::AzureAsyncOperation => "azure-async-operation",
            Monitor::OperationLocation => "operation-location",
            Monitor::Location => "location",
            Monitor::Resource => "resource",
            Monitor::GoogleOperation => "google-operation",
            Monitor::DurableFunctions => "durable-functions",
            Monitor::AsyncRequestReply => "async-request-reply",
            Monitor::ODataAsync => "odata-async",
            Monitor::FhirBulkData => "fhir-bulk-data",
            Monitor::OpenAiJob => "openai-job",
            Monitor::AnthropicBatch => "anthropic-batch",
            Monitor::ReplicatePrediction => "replicate-prediction",
        }
    }
}

/// How the simulated server hints the next poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAfter {
    /// No hint.
    None,
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `retry-after-ms: <milliseconds>`.
    Millis(u64),
    /// `x-ms-retry-after-ms: <milliseconds>`.
    XMsMillis(u64),
    /// `Retry-After: <HTTP-date>` this far in the future (whole seconds, as the format allows).
    HttpDate(Duration),
}

/// How a simulated operation ends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ending {
    /// `Succeeded`.
    Succeeded,
    /// `Failed`, with this error code and message.
    Failed {
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
    },
    /// `Canceled`.
    Canceled,
}

/// When a simulated operation reaches its ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Completion {
    /// After this many status requests answered "running".
    AfterPolls(u32),
    /// Once this much time (tokio's clock) has passed since the initial request.
    AfterTime(Duration),
}

/// A scripted long-running operation: what the initial request at a method and path starts.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) monitor: Monitor,
    pub(crate) initial_status: Option<StatusCode>,
    pub(crate) initial_body: Option<String>,
    pub(crate) completion: Completion,
    pub(crate) ending: Ending,
    pub(crate) running_status: String,
    pub(crate) terminal_status: Option<String>,
    pub(crate) retry_after: RetryAfter,
    pub(crate) percent_complete: bool,
    pub(crate) resource_body: Option<String>,
    pub(crate) location_header: bool,
    pub(crate) resource_location: bool,
    pub(crate) relative_monitor: bool,
    pub(crate) monitor_prefix: String,
    pub(crate) moves_monitor: bool,
    pub(crate) cancelable: bool,
    pub(crate) completes_when_canceled: bool,
    pub(crate) durable: crate::durable::Options,
    pub(crate) reply: crate::request_reply::Options,
}

impl Scenario {
    /// An operation started by `method` on `path` (no query) and followed through `monitor`.
    ///
    /// Defaults: `202 Accepted` (`201 Created` with a `provisioningState` body for a resource
    /// monitor), succeeds after 2 running polls, `Retry-After: 1`, status `InProgress`.
    ///
    /// With [`Monitor::GoogleOperation`] it plays a Google AIP-151 API instead: `path` is a
    /// collection such as `/v1/projects/p/locations/l/instances`; the initial request answers
    /// `200` with an `Operation` named `projects/p/locations/l/operations/op-{n}`, polled at
    /// `/v1/{name}` (`done` false, `metadata.progressPercent` when
    /// [`percent_complete`](Self::percent_complete)), then `done` with a `response`, or an
    /// `error` whose `code` is the [`Ending::Failed`] code when it is a number (else 2,
    /// `UNKNOWN`), or 1 for [`Ending::Canceled`]. No `Retry-After` unless one is set. `POST
    /// /v1/{name}:cancel` cancels it ([`cancelable`](Self::cancelable)).
    ///
    /// With [`Monitor::DurableFunctions`] it plays an orchestration started through the Durable
    /// Functions HTTP API: see [`durable_500_on_failure`](Self::durable_500_on_failure). With
    /// [`Monitor::AsyncRequestReply`] it plays the Asynchronous Request-Reply pattern's sample:
    /// see [`result_redirect`](Self::result_redirect).
    /// With [`Monitor::ODataAsync`] it plays an OData service (Part 1 §11.6): a
    /// request with `Prefer: respond-async` answers `202` with a `Location`; the monitor answers
    /// `202` (with its `Location` again) while running, then `200` with an `AsyncResult` header
    /// and the result, or, when the poll sends `OData-MaxVersion: 4.0` without `Accept` or an
    /// `Accept` naming `application/http`, a `200` whose `application/http` body is the whole
    /// result. The result is `201` for a POST and `200` otherwise with the
    /// [`resource_body`](Self::resource_body); [`Ending::Failed`] is a `500` with
    /// `{"error":{"code","message"}}`, [`Ending::Canceled`] a `503` (cancelled by the service).
    /// `DELETE` on the monitor cancels (`204`; `405` unless [`cancelable`](Self::cancelable));
    /// the monitor answers `404` from then on. A request without `respond-async` is answered at
    /// once.
    ///
    /// With [`Monitor::FhirBulkData`] it plays a FHIR Bulk Data server: a kick-off (`GET` or
    /// `POST`) with `Prefer: respond-async` answers `202` with a `Content-Location` and an
    /// informational `OperationOutcome` (`400` without the preference); the status endpoint
    /// answers `202` with `X-Progress` (`"{n}% complete"` with
    /// [`percent_complete`](Self::percent_complete), else `"in progress"`), then `200` with a
    /// JSON manifest (or the [`resource_body`](Self::resource_body)), or a `500` whose
    /// `OperationOutcome` has the [`Ending::Failed`] code as `issue[0].code` and its message as
    /// `diagnostics`. `DELETE` on it cancels (`202`; `405` unless cancelable); it answers `404`
    /// with an `OperationOutcome` from then on, and for [`Ending::Canceled`].
    ///
    /// With a job monitor ([`Monitor::OpenAiJob`], [`Monitor::AnthropicBatch`],
    /// [`Monitor::ReplicatePrediction`]) it plays that job API, as each variant says: no
    /// `Retry-After` unless one is set, the running state is the API's own (`in_progress`,
    /// `processing`) unless [`running_status`](Self::running_status) sets another, and
    /// [`terminal_status`](Self::terminal_status) spells the final state (an unknown one, for
    /// a client's tests). [`initial_body`](Self::initial_body) replaces the job object the
    /// initial request answers with. A cancel it refuses (`404` unless
    /// [`cancelable`](Self::cancelable), `409` once the job ended) answers in the API's own
    /// error shape: OpenAI's `{"error": {"message", "type", "code": null}}`, Anthropic's
    /// `{"type": "error", "error": {"type", "message"}}`, Replicate's problem details
    /// `{"title", "detail", "status"}`.
    pub fn new(method: Method, path: impl Into<String>, monitor: Monitor) -> Self {
        Scenario {
            method,
            path: path.into(),
            monitor,
            initial_status: None,
            initial_body: None,
            completion: Completion::AfterPolls(2),
            ending: Ending::Succeeded,
            running_status: crate::job::running_status(monitor)
                .unwrap_or("InProgress")
                .into(),
            terminal_status: None,
            retry_after: if monitor == Monitor::GoogleOperation || crate::job::is_job(monitor) {
                RetryAfter::None
            } else {
                RetryAfter::Seconds(1)
            },
            percent_complete: false,
            resource_body: None,
            location_header: false,
            resource_location: false,
            relative_monitor: false,
            monitor_prefix: "/operations".into(),
            moves_monitor: false,
            cancelable: true,
            completes_when_canceled: false,
            durable: Default::default(),
            reply: Default::default(),
        }
    }

    /// Whether the operation can be canceled (default yes): for a Google operation by
    /// `POST /v1/{name}:cancel` (else that answers `501 UNIMPLEMENTED`), for an Azure one by
    /// `POST {path}/cancel`, as an ARM deployment is (else that answers `404`). A canceled
    /// operation reports `Canceled` at its next status request.
    pub fn cancelable(mut self, cancelable: bool) -> Self {
        self.cancelable = cancelable;
        self
    }

    /// A cancel request is accepted but the operation completes anyway with its ending, as a
    /// best-effort cancel may.
    pub fn completes_when_canceled(mut self, completes: bool) -> Self {
        self.completes_when_canceled = completes;
        self
    }

    /// The initial response's status code.
    pub fn initial_status(mut self, status: StatusCode) -> Self {
        self.initial_status = Some(status);
        self
    }

    /// The initial response's body (JSON).
    pub fn initial_body(mut self, body: impl Into<String>) -> Self {
        self.initial_body = Some(body.into());
        self
    }

    /// Succeed, fail or cancel after `polls` status requests answered "running".
    pub fn completes_after_polls(mut self, polls: u32) -> Self {
        self.completion = Completion::AfterPolls(polls);
        self
    }

    /// Reach the ending once `duration` has passed since the initial request; polls before
    /// that answer "running".
    pub fn completes_after(mut self, duration: Duration) -> Self {
        self.completion = Completion::AfterTime(duration);
        self
    }

    /// How the operation ends (default [`Ending::Succeeded`]).
    pub fn ending(mut self, ending: Ending) -> Self {
        self.ending = ending;
        self
    }

    /// The status reported while running (default `InProgress`; a resource reports it as its
    /// `provisioningState`).
    pub fn running_status(mut self, status: impl Into<String>) -> Self {
        self.running_status = status.into();
        self
    }

    /// Spell the terminal status this way (`SUCCEEDED`, `cancelled`, …) instead of the ending's
    /// canonical name.
    pub fn terminal_status(mut self, status: impl Into<String>) -> Self {
        self.terminal_status = Some(status.into());
        self
    }

    /// The hint sent on the initial response and on every "running" answer.
    pub fn retry_after(mut self, retry_after: RetryAfter) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Report `percentComplete`, rising with each poll, in status bodies.
    pub fn percent_complete(mut self, report: bool) -> Self {
        self.percent_complete = report;
        self
    }

    /// The JSON of the resource (or action result) the operation produces.
    pub fn resource_body(mut self, body: impl Into<String>) -> Self {
        self.resource_body = Some(body.into());
        self
    }

    /// With a status monitor, also send a `Location` header naming the result (a POST's final
    /// response comes from there).
    pub fn location_header(mut self, send: bool) -> Self {
        self.location_header = send;
        self
    }

    /// Put `resourceLocation` in the final status body.
    pub fn resource_location(mut self, send: bool) -> Self {
        self.resource_location = send;
        self
    }

    /// Send monitor URLs as absolute paths (`/operations/7`) instead of absolute URLs.
    pub fn relative_monitor(mut self, relative: bool) -> Self {
        self.relative_monitor = relative;
        self
    }

    /// The path under which monitors of this operation live (default `/operations`).
    pub fn monitor_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.monitor_prefix = prefix.into();
        self
    }

    /// The first "running" answer moves the monitor to a new URL (in the same header the initial
    /// response used); the old URL keeps answering too.
    pub fn moves_monitor(mut self, moves: bool) -> Self {
        self.moves_monitor = moves;
        self
    }

    pub(crate) fn terminal_text(&self) -> String {
        self.terminal_status.clone().unwrap_or_else(|| {
            match self.ending {
                Ending::Succeeded => "Succeeded",
                Ending::Failed { .. } => "Failed",
                Ending::Canceled => "Canceled",
            }
            .into()
        })
    }
}
