//! The one error type of the crate.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::info::OperationInfo;
use crate::protocol::redact;
use crate::token::{InvalidToken, ResumeToken};

/// A boxed error, as tower uses for inner service errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong; see [`Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operation ended unsuccessfully: its status or `provisioningState` said `Failed`, or a
    /// `Location` or resource monitor answered a client error (a 4xx other than 408 and 429),
    /// which is how those monitors report a failure. [`Error::code`], [`Error::message`],
    /// [`Error::status`] and [`Error::body`] tell why.
    Failed,
    /// The operation ended with status `Canceled` (or `Cancelled`).
    Canceled,
    /// A body that decides the operation could not be read: a status body that is empty, not
    /// JSON or without a string `status`, or a PUT/PATCH 200/201 body meant as JSON that cannot
    /// be read (so whether the operation is done cannot be judged). The error carries the
    /// response's status, headers and every byte of its body.
    MalformedStatus,
    /// A poll or the final GET answered with a status code the protocol does not allow there
    /// (a 404 from a status monitor or on the final GET, a transient 503 that outlasted the
    /// retries). The operation may still be running: the error carries a resume token, and the
    /// service's error details when the answer had them.
    UnexpectedStatus,
    /// A monitor URL could not be used: unparseable, not http(s), carrying userinfo.
    InvalidMonitorUrl,
    /// A monitor URL is on an origin the layer is not allowed to follow (including a downgrade
    /// from https to http). See `LongRunningLayer::allow_origin`.
    CrossOrigin,
    /// A status body was larger than `LongRunningLayer::max_status_body`.
    StatusBodyTooLarge,
    /// The operation was still running after `LongRunningLayer::max_polls` polls.
    TooManyPolls,
    /// The operation's deadline (`LongRunningLayer::timeout`) passed, or a poll outlasted
    /// `LongRunningLayer::poll_timeout` more times in a row than the layer retries.
    TimedOut,
    /// The inner service failed; [`std::error::Error::source`] is its error, which
    /// can be downcast to the inner service's error type. The context names the request that
    /// failed (the initial request, a poll, the final GET, the cancel request).
    Service,
    /// Reading a body the layer needed failed (a status body, or the initial response's when it
    /// held the `provisioningState`; a connection closed mid-body, say); the source is the body's
    /// error.
    Body,
    /// A [`ResumeToken`](crate::ResumeToken) could not be used: not a token, another version,
    /// a malformed field, or a monitor URL the layer's origin policy refuses.
    InvalidResumeToken,
    /// The response future was polled again after it completed.
    PolledAfterCompletion,
    /// A cancel was asked for an operation that cannot be canceled: its dialect has no cancel
    /// request and none was attached ([`CancelVia`](crate::CancelVia)), so nothing was sent;
    /// or the server answered that it has none (`501 Not Implemented`, `405`, `404`), with the
    /// answer. The operation itself goes on: the error carries a resume token.
    CancelUnsupported,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::Failed => "long-running operation failed",
            ErrorKind::Canceled => "long-running operation was canceled",
            ErrorKind::MalformedStatus => "malformed operation status",
            ErrorKind::UnexpectedStatus => "unexpected HTTP status while following an operation",
            ErrorKind::InvalidMonitorUrl => "invalid monitor URL",
            ErrorKind::CrossOrigin => "monitor URL on a forbidden origin",
            ErrorKind::StatusBodyTooLarge => "status body too large",
            ErrorKind::TooManyPolls => "too many polls",
            ErrorKind::TimedOut => "long-running operation timed out",
            ErrorKind::Service => "inner service error",
            ErrorKind::Body => "error reading a status body",
            ErrorKind::InvalidResumeToken => "invalid resume token",
            ErrorKind::PolledAfterCompletion => "response future polled after completion",
            ErrorKind::CancelUnsupported => "the operation cannot be canceled",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.describe())
    }
}

/// Why a long-running operation did not produce a final response.
///
/// One type for every failure, `Send + Sync + 'static`, with a [`kind`](Error::kind) to match on
/// and the details the server gave: for every error raised by a response, its HTTP status,
/// headers and body (bounded by `max_status_body`), and the service's error `code` and `message`
/// (for a `Failed`/`Canceled` status, the status body's `error`; for an answer that ended the
/// operation by its HTTP status, the body's `{"error":{"code","message"}}` or top-level
/// `{"code","message"}`; the `x-ms-error-code` header when the body has no code).
/// [`operation`](Error::operation) tells how far the operation got.
///
/// `Display` gives the error's own message only: the kind, the service's code and message, and
/// what happened (`long-running operation failed: Conflict: the name is taken (status monitor
/// reported Failed)`, `inner service error (a poll)`). It never repeats its causes: an inner service's or a body's error is
/// [`source`](std::error::Error::source), returned as itself for downcasting, as reqwest and
/// hyper-util do. A log line that should say everything walks the chain, or lets a reporter do
/// it (anyhow's `{:#}` joins each cause with `": "`):
///
/// ```
/// use std::error::Error as _;
///
/// fn report(err: &tower_lro::Error) -> String {
///     let mut text = err.to_string();
///     let mut cause = err.source();
///     while let Some(error) = cause {
///         text.push_str(": ");
///         text.push_str(&error.to_string());
///         cause = error.source();
///     }
///     // "inner service error (a poll): client error (Connect): tcp connect error: Connection
///     // refused (os error 111)"
///     text
/// }
/// ```
///
/// ```
/// use tower_lro::{Error, ErrorKind};
///
/// fn explain(err: &Error) -> String {
///     match err.kind() {
///         ErrorKind::Failed | ErrorKind::Canceled => format!(
///             "{}: {}",
///             err.code().unwrap_or("unknown"),
///             err.message().unwrap_or("no message")
///         ),
///         ErrorKind::TimedOut => "gave up waiting".to_string(),
///         _ => err.to_string(),
///     }
/// }
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    context: Cow<'static, str>,
    status: Option<StatusCode>,
    headers: Option<HeaderMap>,
    code: Option<String>,
    message: Option<String>,
    body: Option<Bytes>,
    operation: Option<OperationInfo>,
    resume_token: Option<ResumeToken>,
    source: Option<BoxError>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, context: impl Into<Cow<'static, str>>) -> Error {
        Error {
            inner: Box::new(Inner {
                kind,
                context: context.into(),
                status: None,
                headers: None,
                code: None,
                message: None,
                body: None,
                operation: None,
                resume_token: None,
                source: None,
            }),
        }
    }

    pub(crate) fn service(source: impl Into<BoxError>) -> Error {
        Error::new(ErrorKind::Service, "").with_source(source.into())
    }

    /// The inner service failed on `request` ("a poll"): the context names the request, the
    /// source is the service's error.
    pub(crate) fn service_on(request: &'static str, source: impl Into<BoxError>) -> Error {
        Error::new(ErrorKind::Service, request).with_source(source.into())
    }

    pub(crate) fn with_source(mut self, source: BoxError) -> Error {
        self.inner.source = Some(source);
        self
    }

    pub(crate) fn with_response(
        mut self,
        status: StatusCode,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Error {
        self.inner.status = Some(status);
        self.inner.headers = Some(headers);
        self.inner.body = body;
        self
    }

    pub(crate) fn with_detail(mut self, code: Option<String>, message: Option<String>) -> Error {
        self.inner.code = code;
        self.inner.message = message;
        self
    }

    /// The service's code and message from what it said about the operation. A code or message
    /// that is empty or all whitespace (a dialect's own reading may give one) is absent.
    pub(crate) fn with_error_detail(self, detail: crate::dialect::ErrorDetail<'_>) -> Error {
        let owned = |text| crate::protocol::json::detail_text(text).map(Cow::into_owned);
        self.with_detail(owned(detail.code), owned(detail.message))
    }

    pub(crate) fn with_operation(mut self, operation: OperationInfo) -> Error {
        self.inner.operation = Some(operation);
        self
    }

    pub(crate) fn with_resume_token(mut self, token: ResumeToken) -> Error {
        self.inner.resume_token = Some(token);
        self
    }

    /// What went wrong. [`ErrorKind`] is `Copy`: compare it, match on it, keep it.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The HTTP status of the response that ended the operation, when a response did (a bound
    /// like [`ErrorKind::TooManyPolls`] ends it without one: see
    /// [`OperationInfo::last_http_status`]).
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The headers of the response that ended the operation (with `x-ms-request-id` and
    /// friends, which support asks for), when a response did.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.inner.headers.as_ref()
    }

    /// The body of the response that ended the operation, when it was read (status bodies, and
    /// error bodies up to `max_status_body`).
    pub fn body(&self) -> Option<&Bytes> {
        self.inner.body.as_ref()
    }

    /// The service's error code: `error.code` of the status body (a number kept as its text), or
    /// of an error answer's envelope, else the `x-ms-error-code` header. Never empty: an empty
    /// or all-whitespace code is no code (and leaves the header to speak).
    pub fn code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }

    /// The service's error message: `error.message` of the status body, or of an error answer's
    /// envelope. Never empty or all whitespace.
    pub fn message(&self) -> Option<&str> {
        self.inner.message.as_deref()
    }

    /// How far the operation got: monitor, polls, elapsed time, last status. `None` when the
    /// error came before any monitor was known (an inner service error on the initial request,
    /// an invalid monitor URL on the initial response).
    pub fn operation(&self) -> Option<&OperationInfo> {
        self.inner.operation.as_ref()
    }

    /// A token to continue the operation later, when the layer gave up on an operation that may
    /// still be running (a deadline, the poll limit, a server that stayed unreachable, an
    /// unexpected answer). `None` once the operation is known to have ended.
    pub fn resume_token(&self) -> Option<&ResumeToken> {
        self.inner.resume_token.as_ref()
    }

    /// Whether the operation itself ended unsuccessfully ([`ErrorKind::Failed`] or
    /// [`ErrorKind::Canceled`]: the server said so, by a status or by a `Location` or resource
    /// monitor's client error), as opposed to the layer failing to follow it. Exactly these
    /// errors never carry a resume token.
    pub fn is_operation_error(&self) -> bool {
        matches!(self.inner.kind, ErrorKind::Failed | ErrorKind::Canceled)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("tower_lro::Error");
        d.field("kind", &self.inner.kind);
        if !self.inner.context.is_empty() {
            d.field("context", &redact::text(&self.inner.context));
        }
        if let Some(status) = self.inner.status {
            d.field("status", &status);
        }
        if let Some(code) = &self.inner.code {
            d.field("code", code);
        }
        if let Some(message) = &self.inner.message {
            d.field("message", &redact::text(message));
        }
        if let Some(operation) = &self.inner.operation {
            d.field("operation", operation);
        }
        if let Some(source) = &self.inner.source {
            // The inner service's error may name the URL it was sending to (reqwest's does).
            d.field("source", &Shown(&redact::text(&format!("{source:?}"))));
        }
        d.finish()
    }
}

/// Text shown as it is in `Debug` output, without quotes.
struct Shown<'a>(&'a str);

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.kind.describe())?;
        if let Some(code) = &self.inner.code {
            write!(f, ": {code}")?;
        }
        if let Some(message) = &self.inner.message {
            write!(f, ": {}", redact::text(message))?;
        }
        if !self.inner.context.is_empty() {
            write!(f, " ({})", redact::text(&self.inner.context))?;
        }
        Ok(())
    }
}

impl From<InvalidToken> for Error {
    /// An [`ErrorKind::InvalidResumeToken`] error that says why.
    fn from(invalid: InvalidToken) -> Error {
        Error::new(ErrorKind::InvalidResumeToken, invalid.into_reason())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_well_behaved_error() {
        fn assert_bounds<E: std::error::Error + Send + Sync + 'static>() {}
        assert_bounds::<Error>();
        // The `Result` of the response future stays small.
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn display_carries_the_details() {
        let err = Error::new(ErrorKind::Failed, "status monitor reported Failed")
            .with_detail(Some("Conflict".into()), Some("the name is taken".into()));
        assert_eq!(
            err.to_string(),
            "long-running operation failed: Conflict: the name is taken (status monitor reported Failed)"
        );
        assert!(err.is_operation_error());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let err = Error::service(io);
        assert_eq!(err.to_string(), "inner service error");
        let source = std::error::Error::source(&err).unwrap();
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(source.to_string(), "reset");
    }

    /// An error that says `text` and has `source`, like the layers of a client's error.
    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    /// Each `source()`'s `Display`, joined by `": "`, as anyhow's `{:#}` prints a chain.
    fn chain(err: &Error) -> String {
        let mut text = err.to_string();
        let mut cause = std::error::Error::source(err);
        while let Some(error) = cause {
            text.push_str(": ");
            text.push_str(&error.to_string());
            cause = error.source();
        }
        text
    }

    #[test]
    fn display_never_names_the_causes_source_does() {
        let refused = Layer("Connection refused", None);
        let connect = Layer("tcp connect error", Some(Box::new(refused)));
        let client = Layer("client error (Connect)", Some(Box::new(connect)));
        let err = Error::service(client);
        assert_eq!(err.to_string(), "inner service error");
        // The source is the inner error itself, not a copy of its text; walking the chain
        // names each cause once, down to the root.
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.to_string(), "client error (Connect)");
        assert_eq!(
            chain(&err),
            "inner service error: client error (Connect): tcp connect error: Connection refused"
        );

        let err = Error::new(ErrorKind::Body, "reading a status body")
            .with_source(Box::new(Layer("connection reset", None)));
        assert_eq!(
            err.to_string(),
            "error reading a status body (reading a status body)"
        );
        assert_eq!(
            chain(&err),
            "error reading a status body (reading a status body): connection reset"
        );
        // Every kind says what it says; its sources are for callers that walk the chain.
        let err = Error::new(ErrorKind::InvalidResumeToken, "bad")
            .with_source(Box::new(Layer("x", None)));
        assert_eq!(err.to_string(), "invalid resume token (bad)");
        assert_eq!(chain(&err), "invalid resume token (bad): x");
    }
}
