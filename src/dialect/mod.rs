//! The seam between the mechanism and a protocol: [`Dialect`].
//!
//! The layer's future moves bytes and time; every protocol decision is a call on its dialect. A
//! dialect is a pure value (no I/O, no clock): it looks at a response's head, and body when it
//! asks for it, and returns a verdict. Everything a dialect must not be able to get wrong stays
//! in the mechanism: the original request is sent once and only GETs are repeated, every URL a
//! dialect names is resolved and passes the layer's origin policy, credentials are withheld from
//! other origins, bodies are bounded, waits are clamped and counted, and tokens, progress and
//! tracing are kept.
//!
//! The built-in dialects are [`Azure`](crate::Azure) (the default), [`Google`](crate::Google),
//! [`DurableFunctions`](crate::DurableFunctions), [`AsyncRequestReply`](crate::AsyncRequestReply),
//! [`ODataAsync`](crate::ODataAsync), [`FhirBulkData`](crate::FhirBulkData) and
//! [`JsonJob`](crate::JsonJob) (job APIs by configuration); a dialect of your own is one `impl Dialect` of three methods (see the
//! trait's example), unit-tested without I/O with [`testing`]. [`Dialect::or`] puts several
//! behind one layer.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use http::header::HeaderName;
use http::{response, Extensions, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub mod async_request_reply;
pub mod azure;
pub mod durable_functions;
pub(crate) mod envelope;
pub mod fhir_bulk_data;
pub mod google;
pub mod json_job;
pub mod odata_async;
mod or;
pub mod testing;

pub use or::{Or, OrMonitor};

/// A long-running-operation protocol, as pure decisions the layer's future applies.
///
/// Each response is judged once, in the phase it belongs to; every method is named after the
/// phase it judges:
///
/// | response | its head | its body, when the head asks for it |
/// |---|---|---|
/// | the initial response | [`initial_head`](Self::initial_head) | [`initial_body`](Self::initial_body) |
/// | a poll's answer | [`status_head`](Self::status_head) | [`status_body`](Self::status_body) |
/// | the final GET's answer | [`final_head`](Self::final_head) | |
/// | a cancel request's answer | [`cancel_head`](Self::cancel_head) | |
///
/// Before the original request is sent, [`prepare`](Self::prepare) may add what the protocol
/// needs the client to ask for. A poll's verdict may end the operation with the answer itself,
/// a GET of a URL ([`Verdict::Fetch`]), or a response the dialect builds from the answer
/// ([`Verdict::Replace`]).
///
/// Three methods are required: [`name`](Self::name), [`initial_head`](Self::initial_head) and
/// [`status_body`](Self::status_body); the others have defaults that fit most HTTP APIs.
/// Several dialects share one layer with [`or`](Self::or). A
/// dialect's [`Monitor`](Self::Monitor) is what it remembers between polls beyond the URL being
/// polled; it travels in [`ResumeToken`](crate::ResumeToken)s, so it must serialise.
///
/// # A dialect of your own
///
/// A toy API answers `202 Accepted` with an `X-Job-Status` URL; that URL answers `200` with
/// `{"state": "running" | "done" | "failed"}`, and the last answer is the result:
///
/// ```
/// use std::borrow::Cow;
/// use http::response;
/// use tower_lro::dialect::{
///     Dialect, ErrorDetail, Follow, InitialHead, Observer, PollAt, RequestHead, Verdict,
/// };
///
/// #[derive(Debug, Clone, Default)]
/// struct JobStatus;
///
/// impl Dialect for JobStatus {
///     type Monitor = ();
///
///     fn name(&self) -> &'static str {
///         "x-job-status"
///     }
///
///     fn initial_head<'a>(
///         &self, _: &RequestHead<'_>, res: &'a response::Parts,
///     ) -> InitialHead<'a, ()> {
///         match res.headers.get("x-job-status") {
///             Some(url) if res.status == 202 => {
///                 InitialHead::Follow(Follow::new((), PollAt::url(url)))
///             }
///             _ => InitialHead::NotLongRunning,
///         }
///     }
///
///     fn status_body<'a>(
///         &self, _: &mut (), _: &RequestHead<'_>, _: &'a response::Parts, body: &'a [u8],
///         seen: &mut Observer<'_>,
///     ) -> Verdict<'a> {
///         #[derive(serde::Deserialize)]
///         struct Job<'b> { #[serde(borrow)] state: Cow<'b, str> }
///         match serde_json::from_slice::<Job<'_>>(body) {
///             Ok(job) => {
///                 seen.state(&job.state);
///                 match &*job.state {
///                     "done" => Verdict::Done,
///                     "failed" => Verdict::Failed(ErrorDetail::reported("failed")),
///                     _ => Verdict::Running { moved: None },
///                 }
///             }
///             Err(e) => Verdict::Malformed(format!("not a job status: {e}")),
///         }
///     }
/// }
///
/// let layer = tower_lro::LongRunningLayer::with_dialect(JobStatus);
/// # let _ = layer;
/// ```
///
/// [`testing`] unit-tests a dialect without I/O; `examples/custom_dialect.rs` runs this dialect
/// against a server on 127.0.0.1.
pub trait Dialect: Clone + fmt::Debug + Send + Sync + 'static {
    /// What the dialect remembers about an operation between polls, beyond the URL it polls.
    /// Carried in resume tokens as JSON.
    type Monitor: Clone + fmt::Debug + Send + Sync + Serialize + DeserializeOwned + 'static;

    /// The dialect's name: in resume tokens (a token is resumed only by a layer of the dialect
    /// that issued it, or of an [`Or`] that includes it), errors and logs. A short lowercase name.
    fn name(&self) -> &'static str;

    /// The kind of monitor, for [`OperationInfo::monitor`](crate::OperationInfo::monitor), logs
    /// and metrics: a short lowercase name. By default the dialect's [`name`](Self::name).
    fn kind(&self, monitor: &Self::Monitor) -> &'static str {
        let _ = monitor;
        self.name()
    }

    /// Prepares the original request before it is sent (once): for a protocol that the client
    /// must ask for, such as OData's and FHIR's `Prefer: respond-async`. By default nothing
    /// changes. Polls do not repeat `Prefer`.
    fn prepare(&self, method: &Method, headers: &mut HeaderMap) {
        let _ = (method, headers);
    }

    /// Headers that carry this protocol's credentials, beyond those always withheld
    /// (`authorization`, `cookie`, `proxy-authorization`, `x-api-key`, `api-key`): they are never
    /// sent to another origin and never kept in resume tokens. By default none.
    fn credential_headers(&self) -> Cow<'static, [HeaderName]> {
        Cow::Borrowed(&[])
    }

    /// Judges the initial response by its head: not long-running, an operation to follow, or
    /// read the body first.
    fn initial_head<'a>(
        &self,
        request: &RequestHead<'_>,
        response: &'a response::Parts,
    ) -> InitialHead<'a, Self::Monitor>;

    /// Judges the initial response with its body, after [`InitialHead::ReadBody`]. `otherwise`
    /// is that verdict's own, handed back so the head need not be judged again: return it
    /// ([`InitialBody::Follow`]) when the body does not settle the operation. `seen` records
    /// what the server reported for [`OperationInfo`](crate::OperationInfo).
    ///
    /// By default the response is final ([`InitialBody::Final`]): a dialect whose
    /// `initial_head` never asks for the body need not implement this.
    fn initial_body<'a>(
        &self,
        request: &RequestHead<'_>,
        response: &'a response::Parts,
        body: &'a [u8],
        otherwise: Option<Follow<'a, Self::Monitor>>,
        seen: &mut Observer<'_>,
    ) -> InitialBody<'a, Self::Monitor> {
        let _ = (request, response, body, otherwise, seen);
        InitialBody::Final
    }

    /// Judges a poll's answer by its head: read its body, or a verdict now.
    ///
    /// By default a 2xx body is read (and judged by [`status_body`](Self::status_body)), 408,
    /// 429, 500, 502, 503 and 504 are [`Verdict::Transient`], and anything else is
    /// [`Verdict::Unexpected`].
    fn status_head<'a>(
        &self,
        monitor: &Self::Monitor,
        response: &'a response::Parts,
    ) -> StatusHead<'a> {
        let _ = monitor;
        if response.status.is_success() {
            StatusHead::ReadBody
        } else if is_transient(response.status) {
            StatusHead::Judged(Verdict::Transient)
        } else {
            StatusHead::Judged(Verdict::Unexpected)
        }
    }

    /// Judges a poll's answer with its body, after [`StatusHead::ReadBody`]: what it says about
    /// the operation. `seen` records what the server reported (state, progress, ids) for
    /// [`OperationInfo`](crate::OperationInfo).
    fn status_body<'a>(
        &self,
        monitor: &mut Self::Monitor,
        request: &RequestHead<'_>,
        response: &'a response::Parts,
        body: &'a [u8],
        seen: &mut Observer<'_>,
    ) -> Verdict<'a>;

    /// Judges the answer to the final GET (after [`Verdict::Fetch`]) by its status. By default
    /// a 2xx is the final response, 408, 429 and 5xx other than 501 and 505 are worth the same
    /// GET again, and anything else (a redirect too) is unexpected.
    fn final_head(&self, monitor: &Self::Monitor, status: StatusCode) -> FinalHead {
        let _ = monitor;
        if status.is_success() {
            FinalHead::Final
        } else if is_transient(status) {
            FinalHead::Transient
        } else {
            FinalHead::Unexpected
        }
    }

    /// The server's hint for when to ask again. By default the first usable of
    /// `retry-after-ms`, `x-ms-retry-after-ms` and `Retry-After` (seconds or an HTTP-date).
    fn wait_hint(&self, headers: &HeaderMap) -> Option<Duration> {
        crate::protocol::retry_after::retry_after(headers, std::time::SystemTime::now)
    }

    /// The service's error code and message in an answer that ended the operation by its HTTP
    /// status (an unexpected or failed answer, a transient one that outlasted the retries). By
    /// default `{"error": {"code", "message"}}`, else a top-level `{"code", "message"}`, with
    /// the `x-ms-error-code` header as the code when the body has none.
    fn error_detail<'a>(&self, headers: &'a HeaderMap, body: Option<&'a [u8]>) -> ErrorDetail<'a> {
        crate::dialect::envelope::envelope(headers, body)
    }

    /// The request that asks the server to cancel the operation, when the protocol has one.
    /// The layer resolves its URL against the polled URL, applies its origin policy and sends
    /// it once, never repeated. `None` (the default): cancel is
    /// [`CancelUnsupported`](crate::ErrorKind::CancelUnsupported) unless the caller attached a
    /// [`CancelVia`](crate::CancelVia) when starting the operation.
    fn cancel(&self, _monitor: &Self::Monitor, _polled: &Uri) -> Option<CancelRequest> {
        None
    }

    /// Judges the answer to a cancel request by its status. By default a 2xx means the server
    /// took it (the layer then follows the operation to its end), 404, 405 and 501 mean it has
    /// no cancel for this operation, and anything else is unexpected.
    fn cancel_head(&self, monitor: &Self::Monitor, status: StatusCode) -> CancelHead {
        let _ = monitor;
        match status.as_u16() {
            200..=299 => CancelHead::Accepted,
            404 | 405 | 501 => CancelHead::Unsupported,
            _ => CancelHead::Unexpected,
        }
    }

    /// The server took a cancel request for the operation ([`cancel_head`](Self::cancel_head)
    /// said [`CancelHead::Accepted`]); the layer polls on. For a protocol whose monitor answers
    /// differently once canceled (OData's and FHIR's `404`), note it in the monitor here: the
    /// monitor travels in tokens, so the note outlives the process that sent the cancel. By
    /// default nothing.
    fn cancel_accepted(&self, monitor: &mut Self::Monitor) {
        let _ = monitor;
    }

    /// The dialect named in a resume token of an operation this dialect follows with `monitor`.
    /// By default its [`name`](Self::name); an [`Or`] names the dialect that followed, so that
    /// its tokens resume with that dialect alone too.
    fn token_dialect(&self, monitor: &Self::Monitor) -> &'static str {
        let _ = monitor;
        self.name()
    }

    /// The state a resume token keeps for `monitor`. By default the monitor as JSON.
    fn token_state(&self, monitor: &Self::Monitor) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(monitor)
    }

    /// The monitor of a token written by the dialect named `dialect` with `state`: `None` when
    /// this dialect does not resume that dialect's tokens. By default a token of this dialect's
    /// own [`name`](Self::name), its state read as the monitor.
    fn token_monitor(
        &self,
        dialect: &str,
        state: serde_json::Value,
    ) -> Option<Result<Self::Monitor, serde_json::Error>> {
        (dialect == self.name()).then(|| serde_json::from_value(state))
    }

    /// This dialect, then `other` for an initial response this one does not take as
    /// long-running: one layer for several APIs, as tower-http composes policies with `Or`.
    ///
    /// ```
    /// use tower_lro::{Azure, Dialect, Google, LongRunningLayer};
    ///
    /// let layer = LongRunningLayer::with_dialect(Azure::new().or(Google::new()));
    /// # let _ = layer;
    /// ```
    ///
    /// See [`Or`] for how each phase is judged.
    fn or<B: Dialect>(self, other: B) -> Or<Self, B>
    where
        Self: Sized,
    {
        Or::new(self, other)
    }
}

/// 408, 429, 500, 502, 503, 504: worth the same GET again later.
pub(crate) fn is_transient(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// The original request, as a dialect sees it.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: &'a Extensions,
}

impl<'a> RequestHead<'a> {
    /// The original request's method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The original request's URI.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The original request's headers, as polls repeat them (no payload or conditional headers).
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// An extension of the original request, such as a dialect's own per-request option
    /// ([`FinalStateVia`](crate::FinalStateVia) for [`Azure`](crate::Azure)).
    pub fn extension<T: Clone + Send + Sync + 'static>(&self) -> Option<&'a T> {
        self.extensions.get::<T>()
    }
}

/// What the initial response's head says: [`Dialect::initial_head`]'s verdict.
#[derive(Debug)]
#[non_exhaustive]
pub enum InitialHead<'a, M> {
    /// Not a long-running operation: the response is returned untouched.
    NotLongRunning,
    /// A long-running operation: follow it.
    Follow(Follow<'a, M>),
    /// Read the body (up to the layer's `max_status_body`) and call
    /// [`Dialect::initial_body`], which gets `otherwise` back. When the body cannot be read
    /// whole (too large, too slow, broken), `otherwise` applies: follow it, or (`None`) return
    /// the response untouched.
    ReadBody {
        /// What to do when the body cannot be judged.
        otherwise: Option<Follow<'a, M>>,
    },
    /// Read the body (up to the layer's `max_status_body`) and call [`Dialect::initial_body`]
    /// (`otherwise` is `None`); when the body cannot be read whole, the operation ends with an
    /// error carrying what arrived ([`StatusBodyTooLarge`](crate::ErrorKind::StatusBodyTooLarge),
    /// [`TimedOut`](crate::ErrorKind::TimedOut) or [`Body`](crate::ErrorKind::Body)), never the
    /// response untouched: for a protocol whose operations are told apart from ordinary
    /// answers by their body alone (a job object), so that a large one is never a wrong `Ok`.
    RequireBody,
}

/// An operation to follow: the dialect's state and where to poll.
#[derive(Debug)]
pub struct Follow<'a, M> {
    pub(crate) monitor: M,
    pub(crate) poll_at: PollAt<'a>,
}

impl<'a, M> Follow<'a, M> {
    /// Follows an operation by polling `poll_at`.
    pub fn new(monitor: M, poll_at: PollAt<'a>) -> Self {
        Follow { monitor, poll_at }
    }

    /// The dialect's state for the operation.
    pub fn monitor(&self) -> &M {
        &self.monitor
    }

    /// Where the operation is polled.
    pub fn poll_at(&self) -> &PollAt<'a> {
        &self.poll_at
    }

    /// The same, owning its URL reference: kept across the read of an initial body.
    pub(crate) fn into_owned(self) -> Follow<'static, M> {
        Follow {
            monitor: self.monitor,
            poll_at: self.poll_at.into_owned(),
        }
    }
}

/// Where an operation is polled, or its final response fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PollAt<'a> {
    /// The original request's URI.
    OriginalUri,
    /// A URL reference the server named, resolved against the URI of the response that named
    /// it: the original request's for the initial response, the polled URL's for a poll.
    Reference(Cow<'a, [u8]>),
    /// A URL reference resolved against the original request's URI, whoever named it.
    FromOriginal(Cow<'a, [u8]>),
}

impl<'a> PollAt<'a> {
    /// The URL in a header value.
    pub fn url(value: &'a HeaderValue) -> PollAt<'a> {
        PollAt::Reference(Cow::Borrowed(value.as_bytes()))
    }

    /// The same, owning its URL reference.
    pub(crate) fn into_owned(self) -> PollAt<'static> {
        match self {
            PollAt::OriginalUri => PollAt::OriginalUri,
            PollAt::Reference(r) => PollAt::Reference(Cow::Owned(r.into_owned())),
            PollAt::FromOriginal(r) => PollAt::FromOriginal(Cow::Owned(r.into_owned())),
        }
    }
}

/// What the initial response says once its body is read: [`Dialect::initial_body`]'s verdict.
#[derive(Debug)]
#[non_exhaustive]
pub enum InitialBody<'a, M> {
    /// Done already: the response (its body read) is final.
    Final,
    /// A long-running operation: follow it.
    Follow(Follow<'a, M>),
    /// Done already, unsuccessfully.
    Failed(ErrorDetail<'a>),
    /// Done already: canceled.
    Canceled(ErrorDetail<'a>),
    /// The body cannot be judged ([`MalformedStatus`](crate::ErrorKind::MalformedStatus)).
    Malformed(String),
}

/// What a poll's answer says by its head: [`Dialect::status_head`]'s verdict.
#[derive(Debug)]
#[non_exhaustive]
pub enum StatusHead<'a> {
    /// Read the body (up to the layer's `max_status_body`) and call [`Dialect::status_body`].
    ReadBody,
    /// Judged by the head alone. A [`Verdict::Done`] hands the body back unread; for
    /// [`Verdict::Failed`], [`Verdict::Canceled`] and [`Verdict::Unexpected`] the layer reads it
    /// (bounded) into the error, with [`Dialect::error_detail`] filling what the verdict's
    /// detail lacks.
    Judged(Verdict<'a>),
}

/// What a poll's answer says about the operation: [`Dialect::status_body`]'s verdict, or
/// [`Dialect::status_head`]'s ([`StatusHead::Judged`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Verdict<'a> {
    /// Still running. `moved`: the answer moved the monitor (a reference relative to the polled
    /// URL).
    Running {
        /// The new monitor URL, when the answer names one.
        moved: Option<&'a [u8]>,
    },
    /// Done: this response is the final one.
    Done,
    /// Done: the final response is a GET of this URL.
    Fetch(PollAt<'a>),
    /// Done: the final response is one the dialect builds from this answer (an embedded HTTP
    /// message, a status the server reports in a header). A replacement whose status is not a
    /// success is never `Ok`: the operation ends [`Failed`](crate::ErrorKind::Failed), the error
    /// carrying the replacement's status, headers and body.
    Replace(Replacement<'a>),
    /// The operation ended unsuccessfully ([`Failed`](crate::ErrorKind::Failed)).
    Failed(ErrorDetail<'a>),
    /// The operation was canceled ([`Canceled`](crate::ErrorKind::Canceled)).
    Canceled(ErrorDetail<'a>),
    /// A failure worth the same GET again later, within the layer's retry bounds.
    Transient,
    /// An answer the protocol does not allow here
    /// ([`UnexpectedStatus`](crate::ErrorKind::UnexpectedStatus)); the operation may still be
    /// running.
    Unexpected,
    /// A body that cannot be judged ([`MalformedStatus`](crate::ErrorKind::MalformedStatus)).
    Malformed(String),
}

/// The final response a dialect builds from an answer: [`Verdict::Replace`].
///
/// Unset parts are the answer's own. The body must be part of the body the dialect was handed
/// (it is then taken without a copy); one judged by its head alone
/// ([`Dialect::status_head`]) keeps the answer's body.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use tower_lro::dialect::{Replacement, Verdict};
///
/// let answer = b"...the embedded response's body";
/// let verdict = Verdict::Replace(
///     Replacement::new(StatusCode::CREATED)
///         .headers(HeaderMap::new())
///         .body(&answer[3..]),
/// );
/// # let _ = verdict;
/// ```
#[derive(Debug, Clone)]
pub struct Replacement<'a> {
    pub(crate) status: StatusCode,
    pub(crate) headers: Option<HeaderMap>,
    pub(crate) body: Option<&'a [u8]>,
}

impl<'a> Replacement<'a> {
    /// The final response has this status.
    pub fn new(status: StatusCode) -> Self {
        Replacement {
            status,
            headers: None,
            body: None,
        }
    }

    /// ... and these headers instead of the answer's.
    pub fn headers(mut self, headers: HeaderMap) -> Self {
        self.headers = Some(headers);
        self
    }

    /// ... and this body, a part of the answer's, instead of the whole.
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = Some(body);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// What the server said about an operation that ended unsuccessfully, or about an answer that
/// ended it: the state it reported, and its error code and message.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ErrorDetail<'a> {
    /// The operation's state as the server reported it (`"Failed"`), when it reported one.
    pub reported: Option<Cow<'a, str>>,
    /// The service's error code ([`Error::code`](crate::Error::code)).
    pub code: Option<Cow<'a, str>>,
    /// The service's error message ([`Error::message`](crate::Error::message)).
    pub message: Option<Cow<'a, str>>,
}

impl<'a> ErrorDetail<'a> {
    /// A reported state (`"Failed"`), without a code or message.
    pub fn reported(state: impl Into<Cow<'a, str>>) -> Self {
        ErrorDetail {
            reported: Some(state.into()),
            ..ErrorDetail::default()
        }
    }

    /// The same detail, owning its text.
    pub fn into_owned(self) -> ErrorDetail<'static> {
        let owned = |text: Option<Cow<'a, str>>| text.map(|t| Cow::Owned(t.into_owned()));
        ErrorDetail {
            reported: owned(self.reported),
            code: owned(self.code),
            message: owned(self.message),
        }
    }

    /// With the service's error code and message.
    pub fn with_detail(
        mut self,
        code: Option<Cow<'a, str>>,
        message: Option<Cow<'a, str>>,
    ) -> Self {
        self.code = code;
        self.message = message;
        self
    }
}

/// What the final GET's answer says by its status: [`Dialect::final_head`]'s verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FinalHead {
    /// The final response.
    Final,
    /// Worth the same GET again later.
    Transient,
    /// An error ([`UnexpectedStatus`](crate::ErrorKind::UnexpectedStatus)).
    Unexpected,
}

/// What a cancel request's answer says by its status: [`Dialect::cancel_head`]'s verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelHead {
    /// The server took the request; the layer follows the operation to its end.
    Accepted,
    /// The server has no cancel for this operation
    /// ([`CancelUnsupported`](crate::ErrorKind::CancelUnsupported)).
    Unsupported,
    /// An error ([`UnexpectedStatus`](crate::ErrorKind::UnexpectedStatus)).
    Unexpected,
}

/// A request asking the server to cancel an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) body: String,
    pub(crate) json: bool,
}

impl CancelRequest {
    /// `method url`, with an empty body. `url` may be relative to the polled URL.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        CancelRequest {
            method,
            url: url.into(),
            body: String::new(),
            json: false,
        }
    }

    /// With a JSON body.
    pub fn json(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self.json = true;
        self
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The URL, as the dialect or caller named it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The body.
    pub fn body(&self) -> &str {
        &self.body
    }
}

/// Records what the server reported while a dialect judges a body, for
/// [`OperationInfo`](crate::OperationInfo) and progress. Allocates only when a value changed.
#[derive(Debug)]
pub struct Observer<'l> {
    pub(crate) ledger: &'l mut Observed,
}

/// What the server reported while the operation ran.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    pub(crate) state: Option<String>,
    pub(crate) percent_complete: Option<f64>,
    pub(crate) operation_id: Option<String>,
    pub(crate) operation_name: Option<String>,
}

impl Observer<'_> {
    /// The operation's state as the server spelled it.
    pub fn state(&mut self, state: &str) {
        remember(&mut self.ledger.state, state);
    }

    /// How far along the operation is, in percent.
    pub fn percent_complete(&mut self, percent: f64) {
        self.ledger.percent_complete = Some(percent);
    }

    /// The operation's id.
    pub fn operation_id(&mut self, id: &str) {
        remember(&mut self.ledger.operation_id, id);
    }

    /// The operation's name.
    pub fn operation_name(&mut self, name: &str) {
        remember(&mut self.ledger.operation_name, name);
    }
}

/// Keeps `value` in `slot`, allocating only when it changed since the last poll.
fn remember(slot: &mut Option<String>, value: &str) {
    if slot.as_deref() != Some(value) {
        *slot = Some(value.to_owned());
    }
}

/// Verdicts as short text, so dialect tables read as tables.
#[cfg(test)]
pub(crate) mod table {
    use super::*;

    fn at(poll_at: &PollAt<'_>) -> String {
        match poll_at {
            PollAt::OriginalUri => "original".into(),
            PollAt::Reference(r) => format!("ref {}", String::from_utf8_lossy(r)),
            PollAt::FromOriginal(r) => format!("from-original {}", String::from_utf8_lossy(r)),
        }
    }

    fn detail(o: &ErrorDetail<'_>) -> String {
        format!(
            "{}/{}/{}",
            o.reported.as_deref().unwrap_or("-"),
            o.code.as_deref().unwrap_or("-"),
            o.message.as_deref().unwrap_or("-")
        )
    }

    pub(crate) fn initial_head<M: fmt::Debug>(verdict: &InitialHead<'_, M>) -> String {
        match verdict {
            InitialHead::NotLongRunning => "pass".into(),
            InitialHead::Follow(f) => format!("follow {:?} {}", f.monitor, at(&f.poll_at)),
            InitialHead::ReadBody { otherwise: None } => "read, else pass".into(),
            InitialHead::RequireBody => "read, else refuse".into(),
            InitialHead::ReadBody { otherwise: Some(f) } => {
                format!("read, else follow {:?} {}", f.monitor, at(&f.poll_at))
            }
        }
    }

    pub(crate) fn initial_body<M: fmt::Debug>(verdict: &InitialBody<'_, M>) -> String {
        match verdict {
            InitialBody::Final => "final".into(),
            InitialBody::Follow(f) => format!("follow {:?} {}", f.monitor, at(&f.poll_at)),
            InitialBody::Failed(o) => format!("failed {}", detail(o)),
            InitialBody::Canceled(o) => format!("canceled {}", detail(o)),
            InitialBody::Malformed(_) => "malformed".into(),
        }
    }

    pub(crate) fn status_head(head: &StatusHead<'_>) -> String {
        match head {
            StatusHead::ReadBody => "read".into(),
            StatusHead::Judged(v) => verdict(v),
        }
    }

    pub(crate) fn verdict(verdict: &Verdict<'_>) -> String {
        match verdict {
            Verdict::Running { moved: None } => "running".into(),
            Verdict::Running { moved: Some(m) } => {
                format!("running, moved {}", String::from_utf8_lossy(m))
            }
            Verdict::Done => "done".into(),
            Verdict::Fetch(a) => format!("fetch {}", at(a)),
            Verdict::Replace(r) => format!(
                "replace {}{}",
                r.status.as_u16(),
                r.body
                    .map(|b| format!(" {}", String::from_utf8_lossy(b)))
                    .unwrap_or_default()
            ),
            Verdict::Failed(o) => format!("failed {}", detail(o)),
            Verdict::Canceled(o) => format!("canceled {}", detail(o)),
            Verdict::Transient => "transient".into(),
            Verdict::Unexpected => "unexpected".into(),
            Verdict::Malformed(_) => "malformed".into(),
        }
    }
}
