//! [`DurableFunctions`]: the HTTP API of Azure Durable Functions orchestrations (PROTOCOL §13).

use std::borrow::Cow;
use std::fmt;

use http::{header, response, HeaderMap, Method, StatusCode, Uri};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::dialect::{
    is_transient, CancelHead, CancelRequest, Dialect, ErrorDetail, Follow, InitialBody,
    InitialHead, Observer, PollAt, RequestHead, StatusHead, Verdict,
};
use crate::protocol::headers;
use crate::protocol::json::{detail_text, utf8, Malformed, Text};

/// The reason a terminate request gives, in place of the `{text}` placeholder.
const TERMINATE_REASON: &str = "canceled by tower-lro";

/// Azure Durable Functions orchestrations, through the extension's HTTP API (the
/// `HttpApiHandler` of azure-functions-durable-extension): a starter function answers
/// `202 Accepted` with `Location` (the instance's `statusQueryGetUri`) and a body naming the
/// instance's management URLs; the status URL answers `202` while the orchestration runs and
/// `200` once it ended, with `{"runtimeStatus", "output", "customStatus", …}`.
///
/// | answer of the status URL | `runtimeStatus` | verdict |
/// |---|---|---|
/// | `202` | `Pending`, `Running`, `ContinuedAsNew`, `Suspended` (or no body) | running |
/// | `200` | `Completed` | done: this response is the final one (the result is its `output`) |
/// | `200`, `400`, `500` | `Failed` | [`Failed`](crate::ErrorKind::Failed) |
/// | `200`, `400`, `500` | `Terminated`, `Canceled` | [`Canceled`](crate::ErrorKind::Canceled) |
/// | `200`, `202` | any other value, or one the status code contradicts | [`MalformedStatus`](crate::ErrorKind::MalformedStatus) |
/// | `400`, `500` | no status body, or a running one | [`UnexpectedStatus`](crate::ErrorKind::UnexpectedStatus) (`400`), retried (`500`) |
///
/// - A failed orchestration's `output` is its message: a string, or an object whose
///   `ErrorMessage` (or `message`) is the [`message`](crate::Error::message) and whose
///   `ErrorType` is the [`code`](crate::Error::code). A terminated one's `output` is the
///   reason it was terminated.
/// - A `500` (with `returnInternalServerErrorOnFailure=true`) or `400` whose body reports
///   `Failed` or `Terminated` ended the orchestration: it is `Failed` or `Canceled` like the
///   `200`, never retried as a server error. Their body is read only when it may be JSON.
/// - A starter that waits (`WaitForCompletionOrCreateCheckStatusResponseAsync`) answers `200`
///   (or, with `returnInternalServerErrorOnFailure=true`, `500`) with the instance status once
///   the orchestration ended, without a `Location`. Such an answer whose body may be JSON is
///   read: an instance status (string `instanceId` and `runtimeStatus`) that reports
///   `Completed` is returned as it is, `Failed` is [`Failed`](crate::ErrorKind::Failed) and
///   `Terminated` or `Canceled` is [`Canceled`](crate::ErrorKind::Canceled) (the output as
///   above), any other `runtimeStatus` is [`MalformedStatus`](crate::ErrorKind::MalformedStatus);
///   a body that is not an instance status (the starter's own answer), or one that cannot be
///   read whole, is returned as it is.
/// - Cancel: `POST` of the start body's `terminatePostUri`, its `{text}` placeholder (or the
///   isolated worker's `{{text}}`) replaced by the URL-encoded reason `canceled by tower-lro`. The extension answers `202`; a `410
///   Gone` (the instance already finished) is taken as accepted too, so the layer polls once
///   more and returns how it really ended. Without a `terminatePostUri` in the start body,
///   cancel is [`CancelUnsupported`](crate::ErrorKind::CancelUnsupported).
/// - Any method may start an orchestration (starter functions are often `GET` triggers), and a
///   `GET` of a `statusQueryGetUri` itself waits for the orchestration to end.
///
/// # Credentials in tokens
///
/// Every URL of this API carries the function app's system key as its `code=` query
/// parameter. A [`ResumeToken`](crate::ResumeToken) of an orchestration holds its status URL
/// and its `terminatePostUri`, so **a token holds that key**: store it as the secret it is. Its
/// `Debug` form redacts query values.
///
/// ```
/// use tower_lro::{DurableFunctions, LongRunningLayer};
///
/// let layer = LongRunningLayer::with_dialect(DurableFunctions::new());
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DurableFunctions {
    _private: (),
}

impl DurableFunctions {
    /// The dialect.
    pub fn new() -> Self {
        DurableFunctions::default()
    }
}

/// What the [`DurableFunctions`] dialect remembers about an orchestration: its instance id and
/// its `terminatePostUri` (which holds the system key: see
/// [Credentials in tokens](DurableFunctions#credentials-in-tokens)).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableMonitor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    terminate: Option<String>,
}

impl fmt::Debug for DurableMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The terminate URL's query holds the system key.
        f.debug_struct("DurableMonitor")
            .field("id", &self.id)
            .field("terminate", &self.terminate.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Dialect for DurableFunctions {
    type Monitor = DurableMonitor;

    fn name(&self) -> &'static str {
        "durable-functions"
    }

    fn initial_head<'a>(
        &self,
        _: &RequestHead<'_>,
        response: &'a response::Parts,
    ) -> InitialHead<'a, DurableMonitor> {
        match response.status.as_u16() {
            // `WaitForCompletionOrCreateCheckStatusResponseAsync` answers an orchestration that
            // already ended with its instance status: a failed one must not pass as a result.
            200 | 500 if headers::may_be_json(&response.headers) => {
                return InitialHead::ReadBody { otherwise: None }
            }
            202 => {}
            _ => return InitialHead::NotLongRunning,
        }
        let Some(location) = response.headers.get(header::LOCATION) else {
            return InitialHead::NotLongRunning;
        };
        let follow = Follow::new(DurableMonitor::default(), PollAt::url(location));
        if headers::may_be_json(&response.headers) {
            // The body names the terminate URL; unreadable, the orchestration is still followed.
            InitialHead::ReadBody {
                otherwise: Some(follow),
            }
        } else {
            InitialHead::Follow(follow)
        }
    }

    fn initial_body<'a>(
        &self,
        _: &RequestHead<'_>,
        _: &'a response::Parts,
        body: &'a [u8],
        otherwise: Option<Follow<'a, DurableMonitor>>,
        seen: &mut Observer<'_>,
    ) -> InitialBody<'a, DurableMonitor> {
        // Without a status URL to follow, the body is a starter's `200`/`500` (PROTOCOL §13).
        let Some(follow) = otherwise else {
            return ended(body, seen);
        };
        let links = parse_links(body);
        if let Some(id) = &links.id {
            seen.operation_id(id);
        }
        let monitor = DurableMonitor {
            id: links.id.map(Cow::into_owned),
            terminate: links.terminate.map(Cow::into_owned),
        };
        InitialBody::Follow(Follow::new(monitor, follow.poll_at))
    }

    fn status_head<'a>(&self, _: &DurableMonitor, response: &'a response::Parts) -> StatusHead<'a> {
        status_head(response.status, &response.headers)
    }

    fn status_body<'a>(
        &self,
        _: &mut DurableMonitor,
        _: &RequestHead<'_>,
        response: &'a response::Parts,
        body: &'a [u8],
        seen: &mut Observer<'_>,
    ) -> Verdict<'a> {
        judge(response.status, body, seen)
    }

    fn cancel(&self, monitor: &DurableMonitor, _: &Uri) -> Option<CancelRequest> {
        let terminate = monitor.terminate.as_deref()?;
        let reason: String =
            url::form_urlencoded::byte_serialize(TERMINATE_REASON.as_bytes()).collect::<String>();
        // The isolated worker's payload doubles the braces (`reason={{text}}`): replaced
        // first, or the inner `{text}` would leave `{…}` around the reason.
        let url = terminate
            .replace("{{text}}", &reason)
            .replace("{text}", &reason);
        Some(CancelRequest::new(Method::POST, url))
    }

    fn cancel_head(&self, _: &DurableMonitor, status: StatusCode) -> CancelHead {
        match status.as_u16() {
            // 410: the instance already finished; polling once more tells how.
            200..=299 | 410 => CancelHead::Accepted,
            404 | 405 | 501 => CancelHead::Unsupported,
            _ => CancelHead::Unexpected,
        }
    }
}

/// What a status answer's head says: every answer that may carry an instance status is read.
fn status_head<'a>(status: StatusCode, headers: &HeaderMap) -> StatusHead<'a> {
    match status.as_u16() {
        200 | 202 => StatusHead::ReadBody,
        // A failed or terminated instance, when the body says so (PROTOCOL §13).
        400 | 500 if headers::may_be_json(headers) => StatusHead::ReadBody,
        _ if is_transient(status) => StatusHead::Judged(Verdict::Transient),
        _ => StatusHead::Judged(Verdict::Unexpected),
    }
}

/// The `runtimeStatus` values, as the extension spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Running,
    Completed,
    Failed,
    Terminated,
}

fn runtime(status: &str) -> Option<Runtime> {
    Some(match status {
        "Pending" | "Running" | "ContinuedAsNew" | "Suspended" => Runtime::Running,
        "Completed" => Runtime::Completed,
        "Failed" => Runtime::Failed,
        "Terminated" | "Canceled" => Runtime::Terminated,
        _ => return None,
    })
}

/// What a status answer says, by its HTTP status and its body's `runtimeStatus`, which must
/// agree: the handler answers `202` for a running instance only and `200` for an ended one.
fn judge<'a>(status: StatusCode, body: &'a [u8], seen: &mut Observer<'_>) -> Verdict<'a> {
    let parsed = parse_status(body);
    let instance = match (status.as_u16(), parsed) {
        // An empty `202` is the asynchronous HTTP pattern's "still running" all the same.
        (202, _) if body.iter().all(u8::is_ascii_whitespace) => {
            return Verdict::Running { moved: None }
        }
        (200 | 202, Err(malformed)) => return Verdict::Malformed(malformed.0),
        (200 | 202, Ok(instance)) => instance,
        (_, Ok(instance)) => instance,
        // A 400 or 500 that is not an instance status: the server's own error.
        (_, Err(_)) => return error_status(status),
    };
    if let Some(id) = &instance.id {
        seen.operation_id(id);
    }
    let Some(reported) = instance.runtime_status else {
        return match status.as_u16() {
            200 | 202 => Verdict::Malformed("the status has no `runtimeStatus`".into()),
            _ => error_status(status),
        };
    };
    seen.state(&reported);
    let Some(runtime) = runtime(&reported) else {
        return match status.as_u16() {
            200 | 202 => Verdict::Malformed(format!("unknown `runtimeStatus` {reported:?}")),
            _ => error_status(status),
        };
    };
    match (status.as_u16(), runtime) {
        (202, Runtime::Running) => Verdict::Running { moved: None },
        (200, Runtime::Completed) => Verdict::Done,
        (200 | 400 | 500, Runtime::Failed) => {
            let (code, message) = failure(instance.output);
            Verdict::Failed(ErrorDetail::reported(reported).with_detail(code, message))
        }
        (200 | 400 | 500, Runtime::Terminated) => {
            let message = instance.output.and_then(output_text);
            Verdict::Canceled(ErrorDetail::reported(reported).with_detail(None, message))
        }
        (200 | 202, _) => Verdict::Malformed(format!(
            "a {status} answer reports the instance {reported:?}"
        )),
        _ => error_status(status),
    }
}

/// What a starter's `200` or `500` says: an instance status that reports the orchestration
/// ended (`WaitForCompletionOrCreateCheckStatusResponseAsync`) is judged like a poll's answer;
/// any other body is the starter's own answer, returned as it is.
fn ended<'a, M>(body: &'a [u8], seen: &mut Observer<'_>) -> InitialBody<'a, M> {
    let Ok(Instance {
        id: Some(id),
        runtime_status: Some(reported),
        output,
    }) = parse_status(body)
    else {
        return InitialBody::Final;
    };
    seen.operation_id(&id);
    seen.state(&reported);
    match runtime(&reported) {
        Some(Runtime::Completed) => InitialBody::Final,
        Some(Runtime::Failed) => {
            let (code, message) = failure(output);
            InitialBody::Failed(ErrorDetail::reported(reported).with_detail(code, message))
        }
        Some(Runtime::Terminated) => {
            let message = output.and_then(output_text);
            InitialBody::Canceled(ErrorDetail::reported(reported).with_detail(None, message))
        }
        Some(Runtime::Running) | None => InitialBody::Malformed(format!(
            "a starter's answer reports the instance {reported:?} without a status URL"
        )),
    }
}

/// A `400` or `500` that does not say the instance ended.
fn error_status<'a>(status: StatusCode) -> Verdict<'a> {
    if is_transient(status) {
        Verdict::Transient
    } else {
        Verdict::Unexpected
    }
}

/// A failed instance's `output`: a message, or `{ErrorType, ErrorMessage}` (the failure
/// details of an out-of-process worker).
fn failure(output: Option<&RawValue>) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    let Some(output) = output else {
        return (None, None);
    };
    if !output.get().starts_with('{') {
        return (None, output_text(output));
    }
    struct DetailsVisitor;
    impl<'de> Visitor<'de> for DetailsVisitor {
        type Value = (Option<Cow<'de, str>>, Option<Cow<'de, str>>);
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("failure details")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut code, mut message) = (None, None);
            while let Some(key) = map.next_key::<Text<'de>>()? {
                match &*key.0 {
                    "ErrorType" | "errorType" => {
                        code = code.or(text_member(map.next_value()?));
                    }
                    "ErrorMessage" | "errorMessage" | "Message" | "message" => {
                        message = message.or(text_member(map.next_value()?));
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok((code, message))
        }
    }
    serde_json::Deserializer::from_str(output.get())
        .deserialize_map(DetailsVisitor)
        .unwrap_or_default()
}

/// An `output` as a message: a string's text, else (bounded as the body is) its JSON.
fn output_text(output: &RawValue) -> Option<Cow<'_, str>> {
    match output.get() {
        "null" => None,
        json if json.starts_with('"') => detail_text(crate::protocol::json::text(output)),
        json => Some(Cow::Borrowed(json)),
    }
}

/// An instance status: `instanceId`, `runtimeStatus` and `output`; other members ignored.
#[derive(Default)]
struct Instance<'a> {
    id: Option<Cow<'a, str>>,
    runtime_status: Option<Cow<'a, str>>,
    output: Option<&'a RawValue>,
}

fn parse_status(body: &[u8]) -> Result<Instance<'_>, Malformed> {
    struct InstanceVisitor;
    impl<'de> Visitor<'de> for InstanceVisitor {
        type Value = Instance<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an instance status object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Instance::default();
            while let Some(key) = map.next_key::<Text<'de>>()? {
                match &*key.0 {
                    "instanceId" => out.id = text_member(map.next_value()?),
                    "runtimeStatus" => out.runtime_status = text_member(map.next_value()?),
                    "output" => out.output = Some(map.next_value()?),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(utf8(body, "instance status")?);
    de.deserialize_map(InstanceVisitor)
        .and_then(|parsed| de.end().map(|()| parsed))
        .map_err(|e| Malformed(format!("the body is not an instance status: {e}")))
}

/// The start body's management URLs this dialect uses; anything else is ignored, and a body
/// that is not such an object names none.
#[derive(Default)]
struct Links<'a> {
    id: Option<Cow<'a, str>>,
    terminate: Option<Cow<'a, str>>,
}

fn parse_links(body: &[u8]) -> Links<'_> {
    struct LinksVisitor;
    impl<'de> Visitor<'de> for LinksVisitor {
        type Value = Links<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an HTTP management payload")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Links::default();
            while let Some(key) = map.next_key::<Text<'de>>()? {
                match &*key.0 {
                    "id" => out.id = text_member(map.next_value()?),
                    "terminatePostUri" => out.terminate = text_member(map.next_value()?),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(out)
        }
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return Links::default();
    };
    serde_json::Deserializer::from_str(text)
        .deserialize_map(LinksVisitor)
        .unwrap_or_default()
}

/// A member that is a non-blank string; anything else is absent.
fn text_member(raw: &RawValue) -> Option<Cow<'_, str>> {
    detail_text(crate::protocol::json::text(raw))
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;
    use crate::dialect::table;
    use crate::dialect::testing::{self, Recorder};

    const STATUS: &str = "https://app.example/runtime/webhooks/durabletask/instances/abc?taskHub=h&connection=Storage&code=KEY";
    const TERMINATE: &str = "https://app.example/runtime/webhooks/durabletask/instances/abc/terminate?reason={text}&taskHub=h&connection=Storage&code=KEY";

    fn request() -> Result<Request<()>, http::Error> {
        Request::post("https://app.example/api/orchestrators/hello").body(())
    }

    #[test]
    fn initial_heads() -> Result<(), http::Error> {
        let json = ("content-type", "application/json; charset=utf-8");
        let location = ("location", STATUS);
        let monitor = "DurableMonitor { id: None, terminate: None }";
        for (method, status, headers, expected) in [
            (
                Method::POST,
                202,
                &[json, location][..],
                format!("read, else follow {monitor} ref {STATUS}"),
            ),
            // A GET starter, or a GET of a status URL itself.
            (
                Method::GET,
                202,
                &[location][..],
                format!("read, else follow {monitor} ref {STATUS}"),
            ),
            // A body that cannot name the terminate URL is not read.
            (
                Method::POST,
                202,
                &[("content-type", "text/plain"), location][..],
                format!("follow {monitor} ref {STATUS}"),
            ),
            (Method::POST, 202, &[json][..], "pass".into()),
            // `WaitForCompletionOrCreateCheckStatusResponseAsync`: the instance status of an
            // orchestration that ended, which may report a failure.
            (Method::POST, 200, &[json][..], "read, else pass".into()),
            (
                Method::POST,
                200,
                &[json, location][..],
                "read, else pass".into(),
            ),
            (Method::GET, 200, &[][..], "read, else pass".into()),
            (Method::POST, 500, &[json][..], "read, else pass".into()),
            (Method::POST, 500, &[location][..], "read, else pass".into()),
            // Bodies that cannot be an instance status.
            (
                Method::POST,
                200,
                &[("content-type", "text/html")][..],
                "pass".into(),
            ),
            (
                Method::POST,
                500,
                &[("content-type", "text/plain")][..],
                "pass".into(),
            ),
            (Method::POST, 201, &[location][..], "pass".into()),
            (Method::POST, 400, &[json, location][..], "pass".into()),
            (Method::POST, 204, &[][..], "pass".into()),
        ] {
            let request = Request::builder()
                .method(method.clone())
                .uri("https://app.example/api/orchestrators/hello")
                .body(())?;
            let response = testing::response_head(status, headers)?;
            let verdict =
                DurableFunctions::new().initial_head(&testing::request_head(&request), &response);
            assert_eq!(table::initial_head(&verdict), expected, "{method} {status}");
        }
        Ok(())
    }

    /// The monitor the start body gives, and the operation id it recorded.
    fn start(body: &str) -> Result<(DurableMonitor, Option<String>), http::Error> {
        let request = request()?;
        let response = testing::response_head(202, &[("location", STATUS)])?;
        let otherwise = Follow::new(
            DurableMonitor::default(),
            PollAt::url(&response.headers[header::LOCATION]),
        );
        let mut seen = Recorder::new();
        let verdict = DurableFunctions::new().initial_body(
            &testing::request_head(&request),
            &response,
            body.as_bytes(),
            Some(otherwise),
            &mut seen.observer(),
        );
        let InitialBody::Follow(follow) = verdict else {
            panic!("not followed: {}", table::initial_body(&verdict));
        };
        assert_eq!(
            follow.poll_at(),
            &PollAt::url(&response.headers[header::LOCATION]),
            "{body}"
        );
        Ok((follow.monitor, seen.operation_id().map(str::to_owned)))
    }

    #[test]
    fn the_start_body_names_the_instance_and_its_terminate_url() -> Result<(), http::Error> {
        let payload = format!(
            r#"{{"id":"abc","statusQueryGetUri":"{STATUS}","sendEventPostUri":"x","terminatePostUri":"{TERMINATE}","purgeHistoryDeleteUri":"y","suspendPostUri":"z"}}"#
        );
        let (monitor, id) = start(&payload)?;
        assert_eq!(monitor.id.as_deref(), Some("abc"));
        assert_eq!(monitor.terminate.as_deref(), Some(TERMINATE));
        assert_eq!(id.as_deref(), Some("abc"));
        // Whatever else a starter answers with its 202, the instance is still followed.
        for body in [
            "",
            "Request accepted",
            "[]",
            r#"{"id":7,"terminatePostUri":null}"#,
            r#"{"id":"","terminatePostUri":"  "}"#,
            r#"{"id":"abc","terminatePostUri":"#,
        ] {
            assert_eq!(start(body)?, (DurableMonitor::default(), None), "{body}");
        }
        Ok(())
    }

    #[test]
    fn a_starter_answer_of_an_ended_orchestration() -> Result<(), http::Error> {
        let status = |runtime: &str, output: &str| {
            format!(
                r#"{{"name":"Hello","instanceId":"abc","runtimeStatus":"{runtime}","input":null,"customStatus":null,"output":{output},"createdTime":"2024-01-01T00:00:00Z","lastUpdatedTime":"2024-01-01T00:00:05Z"}}"#
            )
        };
        for (code, body, expected) in [
            (200, status("Completed", r#"["Hello Tokyo!"]"#), "final"),
            // The handler never writes it; a 500 returned as it is is no `Ok` of the layer's.
            (500, status("Completed", "null"), "final"),
            (
                200,
                status("Failed", r#""Orchestrator function 'Hello' failed: boom""#),
                "failed Failed/-/Orchestrator function 'Hello' failed: boom",
            ),
            (
                200,
                status("Failed", r#"{"ErrorType":"E","ErrorMessage":"boom"}"#),
                "failed Failed/E/boom",
            ),
            (200, status("Failed", "null"), "failed Failed/-/-"),
            (500, status("Failed", r#""boom""#), "failed Failed/-/boom"),
            (
                200,
                status("Terminated", r#""stop""#),
                "canceled Terminated/-/stop",
            ),
            (200, status("Canceled", "null"), "canceled Canceled/-/-"),
            (500, status("Terminated", "null"), "canceled Terminated/-/-"),
            // An instance status that does not say the instance ended, with no status URL.
            (200, status("Running", "null"), "malformed"),
            (200, status("Pending", "null"), "malformed"),
            (200, status("Unknown", "null"), "malformed"),
            (200, status("failed", "null"), "malformed"),
            (500, status("Running", "null"), "malformed"),
            // Anything else is the starter's own answer: the orchestration's output (older
            // extensions), another function's result, a server error.
            (200, r#"["Hello Tokyo!"]"#.into(), "final"),
            (200, r#""done""#.into(), "final"),
            (200, r#"{"runtimeStatus":"Failed"}"#.into(), "final"),
            (200, r#"{"instanceId":"abc"}"#.into(), "final"),
            (
                200,
                r#"{"instanceId":7,"runtimeStatus":"Failed"}"#.into(),
                "final",
            ),
            (
                200,
                r#"{"instanceId":"abc","runtimeStatus":null}"#.into(),
                "final",
            ),
            (
                200,
                r#"{"instanceId":"abc","runtimeStatus":"Failed"} trailing"#.into(),
                "final",
            ),
            (200, String::new(), "final"),
            (200, "<html>".into(), "final"),
            (500, r#"{"Message":"Something went wrong"}"#.into(), "final"),
        ] {
            let request = request()?;
            let response = testing::response_head(code, &[])?;
            let mut seen = Recorder::new();
            let verdict = DurableFunctions::new().initial_body(
                &testing::request_head(&request),
                &response,
                body.as_bytes(),
                None,
                &mut seen.observer(),
            );
            assert_eq!(table::initial_body(&verdict), expected, "{code} {body}");
        }
        Ok(())
    }

    #[test]
    fn status_heads() -> Result<(), http::Error> {
        let json = &[("content-type", "application/json")][..];
        let html = &[("content-type", "text/html")][..];
        for (status, headers, expected) in [
            (200, json, "read"),
            (202, json, "read"),
            (202, html, "read"),
            (400, json, "read"),
            (400, &[][..], "read"),
            (400, html, "unexpected"),
            (500, json, "read"),
            (500, html, "transient"),
            (503, json, "transient"),
            (404, json, "unexpected"),
            (410, json, "unexpected"),
            (201, json, "unexpected"),
        ] {
            let response = testing::response_head(status, headers)?;
            let verdict =
                DurableFunctions::new().status_head(&DurableMonitor::default(), &response);
            assert_eq!(
                table::status_head(&verdict),
                expected,
                "{status} {headers:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn status_bodies() -> Result<(), http::Error> {
        let status = |runtime: &str, output: &str| {
            format!(
                r#"{{"name":"Hello","instanceId":"abc","runtimeStatus":"{runtime}","input":null,"customStatus":{{"step":2}},"output":{output},"createdTime":"2024-01-01T00:00:00Z","lastUpdatedTime":"2024-01-01T00:00:05Z"}}"#
            )
        };
        let failure_details = r#"{"ErrorType":"System.InvalidOperationException","ErrorMessage":"boom","StackTrace":"at ...","InnerFailure":null,"IsNonRetriable":false}"#;
        for (code, body, expected) in [
            (202, status("Running", "null"), "running"),
            (202, status("Pending", "null"), "running"),
            (202, status("ContinuedAsNew", "null"), "running"),
            (202, status("Suspended", "null"), "running"),
            (202, String::new(), "running"),
            (200, status("Completed", r#"["Hello Tokyo!"]"#), "done"),
            (
                200,
                status("Failed", r#""Orchestrator function 'Hello' failed: boom""#),
                "failed Failed/-/Orchestrator function 'Hello' failed: boom",
            ),
            (
                200,
                status("Failed", failure_details),
                "failed Failed/System.InvalidOperationException/boom",
            ),
            (
                200,
                status("Failed", r#"{"errorType":"E","message":"m"}"#),
                "failed Failed/E/m",
            ),
            (200, status("Failed", "null"), "failed Failed/-/-"),
            (200, status("Failed", "42"), "failed Failed/-/42"),
            (
                200,
                status("Terminated", r#""canceled by tower-lro""#),
                "canceled Terminated/-/canceled by tower-lro",
            ),
            (200, status("Canceled", "null"), "canceled Canceled/-/-"),
            // `returnInternalServerErrorOnFailure=true`, and the documented 400: the body says
            // the instance ended, so it is not a server error.
            (500, status("Failed", r#""boom""#), "failed Failed/-/boom"),
            (400, status("Failed", r#""boom""#), "failed Failed/-/boom"),
            (
                400,
                status("Terminated", r#""stop""#),
                "canceled Terminated/-/stop",
            ),
            (500, status("Terminated", "null"), "canceled Terminated/-/-"),
            // A 400 or 500 that is not about an ended instance is the server's own answer.
            (500, status("Unknown", "null"), "transient"),
            (500, status("Running", "null"), "transient"),
            (
                500,
                r#"{"Message":"Something went wrong"}"#.into(),
                "transient",
            ),
            (500, "<html>".into(), "transient"),
            (400, r#"{"Message":"bad"}"#.into(), "unexpected"),
            (400, status("Completed", "1"), "unexpected"),
            // Unknown values, missing ones, and answers the status code contradicts.
            (200, status("Unknown", "null"), "malformed"),
            (200, status("completed", "null"), "malformed"),
            (202, status("Sleeping", "null"), "malformed"),
            (200, r#"{"instanceId":"abc"}"#.into(), "malformed"),
            (200, r#"{"runtimeStatus":2}"#.into(), "malformed"),
            (200, status("Running", "null"), "malformed"),
            (202, status("Completed", "1"), "malformed"),
            (202, status("Failed", "1"), "malformed"),
            (200, String::new(), "malformed"),
            (200, "[]".into(), "malformed"),
            (202, "not json".into(), "malformed"),
            (
                200,
                r#"{"runtimeStatus":"Completed"} trailing"#.into(),
                "malformed",
            ),
        ] {
            let request = request()?;
            let response = testing::response_head(code, &[])?;
            let mut seen = Recorder::new();
            let verdict = DurableFunctions::new().status_body(
                &mut DurableMonitor::default(),
                &testing::request_head(&request),
                &response,
                body.as_bytes(),
                &mut seen.observer(),
            );
            assert_eq!(table::verdict(&verdict), expected, "{code} {body}");
        }
        Ok(())
    }

    #[test]
    fn a_status_records_the_instance_and_its_runtime_status() -> Result<(), http::Error> {
        let request = request()?;
        let response = testing::response_head(202, &[])?;
        let mut seen = Recorder::new();
        let body = br#"{"instanceId":"abc","runtimeStatus":"Running","output":null}"#;
        DurableFunctions::new().status_body(
            &mut DurableMonitor::default(),
            &testing::request_head(&request),
            &response,
            body,
            &mut seen.observer(),
        );
        assert_eq!(seen.state(), Some("Running"));
        assert_eq!(seen.operation_id(), Some("abc"));
        Ok(())
    }

    #[test]
    fn cancel_posts_the_terminate_url_with_a_reason() {
        let polled: Uri = STATUS.parse().unwrap();
        let monitor = DurableMonitor {
            id: Some("abc".into()),
            terminate: Some(TERMINATE.into()),
        };
        let cancel = DurableFunctions::new().cancel(&monitor, &polled).unwrap();
        assert_eq!(cancel.method(), Method::POST);
        assert_eq!(
            cancel.url(),
            "https://app.example/runtime/webhooks/durabletask/instances/abc/terminate?reason=canceled+by+tower-lro&taskHub=h&connection=Storage&code=KEY"
        );
        assert_eq!(cancel.body(), "");
        // The isolated worker's payload doubles the placeholder's braces.
        for terminate in [
            "https://app.example/instances/abc/terminate?reason={{text}}&code=KEY",
            "https://app.example/instances/abc/terminate?reason={text}&code=KEY",
        ] {
            let monitor = DurableMonitor {
                id: Some("abc".into()),
                terminate: Some(terminate.into()),
            };
            let cancel = DurableFunctions::new().cancel(&monitor, &polled).unwrap();
            assert_eq!(
                cancel.url(),
                "https://app.example/instances/abc/terminate?reason=canceled+by+tower-lro&code=KEY",
                "{terminate}"
            );
        }
        assert_eq!(
            DurableFunctions::new().cancel(&DurableMonitor::default(), &polled),
            None
        );
    }

    #[test]
    fn cancel_answers() {
        for (status, expected) in [
            (202, CancelHead::Accepted),
            (200, CancelHead::Accepted),
            (410, CancelHead::Accepted),
            (404, CancelHead::Unsupported),
            (400, CancelHead::Unexpected),
            (500, CancelHead::Unexpected),
        ] {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                DurableFunctions::new().cancel_head(&DurableMonitor::default(), status),
                expected,
                "{status}"
            );
        }
    }

    #[test]
    fn the_monitor_debug_hides_the_terminate_url() {
        let monitor = DurableMonitor {
            id: Some("abc".into()),
            terminate: Some(TERMINATE.into()),
        };
        let debug = format!("{monitor:?}");
        assert!(!debug.contains("KEY"), "{debug}");
        assert!(debug.contains("abc"), "{debug}");
    }
}
