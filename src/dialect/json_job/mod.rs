//! [`JsonJob`]: job APIs (`POST` → a job object `{id, status}`, polled until a terminal state)
//! described by configuration rather than code; presets for OpenAI, Anthropic and Replicate
//! (PROTOCOL §17).

use std::borrow::Cow;
use std::sync::Arc;

use http::{response, HeaderMap, Method, Uri};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dialect::envelope::code_or_header;
use crate::dialect::{
    CancelRequest, Dialect, ErrorDetail, Follow, InitialBody, InitialHead, Observer, PollAt,
    RequestHead, Verdict,
};
use crate::protocol::headers;
use crate::protocol::json::{detail_text, parse_error_envelope};

mod builder;
#[cfg(test)]
mod tests;

pub use builder::{InvalidJobDescription, JsonJobBuilder};

/// A job API, described by configuration: `POST` answers `200`/`201`/`202` with a JSON job
/// object (`{"id": "job-1", "status": "queued", ...}`) and no monitor header; the job is polled
/// with `GET` until its state is terminal.
///
/// The description ([`JsonJob::builder`]) says, each as a JSON pointer (RFC 6901): where the
/// job's id is, where it is polled (a path built from the original request's path and the id,
/// or a URL the job object names), where its state is and which values mean running,
/// succeeded, failed or canceled, where a failed job's error code and message and its progress
/// are, how to cancel it, and what the final response is (the last job object, or a `GET` of a
/// URL it names). Presets: [`openai`](Self::openai), [`anthropic`](Self::anthropic),
/// [`replicate`](Self::replicate).
///
/// - An initial response is a job when the request is not a `GET`/`HEAD`, its status is 200,
///   201 or 202, its body is JSON (declared, or undeclared), passes the description's
///   [`kind`](JsonJobBuilder::kind) filter and has a state at the state pointer, and the
///   request's path does not already name the job's id (a call about a job the API has, such
///   as `POST /v1/batches/{id}/cancel`, answers with that job, as it was sent). Any other
///   response is returned untouched: this is how a layer of this dialect passes the API's other
///   calls through (a declared non-JSON body, such as `text/event-stream`, is never read).
/// - Only its body tells a job from an ordinary answer, so a body that may be a job is judged
///   or refused, never returned unjudged ([`InitialHead::RequireBody`]): one larger than the
///   layer's `max_status_body` (Replicate echoes a prediction's `input`, which can be large) is
///   [`StatusBodyTooLarge`](crate::ErrorKind::StatusBodyTooLarge), one too slow to arrive
///   [`TimedOut`](crate::ErrorKind::TimedOut), each carrying the status, the headers and the
///   bytes that arrived, and nothing is polled. The same holds for a large ordinary JSON
///   answer of the API through the layer: raise
///   [`max_status_body`](crate::LongRunningLayer::max_status_body) for it, or send such calls
///   with [`Polling::Disabled`](crate::Polling::Disabled), which passes them through unread.
/// - A state in none of the four vocabularies, a job object without an id (a string, or a
///   number), a state that is not a string, a poll or result URL missing where the description
///   says it is: [`MalformedStatus`](crate::ErrorKind::MalformedStatus), never a guess.
/// - An initial job object already terminal settles the operation there; one already succeeded
///   whose result is a URL is polled once, so the result is fetched as for any other.
/// - Members the description does not name are ignored; a progress or error member of the wrong
///   type is absent.
/// - An answer that ends the operation by its status (a poll's `404`, a refused cancel) gives
///   [`Error::code`](crate::Error::code) and [`message`](crate::Error::message) from the
///   default error envelope, else from Anthropic's and OpenAI's `error.type` and RFC 9457
///   problem details' `title` and `detail` (Replicate's); see
///   [`error_detail`](Dialect::error_detail).
/// - Polls send no `Retry-After` in the APIs this was written for: the layer's delays apply
///   (a `Retry-After`, when sent, is honoured).
///
/// A [`ResumeToken`](crate::ResumeToken) names the description's name (`"openai-job"`): give
/// each description of your own its own name, since a token is resumed by a layer of the dialect
/// of that name. The token carries the job's id and its cancel URL when the API named one
/// ([`JsonJobMonitor`]); it never carries the request's headers.
///
/// # API keys go below the layer
///
/// A cancel or a resume from a token is a new request, without the original request's headers.
/// Set the API key below the layer (tower-http's `SetRequestHeaderLayer`, or a reqwest client's
/// default headers), so every request carries it. A layer below adds it to every request, to
/// an origin you allowed too (a result on a CDN): if you allow one, have it skip requests whose
/// extensions carry [`CredentialsWithheld`](crate::CredentialsWithheld). (The original request's
/// `authorization`, `x-api-key` and `api-key` are never sent to another origin by the layer.)
///
/// ```
/// use http::HeaderValue;
/// use tower::ServiceBuilder;
/// use tower_http::set_header::SetRequestHeaderLayer;
/// use tower_lro::{JsonJob, LongRunningLayer};
/// # let client = tower::service_fn(|_: http::Request<String>| async {
/// #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// # });
/// let key = HeaderValue::from_static("sk-ant-example");
///
/// let anthropic = ServiceBuilder::new()
///     .layer(LongRunningLayer::with_dialect(JsonJob::anthropic()))
///     .layer(SetRequestHeaderLayer::overriding(http::header::HeaderName::from_static("x-api-key"), key))
///     .service(client);
/// # let _ = anthropic;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct JsonJob {
    name: &'static str,
    rules: Arc<Rules>,
}

/// Where a URL is: built from a template, or named by the job object at a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Locate {
    Template(String),
    Member(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Progress {
    Percent(String),
    Ratio(String, String),
}

/// The description, as [`JsonJobBuilder`] sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rules {
    kind: Option<(String, Vec<String>)>,
    id: String,
    poll: Locate,
    state: String,
    running: Vec<String>,
    succeeded: Vec<String>,
    failed: Vec<String>,
    canceled: Vec<String>,
    error_code: Vec<String>,
    error_message: Vec<String>,
    progress: Option<Progress>,
    cancel: Option<Locate>,
    result: Option<String>,
    canceled_when_set: Option<String>,
}

fn strings<const N: usize>(values: [&str; N]) -> Vec<String> {
    values.map(str::to_owned).into()
}

impl Rules {
    /// Where things are in the generic `{id, status}` shape, without a vocabulary: what
    /// [`JsonJob::builder`] starts from.
    fn shape() -> Rules {
        Rules {
            kind: None,
            id: "/id".into(),
            poll: Locate::Template("{path}/{id}".into()),
            state: "/status".into(),
            running: Vec::new(),
            succeeded: Vec::new(),
            failed: Vec::new(),
            canceled: Vec::new(),
            error_code: strings(["/error/code"]),
            error_message: strings(["/error/message", "/error"]),
            progress: None,
            cancel: Some(Locate::Template("{poll}/cancel".into())),
            result: None,
            canceled_when_set: None,
        }
    }

    /// [`JsonJob::new`]'s description: the shape, with the common state names.
    fn generic() -> Rules {
        Rules {
            running: strings([
                "queued",
                "pending",
                "starting",
                "running",
                "processing",
                "in_progress",
            ]),
            succeeded: strings(["succeeded", "completed"]),
            failed: strings(["failed"]),
            canceled: strings(["canceled", "cancelled"]),
            ..Rules::shape()
        }
    }
}

impl Default for JsonJob {
    fn default() -> Self {
        JsonJob::new()
    }
}

impl JsonJob {
    /// The generic `{id, status}` job API, named `"json-job"`:
    ///
    /// | part | value |
    /// |---|---|
    /// | id | `/id` |
    /// | poll | `GET {path}/{id}` (the original request's path, the query kept) |
    /// | state | `/status` |
    /// | running | `queued`, `pending`, `starting`, `running`, `processing`, `in_progress` |
    /// | succeeded | `succeeded`, `completed` |
    /// | failed | `failed` |
    /// | canceled | `canceled`, `cancelled` |
    /// | canceled when set | none |
    /// | error code | `/error/code` |
    /// | error message | `/error/message`, else `/error` when it is a string |
    /// | progress | none |
    /// | cancel | `POST {poll}/cancel` |
    /// | final response | the last job object |
    ///
    /// [`JsonJob::builder`] starts from the same places (every row but the states) and
    /// replaces what differs; its states are the ones you list.
    pub fn new() -> Self {
        JsonJob {
            name: "json-job",
            rules: Arc::new(Rules::generic()),
        }
    }

    /// A description of your own, named `name` in resume tokens and
    /// [`OperationInfo::monitor`](crate::OperationInfo::monitor): the places of
    /// [`new`](Self::new)'s table, no states yet; see [`JsonJobBuilder`].
    pub fn builder(name: &'static str) -> JsonJobBuilder {
        JsonJobBuilder::new(name)
    }

    /// OpenAI's job APIs, named `"openai-job"`: the Batch API (`POST /v1/batches`), fine-tuning
    /// (`POST /v1/fine_tuning/jobs`) and background responses (`POST /v1/responses` with
    /// `"background": true`), and the same shape at Azure OpenAI (the `api-version` query is
    /// kept). The union of their vocabularies:
    ///
    /// ```
    /// # use tower_lro::JsonJob;
    /// let openai = JsonJob::builder("openai-job")
    ///     .kind("/object", ["batch", "fine_tuning.job", "response"])
    ///     .running(["validating", "in_progress", "finalizing", "cancelling",
    ///               "validating_files", "queued", "running"])
    ///     .succeeded(["completed", "succeeded"])
    ///     .failed(["failed", "expired", "incomplete"])
    ///     .canceled(["cancelled"])
    ///     .error_code(["/error/code", "/errors/data/0/code", "/incomplete_details/reason"])
    ///     .error_message(["/error/message", "/errors/data/0/message"])
    ///     .progress_ratio("/request_counts/completed", "/request_counts/total")
    ///     .build()?;
    /// assert_eq!(openai, JsonJob::openai());
    /// # Ok::<(), tower_lro::dialect::json_job::InvalidJobDescription>(())
    /// ```
    ///
    /// Polled at `GET {collection}/{id}`, canceled by `POST {collection}/{id}/cancel`, the final
    /// response is the last job object (its `output_file_id`, fine-tuned model or output). An
    /// `expired` batch (not done within its completion window) and an `incomplete` response
    /// (cut short: `incomplete_details.reason` is the code) did not do what was asked, and no
    /// one canceled them: [`Failed`](crate::ErrorKind::Failed), the body kept in the error for
    /// their partial results. Only objects whose `object` is one of the three are jobs: a
    /// file's `status: "uploaded"` or a chat completion pass through untouched.
    pub fn openai() -> Self {
        let mut rules = Rules::shape();
        rules.kind = Some((
            "/object".into(),
            strings(["batch", "fine_tuning.job", "response"]),
        ));
        rules.running = strings([
            "validating",
            "in_progress",
            "finalizing",
            "cancelling",
            "validating_files",
            "queued",
            "running",
        ]);
        rules.succeeded = strings(["completed", "succeeded"]);
        rules.failed = strings(["failed", "expired", "incomplete"]);
        rules.canceled = strings(["cancelled"]);
        rules.error_code = strings([
            "/error/code",
            "/errors/data/0/code",
            "/incomplete_details/reason",
        ]);
        rules.error_message = strings(["/error/message", "/errors/data/0/message"]);
        rules.progress = Some(Progress::Ratio(
            "/request_counts/completed".into(),
            "/request_counts/total".into(),
        ));
        JsonJob {
            name: "openai-job",
            rules: Arc::new(rules),
        }
    }

    /// Anthropic's Message Batches (`POST /v1/messages/batches`), named `"anthropic-batch"`:
    ///
    /// ```
    /// # use tower_lro::JsonJob;
    /// let anthropic = JsonJob::builder("anthropic-batch")
    ///     .kind("/type", ["message_batch"])
    ///     .state("/processing_status")
    ///     .running(["in_progress", "canceling"])
    ///     .succeeded(["ended"])
    ///     .canceled_when_set("/cancel_initiated_at")
    ///     .build()?;
    /// assert_eq!(anthropic, JsonJob::anthropic());
    /// # Ok::<(), tower_lro::dialect::json_job::InvalidJobDescription>(())
    /// ```
    ///
    /// Polled at `GET /v1/messages/batches/{id}`, canceled by `POST …/{id}/cancel`. A batch has
    /// no failed state: a finished, canceled or expired batch is `ended`, and each of its
    /// requests succeeded, errored, was canceled or expired on its own. An `ended` batch whose
    /// `cancel_initiated_at` is set (a timestamp; `null` otherwise) was canceled:
    /// [`Canceled`](crate::ErrorKind::Canceled), the batch object in the error
    /// ([`Error::body`](crate::Error::body)) for its `request_counts` and `results_url`, since
    /// the requests that ended before the cancel keep their results. Any other `ended` batch is
    /// the final response, `Ok`: its `request_counts` say how many requests ended which way,
    /// and its `results_url` is where the per-request results are (JSON Lines, up to 100 000 of
    /// them: read them with a streaming `GET` of your own, rather than through the layer's
    /// bounded final response).
    pub fn anthropic() -> Self {
        let mut rules = Rules::shape();
        rules.kind = Some(("/type".into(), strings(["message_batch"])));
        rules.state = "/processing_status".into();
        rules.running = strings(["in_progress", "canceling"]);
        rules.succeeded = strings(["ended"]);
        rules.canceled_when_set = Some("/cancel_initiated_at".into());
        JsonJob {
            name: "anthropic-batch",
            rules: Arc::new(rules),
        }
    }

    /// Replicate's predictions (`POST /v1/predictions`, and a model's or deployment's
    /// `…/predictions`; trainings have the same shape), named `"replicate-prediction"`:
    ///
    /// ```
    /// # use tower_lro::JsonJob;
    /// let replicate = JsonJob::builder("replicate-prediction")
    ///     .poll_at("/urls/get")
    ///     .running(["starting", "processing"])
    ///     .succeeded(["succeeded"])
    ///     .failed(["failed"])
    ///     .canceled(["canceled", "aborted"])
    ///     .cancel_at("/urls/cancel")
    ///     .build()?;
    /// assert_eq!(replicate, JsonJob::replicate());
    /// # Ok::<(), tower_lro::dialect::json_job::InvalidJobDescription>(())
    /// ```
    ///
    /// The `201` names its URLs: polled at `urls.get`, canceled by `POST urls.cancel`. A failed
    /// prediction's `error` (a string) is the message (the default `/error` place); it has no
    /// code. A prediction interrupted before it completed (its `Cancel-After` deadline passed,
    /// say) is `aborted`: [`Canceled`](crate::ErrorKind::Canceled), as a `canceled` one. The
    /// final response is the succeeded prediction, its `output` included.
    pub fn replicate() -> Self {
        let mut rules = Rules::shape();
        rules.poll = Locate::Member("/urls/get".into());
        rules.running = strings(["starting", "processing"]);
        rules.succeeded = strings(["succeeded"]);
        rules.failed = strings(["failed"]);
        rules.canceled = strings(["canceled", "aborted"]);
        rules.cancel = Some(Locate::Member("/urls/cancel".into()));
        JsonJob {
            name: "replicate-prediction",
            rules: Arc::new(rules),
        }
    }
}

/// What the [`JsonJob`] dialect remembers about a job: its id, and the cancel URL the job object
/// named (for a description with [`cancel_at`](JsonJobBuilder::cancel_at)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonJobMonitor {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cancel: Option<String>,
}

impl JsonJobMonitor {
    /// The job's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What a job object says, by the description.
#[derive(Debug)]
enum Judged {
    Running,
    Succeeded,
    Failed(ErrorDetail<'static>),
    Canceled(ErrorDetail<'static>),
}

impl Dialect for JsonJob {
    type Monitor = JsonJobMonitor;

    fn name(&self) -> &'static str {
        self.name
    }

    fn initial_head<'a>(
        &self,
        request: &RequestHead<'_>,
        response: &'a response::Parts,
    ) -> InitialHead<'a, JsonJobMonitor> {
        // Reads never start a job; a body that cannot be JSON is not a job object.
        let read = matches!(*request.method(), Method::GET | Method::HEAD);
        let job_status = matches!(response.status.as_u16(), 200..=202);
        if read || !job_status || !headers::may_be_json(&response.headers) {
            return InitialHead::NotLongRunning;
        }
        // The body alone tells a job from an ordinary answer: one that cannot be read whole is
        // refused, never passed on as if it were the result.
        InitialHead::RequireBody
    }

    fn initial_body<'a>(
        &self,
        request: &RequestHead<'_>,
        _: &'a response::Parts,
        body: &'a [u8],
        // `initial_head` never names a job to follow before the body is read.
        _: Option<Follow<'a, JsonJobMonitor>>,
        seen: &mut Observer<'_>,
    ) -> InitialBody<'a, JsonJobMonitor> {
        let rules = &*self.rules;
        let Ok(job) = serde_json::from_slice::<Value>(body) else {
            return InitialBody::Final;
        };
        if !rules.is_a_job(&job) {
            return InitialBody::Final;
        }
        let id = match rules.id_of(&job) {
            Ok(id) => id,
            Err(why) => return InitialBody::Malformed(why),
        };
        // A call about a job the API already has (`POST /v1/batches/{id}/cancel`) answers with
        // that job: not a new one to follow, but the API's answer, returned as it was sent.
        if is_about(request.uri().path(), &id) {
            return InitialBody::Final;
        }
        seen.operation_id(&id);
        let judged = match rules.judge(&job, seen) {
            Ok(judged) => judged,
            Err(why) => return InitialBody::Malformed(why),
        };
        match judged {
            Judged::Succeeded if rules.result.is_none() => return InitialBody::Final,
            Judged::Failed(detail) => return InitialBody::Failed(detail),
            Judged::Canceled(detail) => return InitialBody::Canceled(detail),
            // A running job, or a succeeded one whose result is fetched: the first poll reads
            // the result's URL, as for a job that succeeds later.
            Judged::Running | Judged::Succeeded => {}
        }
        let poll_at = match rules.poll_at(&job, request.uri(), &id) {
            Ok(poll_at) => poll_at,
            Err(why) => return InitialBody::Malformed(why),
        };
        let cancel = match &rules.cancel {
            Some(Locate::Member(pointer)) => url_at(&job, pointer).map(str::to_owned),
            _ => None,
        };
        InitialBody::Follow(Follow::new(JsonJobMonitor { id, cancel }, poll_at))
    }

    fn status_body<'a>(
        &self,
        monitor: &mut JsonJobMonitor,
        _: &RequestHead<'_>,
        _: &'a response::Parts,
        body: &'a [u8],
        seen: &mut Observer<'_>,
    ) -> Verdict<'a> {
        let rules = &*self.rules;
        // A resumed operation reports its id too.
        seen.operation_id(&monitor.id);
        let job = match serde_json::from_slice::<Value>(body) {
            Ok(job) => job,
            Err(e) => return Verdict::Malformed(format!("the body is not a JSON job object: {e}")),
        };
        match rules.judge(&job, seen) {
            Ok(Judged::Running) => Verdict::Running { moved: None },
            Ok(Judged::Succeeded) => match &rules.result {
                None => Verdict::Done,
                Some(pointer) => match url_at(&job, pointer) {
                    Some(url) => Verdict::Fetch(PollAt::Reference(Cow::Owned(url.into()))),
                    None => Verdict::Malformed(format!(
                        "the succeeded job names no result URL at {pointer:?}"
                    )),
                },
            },
            Ok(Judged::Failed(detail)) => Verdict::Failed(detail),
            Ok(Judged::Canceled(detail)) => Verdict::Canceled(detail),
            Err(why) => Verdict::Malformed(why),
        }
    }

    /// The default envelope first (`{"error": {"code", "message"}}`, else a top-level
    /// `{"code", "message"}`); what it lacks is taken from the job APIs' own error answers:
    /// Anthropic's `{"type": "error", "error": {"type", "message"}}` and OpenAI's
    /// `{"error": {"type", "code": null, …}}` (the code is `error.type`), and RFC 9457 problem
    /// details as Replicate sends them, `{"title", "detail", "status"}` (the code is `title`,
    /// which names the problem's type and does not change between occurrences; the message is
    /// `detail`). Then the `x-ms-error-code` header, as by default.
    fn error_detail<'a>(&self, headers: &'a HeaderMap, body: Option<&'a [u8]>) -> ErrorDetail<'a> {
        error_detail(headers, body)
    }

    fn cancel(&self, monitor: &JsonJobMonitor, polled: &Uri) -> Option<CancelRequest> {
        let url = match self.rules.cancel.as_ref()? {
            Locate::Member(_) => monitor.cancel.clone()?,
            Locate::Template(template) => {
                // A token's id was checked when the job started; one edited since is refused.
                let id = segment(&monitor.id).ok()?;
                let poll = polled.path().trim_end_matches('/');
                with_query(expand(template, poll, &id), polled.query())
            }
        };
        Some(CancelRequest::new(Method::POST, url))
    }
}

impl Rules {
    /// Whether an initial body is a job object: an object of the described kind, with a state.
    fn is_a_job(&self, job: &Value) -> bool {
        let kind_matches = self.kind.as_ref().is_none_or(|(pointer, kinds)| {
            job.pointer(pointer)
                .and_then(Value::as_str)
                .is_some_and(|kind| kinds.iter().any(|k| k == kind))
        });
        job.is_object() && kind_matches && !job.pointer(&self.state).is_none_or(Value::is_null)
    }

    /// The job's id: a non-empty string, or a number as its JSON text.
    fn id_of(&self, job: &Value) -> Result<String, String> {
        match job.pointer(&self.id) {
            Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
            Some(Value::Number(id)) => Ok(id.to_string()),
            Some(_) => Err(format!(
                "the job's id at {:?} is not a string or a number",
                self.id
            )),
            None => Err(format!("the job object has no id at {:?}", self.id)),
        }
    }

    /// What the job's state says, recording it and the job's progress.
    fn judge(&self, job: &Value, seen: &mut Observer<'_>) -> Result<Judged, String> {
        let state = match job.pointer(&self.state) {
            Some(Value::String(state)) => state.as_str(),
            Some(Value::Null) | None => {
                return Err(format!("the job object has no state at {:?}", self.state))
            }
            Some(other) => return Err(format!("the job's state is {other}, not a string")),
        };
        seen.state(state);
        if let Some(percent) = self.progress_of(job) {
            seen.percent_complete(percent);
        }
        let is = |states: &[String]| states.iter().any(|s| s == state);
        if is(&self.running) {
            Ok(Judged::Running)
        } else if is(&self.succeeded) {
            let canceled = self
                .canceled_when_set
                .as_ref()
                .and_then(|pointer| job.pointer(pointer))
                .is_some_and(|member| !member.is_null());
            if canceled {
                Ok(Judged::Canceled(self.detail(job, state)))
            } else {
                Ok(Judged::Succeeded)
            }
        } else if is(&self.failed) {
            Ok(Judged::Failed(self.detail(job, state)))
        } else if is(&self.canceled) {
            Ok(Judged::Canceled(self.detail(job, state)))
        } else {
            Err(format!(
                "the job's state {state:?} is not one this API describes"
            ))
        }
    }

    /// The reported state, and the first error code and message found.
    fn detail(&self, job: &Value, state: &str) -> ErrorDetail<'static> {
        let code = self
            .error_code
            .iter()
            .find_map(|pointer| match job.pointer(pointer)? {
                Value::String(code) => non_blank(code),
                Value::Number(code) => Some(code.to_string()),
                _ => None,
            });
        let message = self
            .error_message
            .iter()
            .find_map(|pointer| non_blank(job.pointer(pointer)?.as_str()?));
        ErrorDetail::reported(state.to_owned())
            .with_detail(code.map(Cow::Owned), message.map(Cow::Owned))
    }

    fn progress_of(&self, job: &Value) -> Option<f64> {
        let number = |pointer: &str| job.pointer(pointer)?.as_f64().filter(|n| n.is_finite());
        match self.progress.as_ref()? {
            Progress::Percent(pointer) => number(pointer),
            Progress::Ratio(done, total) => {
                let (done, total) = (number(done)?, number(total)?);
                (total > 0.0).then(|| done / total * 100.0)
            }
        }
    }

    /// Where the job is polled.
    fn poll_at(&self, job: &Value, original: &Uri, id: &str) -> Result<PollAt<'static>, String> {
        match &self.poll {
            Locate::Template(template) => {
                let path = original.path().trim_end_matches('/');
                let url = with_query(expand(template, path, &segment(id)?), original.query());
                Ok(PollAt::FromOriginal(Cow::Owned(url.into_bytes())))
            }
            Locate::Member(pointer) => match url_at(job, pointer) {
                Some(url) => Ok(PollAt::Reference(Cow::Owned(url.as_bytes().to_vec()))),
                None => Err(format!("the job object names no poll URL at {pointer:?}")),
            },
        }
    }
}

/// [`JsonJob`]'s [`Dialect::error_detail`]: the default envelope, then the job APIs' own shapes,
/// then the header.
fn error_detail<'a>(headers: &'a HeaderMap, body: Option<&'a [u8]>) -> ErrorDetail<'a> {
    let envelope = body.map(parse_error_envelope).unwrap_or_default();
    let (mut code, mut message) = (envelope.code, envelope.message);
    // Parsed again only when the envelope left something unsaid.
    if code.is_none() || message.is_none() {
        if let Some(answer) = body.and_then(|body| serde_json::from_slice::<Value>(body).ok()) {
            let text = |pointer: &str| {
                let text = answer.pointer(pointer)?.as_str()?;
                detail_text(Some(Cow::Owned(text.to_owned())))
            };
            code = code.or_else(|| text("/error/type").or_else(|| text("/title")));
            message = message.or_else(|| text("/detail"));
        }
    }
    ErrorDetail::default().with_detail(code_or_header(code, headers), message)
}

/// A URL the job object names: a non-empty string.
fn url_at<'v>(job: &'v Value, pointer: &str) -> Option<&'v str> {
    job.pointer(pointer)?
        .as_str()
        .filter(|url| !url.trim().is_empty())
}

fn non_blank(text: &str) -> Option<String> {
    (!text.trim().is_empty()).then(|| text.to_owned())
}

/// The job's id as one path segment: every byte but RFC 3986's unreserved ones percent-encoded,
/// so an id can neither add segments nor a query. `.` and `..` would still be dot segments
/// (WHATWG URL reads `%2e` as `.` too): such an id is refused.
fn segment(id: &str) -> Result<String, String> {
    if id == "." || id == ".." {
        return Err(format!("the job's id {id:?} is not a path segment"));
    }
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Ok(out)
}

/// Whether `path` names the job `id` as one of its segments (as sent, or percent-encoded).
fn is_about(path: &str, id: &str) -> bool {
    let encoded = segment(id).ok();
    path.split('/')
        .any(|part| part == id || encoded.as_deref() == Some(part))
}

/// `template` with `{path}` or `{poll}` replaced by `path` and `{id}` by `id`, in one pass (a
/// path that contains `{id}` stays as it is).
fn expand(template: &str, path: &str, id: &str) -> String {
    let mut out = String::with_capacity(template.len() + path.len() + id.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let (value, len) = if rest.starts_with("{path}") || rest.starts_with("{poll}") {
            (path, 6)
        } else if rest.starts_with("{id}") {
            (id, 4)
        } else {
            ("{", 1)
        };
        out.push_str(value);
        rest = &rest[len..];
    }
    out.push_str(rest);
    out
}

fn with_query(mut url: String, query: Option<&str>) -> String {
    if let Some(query) = query {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(query);
    }
    url
}
