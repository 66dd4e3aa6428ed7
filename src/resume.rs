//! Handing an in-flight operation to another task, process or machine.

use std::str::FromStr;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::info::MonitorKind;
use crate::options::FinalStateVia;
use crate::protocol::headers;

/// Everything needed to continue a long-running operation without its initial request: a small,
/// versioned, serde-serialisable value with a JSON string form.
///
/// Get one from a [`Progress`](crate::progress::Progress) update, from the extensions of a
/// response of [`Polling::AcceptOnly`](crate::Polling::AcceptOnly), or from an
/// [`Error`](crate::Error) that gave up on a still-running operation; continue with
/// [`LongRunning::resume`](crate::LongRunning::resume) or by sending
/// [`into_request`](Self::into_request) through the stack.
///
/// A token holds the monitor kind and URL, the original method and URI, the initial `Location`,
/// the final-state choice, the headers polls repeat, and the polls and time spent so far (which
/// keep counting against the resuming layer's `max_polls` and `timeout`: resume a token from a
/// [`TooManyPolls`](crate::ErrorKind::TooManyPolls) error with a layer that allows more). It
/// never holds credentials (`Authorization`, `Cookie`, `Proxy-Authorization`): the resuming
/// stack must apply its own authentication, below the layer. Treat a token as you treat a request
/// you build: it names the URLs the stack will call, so keep it where others cannot write.
///
/// ```
/// # fn run(token: tower_lro::ResumeToken) -> Result<(), tower_lro::Error> {
/// let saved: String = token.to_json();
/// // ... another process ...
/// let token = tower_lro::ResumeToken::from_json(&saved)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeToken {
    version: u32,
    monitor: String,
    monitor_url: String,
    method: String,
    uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    final_state_via: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    final_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(String, String)>,
    #[serde(default)]
    polls: u32,
    #[serde(default)]
    elapsed_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<String>,
}

/// The current token format.
const VERSION: u32 = 1;

/// A token, checked and typed, ready to drive a resumed operation.
#[derive(Debug)]
pub(crate) struct Resumption {
    pub(crate) monitor: MonitorKind,
    pub(crate) monitor_url: Uri,
    pub(crate) method: Method,
    pub(crate) uri: Uri,
    pub(crate) location: Option<HeaderValue>,
    pub(crate) via: Option<FinalStateVia>,
    pub(crate) final_uri: Option<Uri>,
    pub(crate) headers: HeaderMap,
    pub(crate) polls: u32,
    pub(crate) elapsed: Duration,
    pub(crate) status: Option<String>,
}

/// What a running operation knows, to make a token of.
pub(crate) struct Snapshot<'a> {
    pub(crate) monitor: MonitorKind,
    pub(crate) monitor_url: &'a Uri,
    pub(crate) method: &'a Method,
    pub(crate) uri: &'a Uri,
    pub(crate) location: Option<&'a HeaderValue>,
    pub(crate) via: Option<FinalStateVia>,
    pub(crate) final_uri: Option<&'a Uri>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) polls: u32,
    pub(crate) elapsed: Duration,
    pub(crate) status: Option<&'a str>,
}

impl ResumeToken {
    pub(crate) fn new(s: Snapshot<'_>) -> ResumeToken {
        let mut carried = s.headers.clone();
        headers::strip_credentials(&mut carried);
        ResumeToken {
            version: VERSION,
            monitor: s.monitor.as_str().to_owned(),
            monitor_url: s.monitor_url.to_string(),
            method: s.method.as_str().to_owned(),
            uri: s.uri.to_string(),
            location: s.location.and_then(|l| l.to_str().ok()).map(str::to_owned),
            final_state_via: s.via.map(|v| v.as_str().to_owned()),
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
            elapsed_ms: u64::try_from(s.elapsed.as_millis()).unwrap_or(u64::MAX),
            status: s.status.map(str::to_owned),
        }
    }

    /// The token as a JSON string.
    pub fn to_json(&self) -> String {
        // Serialising strings, numbers and a list of pairs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a token from its JSON string, checking it fully; a bad token is an
    /// [`ErrorKind::InvalidResumeToken`] error.
    pub fn from_json(json: &str) -> Result<ResumeToken, Error> {
        let token: ResumeToken = serde_json::from_str(json).map_err(|e| {
            Error::new(
                ErrorKind::InvalidResumeToken,
                format!("not a resume token: {e}"),
            )
        })?;
        token.check()?;
        Ok(token)
    }

    /// A request that, sent through a stack with [`LongRunningLayer`](crate::LongRunningLayer),
    /// resumes this operation instead of being sent: the `ServiceExt`-friendly form of
    /// [`LongRunning::resume`](crate::LongRunning::resume). Headers you add to it travel with
    /// the polls, on top of those in the token.
    pub fn into_request<B: Default>(self) -> Request<B> {
        let mut request = Request::new(B::default());
        *request.uri_mut() = self.uri.parse().unwrap_or_default();
        request.extensions_mut().insert(self);
        request
    }

    /// The URL the operation is polled at.
    pub fn monitor_url(&self) -> &str {
        &self.monitor_url
    }

    /// The original request's URI.
    pub fn original_uri(&self) -> &str {
        &self.uri
    }

    /// Polls sent before the token was taken.
    pub fn polls(&self) -> u32 {
        self.polls
    }

    /// Time spent before the token was taken.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.elapsed_ms)
    }

    /// The last status the server reported before the token was taken.
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    fn check(&self) -> Result<(), Error> {
        self.resumption().map(drop)
    }

    /// Validates every field; a token from another process or version is not trusted to be well
    /// formed.
    pub(crate) fn resumption(&self) -> Result<Resumption, Error> {
        let invalid = |why: String| Error::new(ErrorKind::InvalidResumeToken, why);
        if self.version != VERSION {
            return Err(invalid(format!(
                "token version {} is not supported (expected {VERSION})",
                self.version
            )));
        }
        let absolute = |what: &str, text: &str| -> Result<Uri, Error> {
            let uri: Uri = text
                .parse()
                .map_err(|e| invalid(format!("{what} {text:?} is not a URI: {e}")))?;
            match uri.scheme_str() {
                Some("http" | "https") if uri.authority().is_some() => Ok(uri),
                _ => Err(invalid(format!(
                    "{what} {text:?} is not an absolute http(s) URL"
                ))),
            }
        };
        let monitor = match self.monitor.as_str() {
            "azure-async-operation" => MonitorKind::AzureAsyncOperation,
            "operation-location" => MonitorKind::OperationLocation,
            "location" => MonitorKind::Location,
            "resource" => MonitorKind::Resource,
            other => return Err(invalid(format!("unknown monitor kind {other:?}"))),
        };
        let via = match &self.final_state_via {
            Some(via) => Some(
                FinalStateVia::from_str(via)
                    .map_err(|_| invalid(format!("unknown final-state-via {via:?}")))?,
            ),
            None => None,
        };
        let mut carried = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("bad header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("bad value for header {name}")))?;
            carried.append(name, value);
        }
        // Credentials, payload and conditional headers are never carried; a token that has them
        // was not made by this crate (or by an older one that kept a few `Content-*` headers).
        let mut carried = headers::for_polls(carried);
        headers::strip_credentials(&mut carried);
        let location = match &self.location {
            Some(l) => {
                Some(HeaderValue::from_str(l).map_err(|_| invalid("bad initial Location".into()))?)
            }
            None => None,
        };
        Ok(Resumption {
            monitor,
            monitor_url: absolute("monitor URL", &self.monitor_url)?,
            method: Method::from_bytes(self.method.as_bytes())
                .map_err(|_| invalid(format!("bad method {:?}", self.method)))?,
            uri: absolute("original URI", &self.uri)?,
            location,
            via,
            final_uri: self
                .final_uri
                .as_deref()
                .map(|u| absolute("final URI", u))
                .transpose()?,
            headers: carried,
            polls: self.polls,
            elapsed: Duration::from_millis(self.elapsed_ms),
            status: self.status.clone(),
        })
    }
}

impl FromStr for ResumeToken {
    type Err = Error;

    /// The same as [`ResumeToken::from_json`].
    fn from_str(json: &str) -> Result<Self, Error> {
        ResumeToken::from_json(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let location = HeaderValue::from_static("https://management.example/results/1");
        ResumeToken::new(Snapshot {
            monitor: MonitorKind::AzureAsyncOperation,
            monitor_url: &monitor_url,
            method: &Method::POST,
            uri: &uri,
            location: Some(&location),
            via: Some(FinalStateVia::Location),
            final_uri: None,
            headers: &headers,
            polls: 3,
            elapsed: Duration::from_millis(4_500),
            status: Some("InProgress"),
        })
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
        let back = ResumeToken::from_json(&json).unwrap();
        assert_eq!(back, token);
        assert_eq!(back.polls(), 3);
        assert_eq!(back.elapsed(), Duration::from_millis(4_500));
        assert_eq!(back.status(), Some("InProgress"));
        let resumption = back.resumption().unwrap();
        assert_eq!(resumption.monitor, MonitorKind::AzureAsyncOperation);
        assert_eq!(resumption.method, Method::POST);
        assert_eq!(resumption.via, Some(FinalStateVia::Location));
        assert_eq!(resumption.headers.len(), 1);
    }

    #[test]
    fn rejects_bad_tokens() {
        let good: serde_json::Value = serde_json::from_str(&token().to_json()).unwrap();
        let with = |field: &str, value: serde_json::Value| {
            let mut v = good.clone();
            v[field] = value;
            v.to_string()
        };
        for bad in [
            String::new(),
            "{}".to_owned(),
            "not json".to_owned(),
            "[1,2]".to_owned(),
            with("version", 2.into()),
            with("version", "1".into()),
            with("monitor", "carrier-pigeon".into()),
            with("monitor_url", "/relative".into()),
            with("monitor_url", "file:///etc/passwd".into()),
            with("uri", "not a uri".into()),
            with("method", "GET POST".into()),
            with("final_state_via", "somewhere".into()),
            with("headers", serde_json::json!([["bad name", "v"]])),
            with("headers", serde_json::json!([["x-ok", "line\nbreak"]])),
            with("polls", (-1).into()),
        ] {
            let err = ResumeToken::from_json(&bad).unwrap_err();
            assert_eq!(*err.kind(), ErrorKind::InvalidResumeToken, "{bad}");
        }
    }

    #[test]
    fn credentials_in_a_forged_token_are_dropped() {
        let mut v: serde_json::Value = serde_json::from_str(&token().to_json()).unwrap();
        v["headers"] = serde_json::json!([["authorization", "Bearer forged"], ["x-ok", "1"]]);
        let resumption = ResumeToken::from_json(&v.to_string())
            .unwrap()
            .resumption()
            .unwrap();
        assert!(!resumption.headers.contains_key("authorization"));
        assert!(resumption.headers.contains_key("x-ok"));
    }
}
