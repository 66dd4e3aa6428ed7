//! Handing an in-flight operation to another task, process or machine.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use serde::{Deserialize, Serialize};

use crate::dialect::Dialect;
use crate::protocol::trace_context::TraceContext;
use crate::protocol::{headers, redact};

/// Everything needed to continue a long-running operation without its initial request: a small,
/// versioned, serde-serialisable value with a JSON string form.
///
/// Get one from a [`Progress`](crate::progress::Progress) update, from the extensions of a
/// response of [`Polling::AcceptOnly`](crate::Polling::AcceptOnly), or from an
/// [`Error`](crate::Error) that gave up on a still-running operation; continue with
/// [`LongRunning::resume`](crate::LongRunning::resume) or by sending
/// [`into_request`](Self::into_request) through the stack.
///
/// A token holds its dialect and the dialect's state (for Azure: the monitor kind, the initial
/// `Location`, the final-state choice), the monitor URL, the original method and URI, the
/// headers polls repeat, how to cancel the operation when that is known, and the polls and time
/// spent so far (which
/// keep counting against the resuming layer's `max_polls` and `timeout`: resume a token from a
/// [`TooManyPolls`](crate::ErrorKind::TooManyPolls) error with a layer that allows more), and
/// the W3C trace context of the operation's start when there is one (see
/// [`traceparent`](Self::traceparent)). It never holds credentials (`Authorization`, `Cookie`,
/// `Proxy-Authorization`): the resuming stack must apply its own authentication, below the
/// layer. Treat a token as you treat a request
/// you build: it names the URLs the stack will call, so keep it where others cannot write.
///
/// ```
/// # fn run(token: tower_lro::ResumeToken) -> Result<(), tower_lro::Error> {
/// let saved: String = token.to_json();
/// // ... another process ...
/// let token = tower_lro::ResumeToken::from_json(&saved)?;
/// # Ok(()) }
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
// Every way of reading a token (`from_json`, serde) runs the same checks.
#[serde(try_from = "Fields")]
pub struct ResumeToken(Fields);

/// Shows what a token is without what in it may be a credential: every URL's query values (but
/// `api-version`) and userinfo are hidden, in its fields and in its dialect's state, and its
/// headers are named without their values. [`to_json`](ResumeToken::to_json) writes it whole.
impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.0;
        fn shown(url: &Option<String>) -> Option<std::borrow::Cow<'_, str>> {
            url.as_deref().map(redact::url)
        }
        f.debug_struct("ResumeToken")
            .field("version", &t.version)
            .field("dialect", &self.dialect())
            .field("state", &redact::json(&t.monitor))
            .field("monitor_url", &redact::url(&t.monitor_url))
            .field("method", &t.method)
            .field("uri", &redact::url(&t.uri))
            .field("final_uri", &shown(&t.final_uri))
            .field("location", &shown(&t.location))
            .field(
                "headers",
                &t.headers.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            )
            .field("polls", &t.polls)
            .field("elapsed_ms", &t.elapsed_ms)
            .field("traceparent", &t.traceparent)
            .field("next_poll", &t.next_poll)
            .field(
                "cancel",
                &t.cancel
                    .as_ref()
                    .map(|c| format!("{} {}", c.method, redact::url(&c.url))),
            )
            .finish_non_exhaustive()
    }
}

/// A token's fields as written; [`ResumeToken`] is the checked form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Fields {
    version: u32,
    /// The dialect that issued the token; version 1 tokens, which predate dialects, are Azure's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dialect: Option<String>,
    /// The dialect's state; in version 1, the Azure monitor kind's name.
    monitor: serde_json::Value,
    monitor_url: String,
    method: String,
    uri: String,
    /// Version 1 only: now part of the Azure monitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    /// Version 1 only: now part of the Azure monitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    final_state_via: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    final_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(String, String)>,
    #[serde(default)]
    polls: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    retries: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    unhinted_waits: u32,
    #[serde(default)]
    elapsed_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cancel: Option<CancelSpec>,
    /// The W3C trace context of the operation's start. Read leniently: a value that is not a
    /// well-formed string is dropped when the token is read, never an error.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    traceparent: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    tracestate: Option<String>,
    /// The wait before the next poll, as judged when the token was made; tokens without it
    /// (older ones, an error's) still read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_poll: Option<NextPoll>,
}

/// When the next poll is due, from the moment the token was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct NextPoll {
    in_ms: u64,
    /// The wait is the server's hint (clamped to the layer's bounds).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    hinted: bool,
}

/// A string, or `None` for any other JSON value.
fn lenient_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(text) => Some(text),
        _ => None,
    })
}

impl TryFrom<Fields> for ResumeToken {
    type Error = InvalidToken;

    fn try_from(mut fields: Fields) -> Result<Self, InvalidToken> {
        // A trace context is a hint for telemetry, not part of the operation: one that is not
        // well formed is dropped, so that what a token carries on is always well formed.
        let trace = fields.trace_context();
        fields.traceparent = trace.as_ref().map(TraceContext::traceparent);
        fields.tracestate = trace.and_then(|t| t.tracestate().map(str::to_owned));
        let token = ResumeToken(fields);
        token.common()?;
        Ok(token)
    }
}

/// Why a [`ResumeToken`] cannot be used: not a token, another version, a malformed field, a
/// token of another dialect, or (when it is resumed) a dialect state its dialect cannot read. A
/// layer that is handed such a token ends with
/// [`ErrorKind::InvalidResumeToken`](crate::ErrorKind::InvalidResumeToken), saying why; `?`
/// converts it into that [`Error`](crate::Error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidToken(String);

impl fmt::Display for InvalidToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidToken {}

impl InvalidToken {
    pub(crate) fn into_reason(self) -> String {
        self.0
    }
}

impl Fields {
    fn trace_context(&self) -> Option<TraceContext> {
        TraceContext::parse(self.traceparent.as_deref()?, self.tracestate.as_deref())
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The current token format: 2 carries the dialect and its state. Version 1 tokens (Azure's,
/// before dialects) are still read.
const VERSION: u32 = 2;

/// How to cancel the operation, as the token carries it: an absolute URL, admitted by the
/// resuming layer's origin policy when the cancel is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CancelSpec {
    pub(crate) method: String,
    pub(crate) url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) body: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) json: bool,
}

/// A token, checked and typed, ready to drive a resumed operation.
#[derive(Debug)]
pub(crate) struct Resumption<M> {
    pub(crate) monitor: M,
    pub(crate) monitor_url: Uri,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) final_uri: Option<Uri>,
    pub(crate) headers: HeaderMap,
    pub(crate) polls: u32,
    pub(crate) retries: u32,
    pub(crate) unhinted_waits: u32,
    pub(crate) elapsed: Duration,
    pub(crate) state: Option<String>,
    pub(crate) cancel: Option<CancelSpec>,
    pub(crate) trace: Option<TraceContext>,
}

/// What a running operation knows, to make a token of.
pub(crate) struct Snapshot<'a> {
    pub(crate) dialect: &'static str,
    pub(crate) monitor: serde_json::Value,
    pub(crate) monitor_url: &'a Uri,
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) final_uri: Option<&'a Uri>,
    pub(crate) headers: &'a HeaderMap,
    /// Credential headers beyond the built-in ones, never kept.
    pub(crate) withheld: &'a [HeaderName],
    pub(crate) polls: u32,
    pub(crate) retries: u32,
    pub(crate) unhinted_waits: u32,
    pub(crate) elapsed: Duration,
    pub(crate) state: Option<&'a str>,
    pub(crate) cancel: Option<CancelSpec>,
    /// The trace context of the operation's start.
    pub(crate) trace: Option<&'a TraceContext>,
}

/// Marks the request of [`ResumeToken::into_request`]: sent through the layer, it resumes the
/// token's operation. Private, so that no other request is ever taken for one.
#[derive(Debug, Clone)]
pub(crate) struct Resuming(pub(crate) ResumeToken);

/// Marks the request of [`ResumeToken::into_cancel_request`]: the layer sends it as the cancel
/// request of the token's operation, then follows the operation.
#[derive(Debug, Clone)]
pub(crate) struct Cancelling(pub(crate) ResumeToken);

impl ResumeToken {
    pub(crate) fn new(s: Snapshot<'_>) -> ResumeToken {
        let mut carried = s.headers.clone();
        headers::strip_credentials(&mut carried, s.withheld);
        ResumeToken(Fields {
            version: VERSION,
            dialect: Some(s.dialect.to_owned()),
            monitor: s.monitor,
            monitor_url: s.monitor_url.to_string(),
            method: s.method.as_str().to_owned(),
            uri: s.uri.to_string(),
            location: None,
            final_state_via: None,
            final_uri: s.final_uri.map(Uri::to_string),
            // Headers whose values are not visible ASCII cannot be written as JSON text faithfully;
            // they are left out rather than mangled.
            headers: carried
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
                })
                .collect(),
            polls: s.polls,
            retries: s.retries,
            unhinted_waits: s.unhinted_waits,
            elapsed_ms: u64::try_from(s.elapsed.as_millis()).unwrap_or(u64::MAX),
            status: s.state.map(str::to_owned),
            cancel: s.cancel,
            traceparent: s.trace.map(TraceContext::traceparent),
            tracestate: s.trace.and_then(|t| t.tracestate().map(str::to_owned)),
            next_poll: None,
        })
    }

    /// The token as a JSON string.
    pub fn to_json(&self) -> String {
        // Serialising strings, numbers, JSON values and a list of pairs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a token from its JSON string, checking every field but the dialect's state, which
    /// the layer that resumes it checks (as serde's `Deserialize` does: both run the same
    /// checks).
    pub fn from_json(json: &str) -> Result<ResumeToken, InvalidToken> {
        serde_json::from_str(json).map_err(|e| InvalidToken(format!("not a resume token: {e}")))
    }

    /// A request that, sent through a stack with [`LongRunningLayer`](crate::LongRunningLayer),
    /// resumes this operation instead of being sent: the `ServiceExt`-friendly form of
    /// [`LongRunning::resume`](crate::LongRunning::resume). Headers you add to it travel with
    /// the polls, on top of those in the token.
    ///
    /// Its URI is the original request's and the token rides in its extensions, so it also
    /// resumes through reqwest-middleware as `reqwest::Request::try_from(token.into_request())`
    /// given to `ClientWithMiddleware::execute` (see `LongRunningMiddleware`). The layer or
    /// middleware must follow the token's [`dialect`](Self::dialect).
    pub fn into_request<B: Default>(self) -> Request<B> {
        let mut request = Request::new(B::default());
        *request.uri_mut() = self.0.uri.parse().unwrap_or_default();
        request.extensions_mut().insert(Resuming(self));
        request
    }

    /// A request that, sent through a stack with [`LongRunningLayer`](crate::LongRunningLayer),
    /// asks the server to cancel this operation and then follows it to its end: the
    /// `ServiceExt`-friendly form of [`LongRunning::cancel`](crate::LongRunning::cancel).
    ///
    /// It is the cancel request itself (method, URL and body from the token); the layer checks
    /// its URL against its origin policy and sends it once. When the token has no way to cancel
    /// ([`can_cancel`](Self::can_cancel) is `false`), nothing is sent and the answer is
    /// [`ErrorKind::CancelUnsupported`](crate::ErrorKind::CancelUnsupported).
    pub fn into_cancel_request<B: From<Bytes>>(self) -> Request<B> {
        let (method, url, body, json) = match &self.0.cancel {
            Some(spec) => (
                Method::from_bytes(spec.method.as_bytes()).unwrap_or(Method::POST),
                spec.url.as_str(),
                Bytes::from(spec.body.clone()),
                spec.json,
            ),
            // Nothing to send: the layer answers `CancelUnsupported` without sending it. Should
            // it reach a server anyway (sent around the layer), it is a harmless GET of the
            // monitor, never a write to the resource.
            None => (
                Method::GET,
                self.0.monitor_url.as_str(),
                Bytes::new(),
                false,
            ),
        };
        let mut request = Request::new(B::from(body));
        *request.method_mut() = method;
        *request.uri_mut() = url.parse().unwrap_or_default();
        if json {
            request.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        request.extensions_mut().insert(Cancelling(self));
        request
    }

    /// Whether the operation can be canceled: its dialect has a cancel request, or the caller
    /// attached a [`CancelVia`](crate::CancelVia) when starting it.
    pub fn can_cancel(&self) -> bool {
        self.0.cancel.is_some()
    }

    /// The dialect that issued the token (`"azure"`, `"google"`, ...).
    pub fn dialect(&self) -> &str {
        self.0.dialect.as_deref().unwrap_or(VERSION_1_DIALECT)
    }

    /// The URL the operation is polled at.
    pub fn monitor_url(&self) -> &str {
        &self.0.monitor_url
    }

    /// The original request's URI.
    pub fn original_uri(&self) -> &str {
        &self.0.uri
    }

    /// Polls sent before the token was taken.
    pub fn polls(&self) -> u32 {
        self.0.polls
    }

    /// Time spent before the token was taken.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.0.elapsed_ms)
    }

    /// The operation's state as the server last reported it before the token was taken.
    pub fn state(&self) -> Option<&str> {
        self.0.status.as_deref()
    }

    /// The W3C `traceparent` of the operation's start: the trace and span the operation began
    /// in, which the spans of the steps and resumptions that continue it link to (feature
    /// `opentelemetry`). A token carries it from process to process whether or not that feature
    /// is on.
    ///
    /// Only `traceparent` and `tracestate` are carried, never baggage. Both are checked
    /// whenever a token is read: a `traceparent` that is not version `00` with lowercase hex
    /// and non-zero ids is dropped (with its `tracestate`), and so is a `tracestate` that is
    /// malformed or over 512 characters; neither makes the token invalid.
    ///
    /// ```
    /// # fn main() -> Result<(), tower_lro::Error> {
    /// let saved = r#"{"version":2,"dialect":"google","monitor":{},
    ///   "monitor_url":"https://x.example/v1/operations/7","method":"POST","uri":"https://x.example/v1/things",
    ///   "traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"rojo=00f067aa0ba902b7"}"#;
    /// let token = tower_lro::ResumeToken::from_json(saved)?;
    /// assert_eq!(token.traceparent(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    /// assert_eq!(token.tracestate(), Some("rojo=00f067aa0ba902b7"));
    ///
    /// // Malformed: dropped, and the token is still good.
    /// let token = tower_lro::ResumeToken::from_json(&saved.replace("00-4bf9", "zz-4bf9"))?;
    /// assert_eq!((token.traceparent(), token.tracestate()), (None, None));
    /// # Ok(()) }
    /// ```
    pub fn traceparent(&self) -> Option<&str> {
        self.0.traceparent.as_deref()
    }

    /// The W3C `tracestate` that came with [`traceparent`](Self::traceparent), when there was a
    /// well-formed one.
    pub fn tracestate(&self) -> Option<&str> {
        self.0.tracestate.as_deref()
    }

    /// How long after the token was made its operation's next poll is due, as the layer that
    /// made it judged: the server's hint (the dialect's
    /// [`wait_hint`](crate::dialect::Dialect::wait_hint)), else the layer's delay schedule,
    /// clamped to its bounds. Set on the token of a [`Polling::AcceptOnly`](crate::Polling)
    /// response (the wait before the first poll), of a [`NextStep`](crate::NextStep) (the same
    /// as its [`poll_in`](crate::NextStep::poll_in)) and of a
    /// [`Progress`](crate::progress::Progress) update that has a `next_poll_in`; `None` on an
    /// error's token and on tokens written before it existed. Resuming a token still polls at
    /// once: waiting is the caller's part.
    ///
    /// ```
    /// # async fn run(token: tower_lro::ResumeToken) {
    /// // A queue of your own: resume no earlier than the server asked.
    /// tokio::time::sleep(token.next_poll_in().unwrap_or_default()).await;
    /// # }
    /// ```
    pub fn next_poll_in(&self) -> Option<Duration> {
        self.0
            .next_poll
            .map(|next| Duration::from_millis(next.in_ms))
    }

    /// Whether [`next_poll_in`](Self::next_poll_in) is the server's own hint (`Retry-After`,
    /// `retry-after-ms`, or the dialect's equivalent) rather than the layer's delay schedule or
    /// a retry backoff: a wait the server asked for must not be shortened, while the layer's
    /// own may be spread.
    pub fn next_poll_hinted(&self) -> bool {
        self.0.next_poll.is_some_and(|next| next.hinted)
    }

    /// The same token, its next poll due `wait` from now.
    pub(crate) fn with_next_poll(mut self, wait: Duration, hinted: bool) -> ResumeToken {
        let in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.0.next_poll = Some(NextPoll { in_ms, hinted });
        self
    }

    /// The same token, `wait` further into the operation: a step's token, which counts the
    /// wait before its next poll as spent.
    pub(crate) fn after(mut self, wait: Duration) -> ResumeToken {
        let wait = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.0.elapsed_ms = self.0.elapsed_ms.saturating_add(wait);
        self
    }

    pub(crate) fn cancel_spec(&self) -> Option<&CancelSpec> {
        self.0.cancel.as_ref()
    }

    /// Validates every field for dialect `D`; a token from another process or version is not
    /// trusted to be well formed.
    pub(crate) fn resumption<D: Dialect>(
        &self,
        dialect: &D,
    ) -> Result<Resumption<D::Monitor>, InvalidToken> {
        let Some(monitor) = dialect.token_monitor(self.dialect(), self.dialect_state()?) else {
            return Err(invalid(format!(
                "a token of the {:?} dialect cannot be resumed by a layer of the {:?} dialect",
                self.dialect(),
                dialect.name()
            )));
        };
        let monitor = monitor.map_err(|e| {
            invalid(format!(
                "the {} monitor state is not usable: {e}",
                self.dialect()
            ))
        })?;
        let common = self.common()?;
        Ok(Resumption {
            monitor,
            monitor_url: common.monitor_url,
            method: common.method,
            uri: common.uri,
            final_uri: common.final_uri,
            headers: common.headers,
            polls: self.0.polls,
            retries: self.0.retries,
            unhinted_waits: self.0.unhinted_waits,
            elapsed: Duration::from_millis(self.0.elapsed_ms),
            state: self.0.status.clone(),
            cancel: self.0.cancel.clone(),
            trace: self.0.trace_context(),
        })
    }

    /// The dialect's state; for a version 1 token, the Azure monitor its fields describe.
    fn dialect_state(&self) -> Result<serde_json::Value, InvalidToken> {
        let state = match (self.0.version, &self.0.monitor) {
            // Version 1 kept the (Azure) state in top-level fields; it is the same state, as the
            // dialect writes it since.
            (1, serde_json::Value::String(kind)) => {
                let mut state = serde_json::Map::new();
                state.insert("kind".into(), kind.clone().into());
                for (name, value) in [
                    ("location", &self.0.location),
                    ("final_state_via", &self.0.final_state_via),
                ] {
                    if let Some(value) = value {
                        state.insert(name.into(), value.clone().into());
                    }
                }
                serde_json::Value::Object(state)
            }
            (1, other) => return Err(invalid(format!("unknown monitor kind {other}"))),
            (_, state) => state.clone(),
        };
        Ok(state)
    }

    fn common(&self) -> Result<Common, InvalidToken> {
        if self.0.version != VERSION && self.0.version != 1 {
            return Err(invalid(format!(
                "token version {} is not supported (expected 1 or {VERSION})",
                self.0.version
            )));
        }
        if self.0.version == VERSION && self.0.dialect.is_none() {
            return Err(invalid("the token names no dialect".into()));
        }
        let mut carried = HeaderMap::new();
        for (name, value) in &self.0.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("bad header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("bad value for header {name}")))?;
            carried.append(name, value);
        }
        // Credentials, payload and conditional headers are never carried; a token that has them
        // was not made by this crate (or by an older one that kept a few `Content-*` headers).
        let mut carried = headers::for_polls(carried);
        headers::strip_credentials(&mut carried, &[]);
        if let Some(cancel) = &self.0.cancel {
            Method::from_bytes(cancel.method.as_bytes())
                .map_err(|_| invalid(format!("bad cancel method {:?}", cancel.method)))?;
            absolute("cancel URL", &cancel.url)?;
        }
        Ok(Common {
            monitor_url: absolute("monitor URL", &self.0.monitor_url)?,
            method: Method::from_bytes(self.0.method.as_bytes())
                .map_err(|_| invalid(format!("bad method {:?}", self.0.method)))?,
            uri: absolute("original URI", &self.0.uri)?,
            final_uri: self
                .0
                .final_uri
                .as_deref()
                .map(|u| absolute("final URI", u))
                .transpose()?,
            headers: carried,
        })
    }
}

/// The dialect of version 1 tokens, which predate dialects.
const VERSION_1_DIALECT: &str = "azure";

/// The dialect-independent fields, checked.
struct Common {
    monitor_url: Uri,
    method: Method,
    uri: Uri,
    final_uri: Option<Uri>,
    headers: HeaderMap,
}

fn invalid(why: String) -> InvalidToken {
    InvalidToken(why)
}

fn absolute(what: &str, text: &str) -> Result<Uri, InvalidToken> {
    let uri: Uri = text
        .parse()
        .map_err(|e| invalid(format!("{what} {text:?} is not a URI: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.authority().is_some() => Ok(uri),
        _ => Err(invalid(format!(
            "{what} {text:?} is not an absolute http(s) URL"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::azure::{Azure, AzureMonitor, FinalStateVia, Kind};
    use crate::dialect::google::Google;
    use crate::error::{Error, ErrorKind};

    /// Reads `json` as an Azure layer resuming it would: the token, then the dialect's state.
    fn resume_as_azure(json: &str) -> Result<(), Error> {
        let token = ResumeToken::from_json(json)?;
        token.resumption(&Azure::new())?;
        Ok(())
    }

    fn token() -> ResumeToken {
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-client-request-id", HeaderValue::from_static("abc"));
        headers.insert("authorization", HeaderValue::from_static("Bearer secret"));
        headers.insert("cookie", HeaderValue::from_static("session=1"));
        headers.insert("x-binary", HeaderValue::from_bytes(b"\xff").unwrap());
        let monitor_url: Uri = "https://management.example/operations/1?api-version=1"
            .parse()
            .unwrap();
        let uri: Uri = "https://management.example/accounts/a?api-version=1"
            .parse()
            .unwrap();
        let monitor = AzureMonitor::from_parts(
            Kind::AzureAsyncOperation,
            Some(HeaderValue::from_static(
                "https://management.example/results/1",
            )),
            Some(FinalStateVia::Location),
        );
        ResumeToken::new(Snapshot {
            dialect: "azure",
            monitor: serde_json::to_value(&monitor).unwrap(),
            monitor_url: &monitor_url,
            method: &Method::POST,
            uri: &uri,
            final_uri: None,
            headers: &headers,
            withheld: &[],
            polls: 3,
            retries: 1,
            unhinted_waits: 2,
            elapsed: Duration::from_millis(4_500),
            state: Some("InProgress"),
            cancel: None,
            trace: None,
        })
    }

    #[test]
    fn the_next_poll_rides_in_the_json_and_older_tokens_have_none() {
        let plain = token();
        assert_eq!(
            (plain.next_poll_in(), plain.next_poll_hinted()),
            (None, false)
        );
        assert!(
            !plain.to_json().contains("next_poll"),
            "{}",
            plain.to_json()
        );
        for (wait, hinted, json) in [
            (1_500, true, r#""next_poll":{"in_ms":1500,"hinted":true}"#),
            (2_000, false, r#""next_poll":{"in_ms":2000}"#),
            (0, true, r#""next_poll":{"in_ms":0,"hinted":true}"#),
        ] {
            let token = token().with_next_poll(Duration::from_millis(wait), hinted);
            assert!(token.to_json().contains(json), "{}", token.to_json());
            let back = ResumeToken::from_json(&token.to_json()).unwrap();
            assert_eq!(back.next_poll_in(), Some(Duration::from_millis(wait)));
            assert_eq!(back.next_poll_hinted(), hinted);
            assert_eq!(back, token);
        }
        let huge = token().with_next_poll(Duration::MAX, false);
        assert_eq!(huge.next_poll_in(), Some(Duration::from_millis(u64::MAX)));
    }

    #[test]
    fn round_trips_through_json_without_credentials() {
        let token = token();
        let json = token.to_json();
        assert!(
            !json.contains("secret") && !json.contains("session"),
            "{json}"
        );
        assert!(json.contains("x-ms-client-request-id"));
        assert!(json.contains(r#""version":2"#) && json.contains(r#""dialect":"azure""#));
        let back = ResumeToken::from_json(&json).unwrap();
        assert_eq!(back, token);
        assert_eq!(back.polls(), 3);
        assert_eq!(back.elapsed(), Duration::from_millis(4_500));
        assert_eq!(back.state(), Some("InProgress"));
        assert_eq!(back.dialect(), "azure");
        assert!(!back.can_cancel());
        let resumption = back.resumption(&Azure::new()).unwrap();
        assert_eq!(
            resumption.monitor,
            AzureMonitor::from_parts(
                Kind::AzureAsyncOperation,
                Some(HeaderValue::from_static(
                    "https://management.example/results/1"
                )),
                Some(FinalStateVia::Location),
            )
        );
        assert_eq!(resumption.method, Method::POST);
        assert_eq!((resumption.retries, resumption.unhinted_waits), (1, 2));
        assert_eq!(resumption.headers.len(), 1);
    }

    #[test]
    fn version_1_tokens_are_still_read_as_azure_tokens() {
        let v1 = r#"{"version":1,"monitor":"azure-async-operation","monitor_url":"https://management.example/operations/1?api-version=1","method":"POST","uri":"https://management.example/accounts/a?api-version=1","location":"https://management.example/results/1","final_state_via":"location","headers":[["x-ms-client-request-id","abc"]],"polls":3,"elapsed_ms":4500,"status":"InProgress"}"#;
        let token = ResumeToken::from_json(v1).unwrap();
        assert_eq!(token.dialect(), "azure");
        let resumption = token.resumption(&Azure::new()).unwrap();
        assert_eq!(resumption.monitor, token_monitor());
        assert_eq!(resumption.polls, 3);
        let refused = Error::from(token.resumption(&Google::new()).unwrap_err());
        assert_eq!(refused.kind(), ErrorKind::InvalidResumeToken);
        assert!(
            refused.to_string().contains("\"azure\" dialect"),
            "{refused}"
        );
        for bad in [
            v1.replace("azure-async-operation", "carrier-pigeon"),
            v1.replace(
                r#""final_state_via":"location""#,
                r#""final_state_via":"somewhere""#,
            ),
            v1.replace(
                r#""monitor":"azure-async-operation""#,
                r#""monitor":{"kind":"location"}"#,
            ),
        ] {
            let err = resume_as_azure(&bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidResumeToken, "{bad}");
        }
    }

    fn token_monitor() -> AzureMonitor {
        AzureMonitor::from_parts(
            Kind::AzureAsyncOperation,
            Some(HeaderValue::from_static(
                "https://management.example/results/1",
            )),
            Some(FinalStateVia::Location),
        )
    }

    #[test]
    fn rejects_bad_tokens() {
        let good: serde_json::Value = serde_json::from_str(&token().to_json()).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v[field] = value;
            v.to_string()
        };
        let with_monitor = |field: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v["monitor"][field] = value;
            v.to_string()
        };
        for bad in [
            String::new(),
            "{}".to_owned(),
            "not json".to_owned(),
            "[1,2]".to_owned(),
            with("version", 3.into()),
            with("version", "1".into()),
            with("dialect", serde_json::Value::Null),
            with("monitor", "carrier-pigeon".into()),
            with_monitor("kind", "carrier-pigeon".into()),
            with_monitor("final_state_via", "somewhere".into()),
            with_monitor("location", "line\nbreak".into()),
            with("monitor_url", "/relative".into()),
            with("monitor_url", "file:///etc/passwd".into()),
            with("uri", "not a uri".into()),
            with("method", "GET POST".into()),
            with("headers", serde_json::json!([["bad name", "v"]])),
            with("headers", serde_json::json!([["x-ok", "line\nbreak"]])),
            with("polls", (-1).into()),
            with(
                "cancel",
                serde_json::json!({"method": "POST", "url": "/relative"}),
            ),
            with(
                "cancel",
                serde_json::json!({"method": "P OST", "url": "https://a.example/x"}),
            ),
        ] {
            let err = resume_as_azure(&bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidResumeToken, "{bad}");
        }
    }

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_trace_context_is_carried_and_a_bad_one_dropped_without_error() {
        let good: serde_json::Value = serde_json::from_str(&token().to_json()).unwrap();
        assert!(good.get("traceparent").is_none(), "none was captured");
        let with = |traceparent: serde_json::Value, tracestate: serde_json::Value| {
            let mut v = good.clone();
            v["traceparent"] = traceparent;
            v["tracestate"] = tracestate;
            ResumeToken::from_json(&v.to_string()).unwrap()
        };

        let carried = with(TRACEPARENT.into(), "rojo=00f067aa0ba902b7".into());
        assert_eq!(carried.traceparent(), Some(TRACEPARENT));
        assert_eq!(carried.tracestate(), Some("rojo=00f067aa0ba902b7"));
        let again = ResumeToken::from_json(&carried.to_json()).unwrap();
        assert_eq!(again, carried, "written and read back whole");
        let resumption = again.resumption(&Azure::new()).unwrap();
        let trace = resumption.trace.unwrap();
        assert_eq!(
            (trace.traceparent().as_str(), trace.tracestate()),
            (TRACEPARENT, Some("rojo=00f067aa0ba902b7"))
        );
        // The steps' tokens carry it on.
        let stepped = carried.clone().after(Duration::from_secs(5));
        assert_eq!(stepped.traceparent(), Some(TRACEPARENT));

        let oversized = format!("{TRACEPARENT}{}", "0".repeat(100_000));
        for bad in [
            serde_json::Value::from("00-not-a-traceparent"),
            oversized.into(),
            TRACEPARENT.to_uppercase().into(),
            TRACEPARENT.replace("4bf9", "\n\u{0}").into(),
            serde_json::json!(17),
            serde_json::json!({"traceparent": TRACEPARENT}),
            serde_json::json!([TRACEPARENT]),
            serde_json::Value::Null,
        ] {
            let token = with(bad.clone(), "rojo=1".into());
            assert_eq!(
                (token.traceparent(), token.tracestate()),
                (None, None),
                "{bad}"
            );
            let json = token.to_json();
            assert!(
                !json.contains("traceparent") && !json.contains("rojo"),
                "{json}"
            );
            assert!(token.resumption(&Azure::new()).unwrap().trace.is_none());
        }
        for bad in [
            serde_json::Value::from("x".repeat(600)),
            format!("rojo={}", "v".repeat(300)).into(),
            "Not A Tracestate".into(),
            serde_json::json!(["rojo=1"]),
        ] {
            let token = with(TRACEPARENT.into(), bad.clone());
            assert_eq!(
                (token.traceparent(), token.tracestate()),
                (Some(TRACEPARENT), None),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_token_of_another_dialect_is_refused_with_the_reason() {
        let mut v: serde_json::Value = serde_json::from_str(&token().to_json()).unwrap();
        v["dialect"] = "x-job-status".into();
        // A dialect of the user's: its state is checked only by its own layer.
        let token = ResumeToken::from_json(&v.to_string()).unwrap();
        let err = Error::from(token.resumption(&Azure::new()).unwrap_err());
        assert_eq!(err.kind(), ErrorKind::InvalidResumeToken);
        assert!(err.to_string().contains("x-job-status"), "{err}");
    }

    #[test]
    fn debug_hides_what_may_be_a_credential() {
        let mut v: serde_json::Value = serde_json::from_str(&token().to_json()).unwrap();
        v["monitor_url"] = "https://f.example/instances/1?code=s3cret-code&api-version=2".into();
        v["uri"] = "https://user:s3cret-pass@f.example/start?sig=s3cret-sig".into();
        v["monitor"]["location"] = "https://f.example/x?token=s3cret-token".into();
        v["headers"] = serde_json::json!([["x-request-id", "s3cret-header"]]);
        v["cancel"] = serde_json::json!({"method": "POST", "url": "https://f.example/t?reason={text}&code=s3cret-cancel"});
        let token = ResumeToken::from_json(&v.to_string()).unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(
            shown.contains("api-version=2") && shown.contains("x-request-id"),
            "{shown}"
        );
        assert!(
            token.to_json().contains("s3cret-code"),
            "the token itself is whole"
        );
    }

    #[test]
    fn credentials_in_a_forged_token_are_dropped() {
        let mut v: serde_json::Value = serde_json::from_str(&token().to_json()).unwrap();
        v["headers"] = serde_json::json!([["authorization", "Bearer forged"], ["x-ok", "1"]]);
        let resumption = ResumeToken::from_json(&v.to_string())
            .unwrap()
            .resumption(&Azure::new())
            .unwrap();
        assert!(!resumption.headers.contains_key("authorization"));
        assert!(resumption.headers.contains_key("x-ok"));
    }

    #[test]
    fn a_cancel_request_is_built_from_the_token() {
        let mut v: serde_json::Value = serde_json::from_str(&token().to_json()).unwrap();
        v["cancel"] = serde_json::json!({"method": "POST", "url": "https://management.example/operations/1:cancel", "body": "{}", "json": true});
        let token = ResumeToken::from_json(&v.to_string()).unwrap();
        assert!(token.can_cancel());
        let request: Request<Bytes> = token.clone().into_cancel_request();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(
            request.uri(),
            "https://management.example/operations/1:cancel"
        );
        assert_eq!(request.body(), &Bytes::from_static(b"{}"));
        assert_eq!(request.headers()["content-type"], "application/json");
        let Some(Cancelling(carried)) = request.extensions().get::<Cancelling>() else {
            panic!("the cancel request is not marked");
        };
        assert_eq!(carried, &token);
    }
}
