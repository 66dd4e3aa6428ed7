//! [`Google`]: Google's long-running operations over REST/JSON (AIP-151, PROTOCOL §9).

use std::borrow::Cow;
use std::fmt;

use http::{response, HeaderMap, Method, StatusCode, Uri};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::dialect::{
    is_transient, CancelRequest, Dialect, ErrorDetail, Follow, InitialBody, InitialHead, Observer,
    PollAt, RequestHead, StatusHead, Verdict,
};
use crate::protocol::headers;
use crate::protocol::json::{detail_text, number, text, utf8, Malformed, Text};

/// Google's long-running operations (AIP-151) over REST/JSON: a method answers `200` with an
/// `Operation` (`name`, `done`, `metadata`, and `response` or `error`), polled at
/// `{origin}/{version}/{name}` until `done`. Choose it for a layer with
/// [`LongRunningLayer::with_dialect`](crate::LongRunningLayer::with_dialect): an `Operation`
/// is too generic a body to be told apart from an Azure response by itself.
///
/// - The final response is the last status response, status, headers and bytes unchanged (the
///   result is its `response` member).
/// - `error.code` 1 (`CANCELLED`) is [`Canceled`](crate::ErrorKind::Canceled), any other
///   code [`Failed`](crate::ErrorKind::Failed); [`Error::code`](crate::Error::code) is the
///   number as text (`"3"`), [`Error::message`](crate::Error::message) the message.
/// - An error answer of the API itself (`{"error": {"code", "message", "status"}}`) gives its
///   `status` (`"NOT_FOUND"`) as the code.
/// - Progress: `metadata.progressPercent` (or `progressPercentage`, `percentComplete`) when
///   it is a number.
/// - Cancel: `POST {origin}/{version}/{name}:cancel` with `{}`; a `501` is
///   [`CancelUnsupported`](crate::ErrorKind::CancelUnsupported).
///
/// ```
/// use tower_lro::{Google, LongRunningLayer};
///
/// let layer = LongRunningLayer::with_dialect(Google::new());
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Google {
    _private: (),
}

impl Google {
    /// The dialect.
    pub fn new() -> Self {
        Google::default()
    }
}

/// What the [`Google`] dialect remembers about an operation: its `name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoogleMonitor {
    name: String,
}

impl Dialect for Google {
    type Monitor = GoogleMonitor;

    fn name(&self) -> &'static str {
        "google"
    }

    fn kind(&self, _: &GoogleMonitor) -> &'static str {
        "google-operation"
    }

    fn initial_head<'a>(
        &self,
        request: &RequestHead<'_>,
        response: &'a response::Parts,
    ) -> InitialHead<'a, GoogleMonitor> {
        // Reads never start an operation; a body that cannot be JSON is not one.
        let read = matches!(*request.method(), Method::GET | Method::HEAD);
        if read || response.status != StatusCode::OK || !headers::may_be_json(&response.headers) {
            return InitialHead::NotLongRunning;
        }
        InitialHead::ReadBody { otherwise: None }
    }

    fn initial_body<'a>(
        &self,
        request: &RequestHead<'_>,
        _: &'a response::Parts,
        body: &'a [u8],
        // `initial_head` never names an operation to follow before the body is read.
        _: Option<Follow<'a, GoogleMonitor>>,
        seen: &mut Observer<'_>,
    ) -> InitialBody<'a, GoogleMonitor> {
        let Some(operation) = parse_operation(body).ok().filter(Operation::looks_like_one) else {
            // Not an `Operation`: the method answered at once.
            return InitialBody::Final;
        };
        match judge(operation, seen) {
            Judged::Running(name) => {
                let poll_at = format!("/{}{name}", version_prefix(request.uri()));
                let monitor = GoogleMonitor { name };
                InitialBody::Follow(Follow::new(
                    monitor,
                    PollAt::FromOriginal(Cow::Owned(poll_at.into_bytes())),
                ))
            }
            Judged::Done => InitialBody::Final,
            Judged::Failed(detail) => InitialBody::Failed(detail),
            Judged::Canceled(detail) => InitialBody::Canceled(detail),
            Judged::Malformed(why) => InitialBody::Malformed(why),
        }
    }

    fn status_head<'a>(&self, _: &GoogleMonitor, response: &'a response::Parts) -> StatusHead<'a> {
        // An `Operation` comes with a 200 only; the default would read any 2xx.
        if response.status == StatusCode::OK {
            StatusHead::ReadBody
        } else if is_transient(response.status) {
            StatusHead::Judged(Verdict::Transient)
        } else {
            StatusHead::Judged(Verdict::Unexpected)
        }
    }

    fn status_body<'a>(
        &self,
        _: &mut GoogleMonitor,
        _: &RequestHead<'_>,
        _: &'a response::Parts,
        body: &'a [u8],
        seen: &mut Observer<'_>,
    ) -> Verdict<'a> {
        let operation = match parse_operation(body) {
            Ok(operation) => operation,
            Err(malformed) => return Verdict::Malformed(malformed.0),
        };
        match judge(operation, seen) {
            Judged::Running(_) => Verdict::Running { moved: None },
            Judged::Done => Verdict::Done,
            Judged::Failed(detail) => Verdict::Failed(detail),
            Judged::Canceled(detail) => Verdict::Canceled(detail),
            Judged::Malformed(why) => Verdict::Malformed(why),
        }
    }

    fn error_detail<'a>(&self, _: &'a HeaderMap, body: Option<&'a [u8]>) -> ErrorDetail<'a> {
        body.and_then(|body| parse_rest_error(body).ok())
            .map(|error| {
                let code = error.status.or(error.code);
                ErrorDetail::default().with_detail(code, error.message)
            })
            .unwrap_or_default()
    }

    fn cancel(&self, _: &GoogleMonitor, polled: &Uri) -> Option<CancelRequest> {
        let url = match polled.query() {
            Some(query) => format!("{}:cancel?{query}", polled.path()),
            None => format!("{}:cancel", polled.path()),
        };
        Some(CancelRequest::new(Method::POST, url).json("{}"))
    }
}

/// `/{version}/` of the original request's path (`/v1/`), or `/` when it has none.
fn version_prefix(uri: &Uri) -> String {
    match uri.path().trim_start_matches('/').split_once('/') {
        Some((version, _)) if !version.is_empty() => format!("{version}/"),
        _ => String::new(),
    }
}

/// The `Operation` members, as read.
#[derive(Default)]
struct Operation<'a> {
    name: Option<Option<Cow<'a, str>>>,
    done: Option<&'a RawValue>,
    has_response: bool,
    error: Option<&'a RawValue>,
    metadata: Option<&'a RawValue>,
    /// A member an `Operation` does not have.
    foreign: bool,
}

impl Operation<'_> {
    /// Whether an initial body is an `Operation` rather than a resource that happens to have a
    /// `name`: only `Operation` members, a string `name`, and either a `done`, `metadata`,
    /// `response` or `error`, or a name under `operations/`.
    fn looks_like_one(&self) -> bool {
        let Some(Some(name)) = &self.name else {
            return false;
        };
        let shaped = self.done.is_some()
            || self.metadata.is_some()
            || self.has_response
            || self.error.is_some();
        !self.foreign
            && (shaped || name.starts_with("operations/") || name.contains("/operations/"))
    }
}

enum Judged<'a> {
    Running(String),
    Done,
    Failed(ErrorDetail<'a>),
    Canceled(ErrorDetail<'a>),
    Malformed(String),
}

/// What an `Operation` says (GOOGLE §3), recording its name and progress.
fn judge<'a>(operation: Operation<'a>, seen: &mut Observer<'_>) -> Judged<'a> {
    let name = match operation.name {
        Some(Some(name)) if !name.is_empty() => name,
        Some(_) => return Judged::Malformed("the operation's `name` is not a string".into()),
        None => return Judged::Malformed("the operation has no `name`".into()),
    };
    seen.operation_name(&name);
    if let Some(percent) = operation.metadata.and_then(progress) {
        seen.percent_complete(percent);
    }
    let done = match operation.done.map(RawValue::get) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Judged::Malformed(format!("the operation's `done` is {other}, not a boolean"))
        }
    };
    if !done {
        return Judged::Running(name.into_owned());
    }
    match (operation.error, operation.has_response) {
        (Some(error), _) => {
            let (code, message) = status_of(error);
            let canceled = code.as_deref() == Some("1");
            let detail = ErrorDetail::reported(if canceled { "CANCELLED" } else { "FAILED" })
                .with_detail(code, message);
            if canceled {
                Judged::Canceled(detail)
            } else {
                Judged::Failed(detail)
            }
        }
        (None, true) => Judged::Done,
        (None, false) => {
            Judged::Malformed("the operation is done without a `response` or an `error`".into())
        }
    }
}

fn parse_operation(body: &[u8]) -> Result<Operation<'_>, Malformed> {
    let mut de = serde_json::Deserializer::from_str(utf8(body, "operation")?);
    de.deserialize_map(OperationVisitor)
        .and_then(|parsed| de.end().map(|()| parsed))
        .map_err(|e| Malformed(format!("the body is not a JSON operation object: {e}")))
}

struct OperationVisitor;

impl<'de> Visitor<'de> for OperationVisitor {
    type Value = Operation<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Operation::default();
        // Proto3 JSON reads `null` as a member's default: `done: null` is `false`, and an
        // `error: null` beside a `response` is no error.
        let present = |raw: &'de RawValue| Some(raw).filter(|raw| raw.get() != "null");
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key.0 {
                "name" => out.name = Some(text(map.next_value()?)),
                "done" => out.done = present(map.next_value()?),
                "error" => out.error = present(map.next_value()?),
                "metadata" => out.metadata = present(map.next_value()?),
                "response" => {
                    out.has_response = map.next_value::<Option<IgnoredAny>>()?.is_some();
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    out.foreign = true;
                }
            }
        }
        Ok(out)
    }
}

/// `google.rpc.Code` as its decimal text, when it says something: proto3 JSON reads a member at
/// its default as an absent one, so `0` (and an empty message) is no detail.
fn rpc_code(raw: &RawValue) -> Option<Cow<'_, str>> {
    let code = raw.get();
    code.parse::<i64>()
        .is_ok_and(|code| code != 0)
        .then_some(Cow::Borrowed(code))
}

/// `google.rpc.Status`: the integer `code` as its decimal text, and the message; a `0` code or
/// an empty (or blank) message is absent.
fn status_of(raw: &RawValue) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    #[derive(Deserialize)]
    struct Status<'a> {
        #[serde(borrow, default)]
        code: Option<&'a RawValue>,
        #[serde(borrow, default)]
        message: Option<&'a RawValue>,
    }
    match serde_json::from_str::<Status<'_>>(raw.get()) {
        Ok(status) => (
            status.code.and_then(rpc_code),
            detail_text(status.message.and_then(text)),
        ),
        Err(_) => (None, None),
    }
}

/// `metadata`'s progress percentage, when it has one.
fn progress(raw: &RawValue) -> Option<f64> {
    struct Progress;
    impl<'de> Visitor<'de> for Progress {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut percent = None;
            while let Some(key) = map.next_key::<Text<'de>>()? {
                match &*key.0 {
                    "progressPercent" | "progressPercentage" | "percentComplete" => {
                        percent = percent.or(number(map.next_value()?));
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(percent)
        }
    }
    if !raw.get().starts_with('{') {
        return None;
    }
    serde_json::Deserializer::from_str(raw.get())
        .deserialize_map(Progress)
        .ok()
        .flatten()
}

/// An error answer of a Google REST API: `{"error": {"code", "message", "status"}}`.
struct RestError<'a> {
    code: Option<Cow<'a, str>>,
    message: Option<Cow<'a, str>>,
    status: Option<Cow<'a, str>>,
}

fn parse_rest_error(body: &[u8]) -> Result<RestError<'_>, Malformed> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        error: &'a RawValue,
    }
    #[derive(Deserialize)]
    struct Inner<'a> {
        #[serde(borrow, default)]
        code: Option<&'a RawValue>,
        #[serde(borrow, default)]
        message: Option<&'a RawValue>,
        #[serde(borrow, default)]
        status: Option<&'a RawValue>,
    }
    let text_of = |e: serde_json::Error| Malformed(e.to_string());
    let envelope: Envelope<'_> = serde_json::from_slice(body).map_err(text_of)?;
    let inner: Inner<'_> = serde_json::from_str(envelope.error.get()).map_err(text_of)?;
    Ok(RestError {
        code: inner.code.and_then(rpc_code),
        message: detail_text(inner.message.and_then(text)),
        status: detail_text(inner.status.and_then(text)),
    })
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;
    use crate::dialect::table;
    use crate::dialect::testing::{self, Recorder};

    const URI: &str = "https://run.example/v2/projects/p/locations/l/services?serviceId=s";

    /// The original request of a table row.
    fn request(method: Method) -> Result<Request<()>, http::Error> {
        Request::builder().method(method).uri(URI).body(())
    }

    /// The initial body's verdict, and what it recorded.
    fn initial_body(method: Method, body: &str) -> Result<(String, Recorder), http::Error> {
        let request = request(method)?;
        let response = testing::response_head(200, &[("content-type", "application/json")])?;
        let mut seen = Recorder::new();
        let verdict = Google::new().initial_body(
            &testing::request_head(&request),
            &response,
            body.as_bytes(),
            None,
            &mut seen.observer(),
        );
        Ok((table::initial_body(&verdict), seen))
    }

    #[test]
    fn initial_heads() -> Result<(), http::Error> {
        let google = Google::new();
        for (method, status, headers, expected) in [
            (
                Method::POST,
                200,
                &[("content-type", "application/json")][..],
                "read, else pass",
            ),
            (Method::PATCH, 200, &[][..], "read, else pass"),
            (Method::DELETE, 200, &[][..], "read, else pass"),
            (Method::GET, 200, &[][..], "pass"),
            (Method::POST, 202, &[][..], "pass"),
            (Method::POST, 400, &[][..], "pass"),
            (
                Method::POST,
                200,
                &[("content-type", "text/html")][..],
                "pass",
            ),
        ] {
            let request = request(method.clone())?;
            let response = testing::response_head(status, headers)?;
            let verdict = google.initial_head(&testing::request_head(&request), &response);
            assert_eq!(table::initial_head(&verdict), expected, "{method} {status}");
        }
        Ok(())
    }

    #[test]
    fn initial_bodies() -> Result<(), http::Error> {
        let running = r#"{"name":"projects/p/locations/l/operations/op-1","metadata":{"@type":"t","progressPercent":40},"done":false}"#;
        let (verdict, observed) = initial_body(Method::POST, running)?;
        assert_eq!(
            verdict,
            r#"follow GoogleMonitor { name: "projects/p/locations/l/operations/op-1" } from-original /v2/projects/p/locations/l/operations/op-1"#
        );
        assert_eq!(observed.percent_complete(), Some(40.0));
        assert_eq!(
            observed.operation_name(),
            Some("projects/p/locations/l/operations/op-1")
        );
        for (body, expected) in [
            // `done: false` is omitted by proto3 JSON.
            (
                r#"{"name":"operations/op-2"}"#,
                r#"follow GoogleMonitor { name: "operations/op-2" } from-original /v2/operations/op-2"#,
            ),
            (
                r#"{"name":"x/operations/1","done":true,"response":{"@type":"t"}}"#,
                "final",
            ),
            (
                r#"{"name":"x/operations/1","done":true,"error":{"code":3,"message":"bad"}}"#,
                "failed FAILED/3/bad",
            ),
            (
                r#"{"name":"x/operations/1","done":true,"error":{"code":1}}"#,
                "canceled CANCELLED/1/-",
            ),
            (r#"{"name":"x/operations/1","done":true}"#, "malformed"),
            (r#"{"name":"x/operations/1","done":"yes"}"#, "malformed"),
            // Not an `Operation`: the method's own result.
            (
                r#"{"name":"projects/p/services/s","uri":"https://s.example"}"#,
                "final",
            ),
            (r#"{"name":"projects/p/services/s"}"#, "final"),
            (r#"{"done":false}"#, "final"),
            (r#"{"name":7,"done":false}"#, "final"),
            ("[]", "final"),
            ("not json", "final"),
        ] {
            assert_eq!(initial_body(Method::POST, body)?.0, expected, "{body}");
        }
        Ok(())
    }

    #[test]
    fn polls() -> Result<(), http::Error> {
        let google = Google::new();
        let monitor = GoogleMonitor {
            name: "operations/1".into(),
        };
        for (status, expected) in [
            (200, "read"),
            (404, "unexpected"),
            (403, "unexpected"),
            (429, "transient"),
            (503, "transient"),
            (501, "unexpected"),
        ] {
            assert_eq!(
                table::status_head(
                    &google.status_head(&monitor, &testing::response_head(status, &[])?)
                ),
                expected,
                "{status}"
            );
        }
        let post = request(Method::POST)?;
        let head = testing::request_head(&post);
        let response = testing::response_head(200, &[])?;
        for (body, expected) in [
            (
                r#"{"name":"operations/1","metadata":{"progressPercent":"x"}}"#,
                "running",
            ),
            (
                r#"{"name":"operations/1","done":true,"response":{}}"#,
                "done",
            ),
            (
                r#"{"name":"operations/1","done":true,"error":{"code":13,"message":"m","details":[]}}"#,
                "failed FAILED/13/m",
            ),
            (
                r#"{"name":"operations/1","done":true,"error":{"code":1,"message":"stop"}}"#,
                "canceled CANCELLED/1/stop",
            ),
            (r#"{"done":true,"response":{}}"#, "malformed"),
            (
                r#"{"name":"operations/1","done":true,"error":null,"response":{}}"#,
                "done",
            ),
            (
                r#"{"name":"operations/1","done":true,"error":{"code":5},"response":null}"#,
                "failed FAILED/5/-",
            ),
            // A `0` code and an empty message are proto3's defaults: no detail, still failed.
            (
                r#"{"name":"operations/1","done":true,"error":{"code":0,"message":""}}"#,
                "failed FAILED/-/-",
            ),
            (
                r#"{"name":"operations/1","done":true,"error":{"code":9,"message":"  "}}"#,
                "failed FAILED/9/-",
            ),
            (r#"{"name":"operations/1","done":null}"#, "running"),
            (
                r#"{"name":"operations/1","done":true,"response":null}"#,
                "malformed",
            ),
            (r#"{"name":"operations/1","done":1}"#, "malformed"),
            (r#"{"name":"operations/1","done":true}"#, "malformed"),
            ("", "malformed"),
            ("[]", "malformed"),
        ] {
            let verdict = google.status_body(
                &mut monitor.clone(),
                &head,
                &response,
                body.as_bytes(),
                &mut Recorder::new().observer(),
            );
            assert_eq!(table::verdict(&verdict), expected, "{body}");
        }
        Ok(())
    }

    #[test]
    fn rest_errors_give_their_status_as_the_code() {
        let google = Google::new();
        let headers = HeaderMap::new();
        let body = br#"{"error":{"code":404,"message":"gone","status":"NOT_FOUND"}}"#;
        let detail = google.error_detail(&headers, Some(body));
        assert_eq!(detail.code.as_deref(), Some("NOT_FOUND"));
        assert_eq!(detail.message.as_deref(), Some("gone"));
        let body = br#"{"error":{"code":500}}"#;
        assert_eq!(
            google.error_detail(&headers, Some(body)).code.as_deref(),
            Some("500")
        );
        // An empty `status` leaves the number to speak; a `0` code and an empty message are
        // absent, as proto3 JSON reads a member at its default.
        let body = br#"{"error":{"code":503,"message":"","status":""}}"#;
        let detail = google.error_detail(&headers, Some(body));
        assert_eq!(
            (detail.code.as_deref(), detail.message.as_deref()),
            (Some("503"), None)
        );
        let body = br#"{"error":{"code":0,"message":" ","status":" "}}"#;
        assert_eq!(
            google.error_detail(&headers, Some(body)),
            ErrorDetail::default()
        );
        assert_eq!(
            google.error_detail(&headers, Some(b"<html>")),
            ErrorDetail::default()
        );
        assert_eq!(google.error_detail(&headers, None), ErrorDetail::default());
    }

    #[test]
    fn cancel_is_a_post_of_the_operation_with_an_empty_object() {
        let monitor = GoogleMonitor {
            name: "operations/1".into(),
        };
        let polled: Uri = "https://run.example/v2/operations/1".parse().unwrap();
        let cancel = Google::new().cancel(&monitor, &polled).unwrap();
        assert_eq!(cancel.method(), Method::POST);
        assert_eq!(cancel.url(), "/v2/operations/1:cancel");
        assert_eq!(cancel.body(), "{}");
        let polled: Uri = "https://run.example/v2/operations/1?alt=json"
            .parse()
            .unwrap();
        let cancel = Google::new().cancel(&monitor, &polled).unwrap();
        assert_eq!(cancel.url(), "/v2/operations/1:cancel?alt=json");
    }

    #[test]
    fn the_version_is_the_first_path_segment() {
        for (uri, prefix) in [
            ("https://a.example/v1/projects/p", "v1/"),
            ("https://a.example/v1beta1/x", "v1beta1/"),
            ("https://a.example/v2", ""),
            ("https://a.example/", ""),
        ] {
            assert_eq!(version_prefix(&uri.parse().unwrap()), prefix, "{uri}");
        }
    }
}
