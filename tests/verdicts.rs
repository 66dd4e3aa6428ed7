//! Every answer is judged, and judged with its details: bodies that cannot be read are typed
//! errors carrying every byte, optional members never hide a valid status, failures reported by
//! an HTTP status keep the service's error code and message, and polls repeat only what a GET may.
//!
//! The server is an in-memory `tower::service_fn` script on tokio's paused clock: nothing waits
//! on a socket, so waits cost no time and the outcome cannot depend on the machine's load.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceBuilder, ServiceExt};
use tower_lro::dialect::{
    Dialect, ErrorDetail, Follow, InitialHead, Observer, PollAt, RequestHead, StatusHead, Verdict,
};
use tower_lro::{Error, ErrorKind, LongRunningLayer, OperationInfo, Polling, ResumeToken};

/// What the script saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

type Answer = Arc<dyn Fn(usize, &Seen) -> Response<Full<Bytes>> + Send + Sync>;

/// An in-memory server: `answer(n, request)` for the n-th request (from 0), every request kept.
#[derive(Clone)]
struct Script {
    seen: Arc<Mutex<Vec<Seen>>>,
    answer: Answer,
}

impl Script {
    fn new(answer: impl Fn(usize, &Seen) -> Response<Full<Bytes>> + Send + Sync + 'static) -> Self {
        Script {
            seen: Arc::default(),
            answer: Arc::new(answer),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// `(method, path and query)` of every request, in order.
    fn trail(&self) -> Vec<(Method, String)> {
        self.seen()
            .iter()
            .map(|s| {
                (
                    s.method.clone(),
                    s.uri.path_and_query().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Sends `req` through the layer over this script.
    async fn send<D: Dialect>(
        &self,
        layer: LongRunningLayer<D>,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Bytes>, Error> {
        let script = self.clone();
        let inner = service_fn(move |req: Request<Full<Bytes>>| {
            let script = script.clone();
            async move {
                let seen = Seen {
                    method: req.method().clone(),
                    uri: req.uri().clone(),
                    headers: req.headers().clone(),
                };
                let n = {
                    let mut log = script.seen.lock().unwrap();
                    log.push(seen.clone());
                    log.len() - 1
                };
                Ok::<_, Infallible>((script.answer)(n, &seen))
            }
        });
        let response = ServiceBuilder::new()
            .layer(layer)
            .service(inner)
            .oneshot(req)
            .await?;
        let (parts, body) = response.into_parts();
        let bytes = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => panic!("the final body broke: {e}"),
        };
        Ok(Response::from_parts(parts, bytes))
    }

    /// The original request came first and exactly once; only GETs followed it.
    fn assert_sent_once(&self, method: &Method) {
        let trail = self.trail();
        assert_eq!(trail.first().map(|(m, _)| m), Some(method), "{trail:?}");
        assert!(
            trail[1..].iter().all(|(m, _)| m == Method::GET),
            "only GETs follow the original request: {trail:?}"
        );
    }
}

fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

const JSON: (&str, &str) = ("content-type", "application/json");
const BASE: &str = "https://management.example";

fn request(method: Method, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(format!("{BASE}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"location":"westus"}"#)))
        .unwrap()
}

fn operation(err: &Error) -> &OperationInfo {
    err.operation()
        .expect("a followed operation's error says how far it got")
}

// ---------------------------------------------------------------------------------------------
// Initial bodies that cannot be judged.

const TRUNCATED: &str = r#"{ "properties": { "provisioningState": "Creating"}, "id": "100""#;

/// A PUT/PATCH 200/201 without monitor headers is judged by its body alone: a body meant as JSON
/// that cannot be read is `MalformedStatus` with the status, headers and every byte — never the
/// `Ok` of "no provisioningState here".
#[tokio::test(start_paused = true)]
async fn an_unreadable_json_initial_body_is_malformed_status_with_every_byte() {
    let cases: &[(Method, u16, Option<&str>, &str)] = &[
        (Method::PUT, 200, Some("application/json"), TRUNCATED),
        (
            Method::PUT,
            201,
            Some("application/json; charset=utf-8"),
            TRUNCATED,
        ),
        (
            Method::PATCH,
            200,
            Some("application/merge-patch+json"),
            TRUNCATED,
        ),
        // Undeclared, but it starts as a JSON object.
        (Method::PUT, 200, None, TRUNCATED),
        (Method::PUT, 201, None, "  {\"provisioningState\":"),
        // Declared JSON, and not JSON at all.
        (Method::PUT, 200, Some("application/json"), "Creating..."),
        // A JSON object whose state is not a string.
        (
            Method::PUT,
            200,
            Some("application/json"),
            r#"{"provisioningState":3}"#,
        ),
    ];
    for (method, status, content_type, body) in cases {
        let script = Script::new(move |_, _| {
            let headers: Vec<_> = content_type
                .iter()
                .map(|ct| ("content-type", *ct))
                .collect();
            let mut headers = headers;
            headers.push(("x-ms-request-id", "req-1"));
            reply(*status, &headers, body)
        });
        let err = script
            .send(
                LongRunningLayer::new(),
                request(method.clone(), "/accounts/a"),
            )
            .await
            .expect_err(&format!("{method} {status} {content_type:?} {body:?}"));
        assert_eq!(err.kind(), ErrorKind::MalformedStatus, "{body:?}");
        assert_eq!(err.status(), Some(StatusCode::from_u16(*status).unwrap()));
        assert_eq!(err.headers().unwrap()["x-ms-request-id"], "req-1");
        assert_eq!(
            err.body().map(|b| &b[..]),
            Some(body.as_bytes()),
            "every byte kept"
        );
        assert!(err.resume_token().is_none(), "nothing was followed");
        assert_eq!(script.seen().len(), 1, "nothing was polled");
    }
}

/// Bodies that are not meant as a JSON object pass through untouched, byte for byte.
#[tokio::test(start_paused = true)]
async fn initial_bodies_not_meant_as_json_objects_pass_through_untouched() {
    let cases: &[(Option<&str>, &str)] = &[
        (Some("text/plain"), TRUNCATED),
        (Some("text/plain"), "Creating"),
        (None, "created"),
        (Some("application/json"), r#"["a","b"]"#),
        (Some("application/json"), r#""done""#),
        (Some("application/json"), ""),
    ];
    for (content_type, body) in cases {
        let script = Script::new(move |_, _| {
            let headers: Vec<_> = content_type
                .iter()
                .map(|ct| ("content-type", *ct))
                .collect();
            reply(200, &headers, body)
        });
        let response = script
            .send(LongRunningLayer::new(), request(Method::PUT, "/accounts/a"))
            .await
            .unwrap_or_else(|e| panic!("{content_type:?} {body:?}: {e}"));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body(), body.as_bytes());
        assert!(response.extensions().get::<OperationInfo>().is_none());
        assert_eq!(script.seen().len(), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Optional members never make a valid status unreadable.

/// An `Azure-AsyncOperation` operation whose first poll answers `first` and whose second
/// answers `Succeeded`.
fn status_monitor(first: &'static str) -> Script {
    Script::new(move |n, _| match n {
        0 => reply(
            202,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "3")],
            "",
        ),
        1 => reply(200, &[JSON, ("retry-after", "3")], first),
        _ => reply(200, &[JSON], r#"{"status":"Succeeded"}"#),
    })
}

#[tokio::test(start_paused = true)]
async fn numbers_past_f64_in_optional_members_of_a_running_status_are_ignored() {
    for body in [
        r#"{"status":"Running","percentComplete":1e309}"#,
        r#"{"status":"Running","id":1e999}"#,
        r#"{"status":"Running","name":-1e999,"properties":{"x":1e999},"error":{"code":1e999}}"#,
    ] {
        let script = status_monitor(body);
        let response = script
            .send(
                LongRunningLayer::new(),
                request(Method::POST, "/vms/a/start"),
            )
            .await
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        let info = response.extensions().get::<OperationInfo>().unwrap();
        assert_eq!(info.polls, 2, "{body}");
        assert_eq!(info.percent_complete, None);
        assert_eq!(info.operation_id, None);
        assert_eq!(info.state.as_deref(), Some("Succeeded"));
        script.assert_sent_once(&Method::POST);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_status_with_a_huge_numeric_code_keeps_failed_and_its_message() {
    let body = r#"{"status":"Failed","error":{"code":1e999,"message":"quota"}}"#;
    let script = status_monitor(body);
    let err = script
        .send(
            LongRunningLayer::new(),
            request(Method::POST, "/vms/a/start"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(
        err.code(),
        Some("1e999"),
        "a numeric code is kept as its text"
    );
    assert_eq!(err.message(), Some("quota"));
    assert_eq!(err.body().map(|b| &b[..]), Some(body.as_bytes()));
    assert!(err.resume_token().is_none());
    assert_eq!(operation(&err).polls, 1);
}

/// The same bodies as initial bodies: a PUT 200/201 settled (or not) inline.
#[tokio::test(start_paused = true)]
async fn optional_members_past_f64_in_an_initial_body_do_not_hide_its_state() {
    let failed = r#"{"properties":{"provisioningState":"Failed"},"error":{"code":1e999}}"#;
    let script = Script::new(move |_, _| reply(200, &[JSON], failed));
    let err = script
        .send(LongRunningLayer::new(), request(Method::PUT, "/accounts/a"))
        .await
        .expect_err("a Failed state is never an Ok 200");
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.code(), Some("1e999"));
    assert_eq!(err.status(), Some(StatusCode::OK));
    assert_eq!(err.body().map(|b| &b[..]), Some(failed.as_bytes()));
    assert_eq!(script.seen().len(), 1);

    let failed = r#"{"provisioningState":"Failed","error":{"code":1e999,"message":"quota"}}"#;
    let script = Script::new(move |_, _| reply(201, &[JSON], failed));
    let err = script
        .send(LongRunningLayer::new(), request(Method::PUT, "/accounts/a"))
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Failed, Some("quota"))
    );

    // Still running inline: followed as a resource, whatever the odd numbers beside the state.
    for initial in [
        r#"{"properties":{"provisioningState":"Creating"},"error":{"code":1e999}}"#,
        r#"{"properties":{"provisioningState":"Creating","percentComplete":1e309},"id":1e999}"#,
    ] {
        let script = Script::new(move |n, _| match n {
            0 => reply(201, &[JSON, ("retry-after", "2")], initial),
            _ => reply(
                200,
                &[JSON],
                r#"{"properties":{"provisioningState":"Succeeded"}}"#,
            ),
        });
        let response = script
            .send(LongRunningLayer::new(), request(Method::PUT, "/accounts/a"))
            .await
            .unwrap_or_else(|e| panic!("{initial}: {e}"));
        let info = response.extensions().get::<OperationInfo>().unwrap();
        assert_eq!((info.monitor, info.polls), ("resource", 1), "{initial}");
        script.assert_sent_once(&Method::PUT);
    }

    // On a resource poll too.
    let script = Script::new(|n, _| match n {
        0 => reply(
            201,
            &[JSON],
            r#"{"properties":{"provisioningState":"Creating"}}"#,
        ),
        _ => reply(
            200,
            &[JSON],
            r#"{"properties":{"provisioningState":"Failed"},"error":{"code":1e999,"message":"disk"}}"#,
        ),
    });
    let err = script
        .send(LongRunningLayer::new(), request(Method::PUT, "/accounts/a"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!((err.code(), err.message()), (Some("1e999"), Some("disk")));
}

// ---------------------------------------------------------------------------------------------
// Failures reported by an HTTP status keep the service's details.

const TAKEN: &str = r#"{"error":{"code":"StorageAccountAlreadyTaken","message":"The storage account named x is already taken."}}"#;

/// A storage-account-shaped operation (202 + `Location`) whose monitor answers 409: the server
/// says the operation failed, so it is `Failed`, with the service's code and message, and no
/// resume token (there is nothing left to follow).
#[tokio::test(start_paused = true)]
async fn a_client_error_from_a_location_monitor_is_failed_with_the_services_details() {
    let script = Script::new(|n, _| match n {
        0 => reply(
            202,
            &[
                ("location", "/operations/1?monitor=true"),
                ("retry-after", "17"),
            ],
            "",
        ),
        1 => reply(202, &[("retry-after", "17")], ""),
        _ => reply(409, &[JSON, ("x-ms-error-code", "Ignored")], TAKEN),
    });
    let err = script
        .send(
            LongRunningLayer::new(),
            request(Method::PUT, "/storageAccounts/x"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.is_operation_error());
    assert_eq!(
        err.code(),
        Some("StorageAccountAlreadyTaken"),
        "the body's code wins"
    );
    assert_eq!(
        err.message(),
        Some("The storage account named x is already taken.")
    );
    assert_eq!(err.status(), Some(StatusCode::CONFLICT));
    assert_eq!(err.body().map(|b| &b[..]), Some(TAKEN.as_bytes()));
    assert!(err.resume_token().is_none(), "the operation ended");
    assert_eq!(operation(&err).polls, 2);
    assert!(
        err.to_string().contains("StorageAccountAlreadyTaken"),
        "{err}"
    );
    script.assert_sent_once(&Method::PUT);
}

/// Every other way a failure is reported by status: the envelope at the top level, the
/// `x-ms-error-code` header alone, a resource monitor; 408/429 stay transient.
#[tokio::test(start_paused = true)]
async fn client_errors_from_location_and_resource_monitors_take_every_envelope() {
    type Case = (
        &'static str,
        u16,
        &'static [(&'static str, &'static str)],
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );
    let cases: &[Case] = &[
        (
            "location",
            400,
            &[JSON],
            r#"{"code":"InvalidSku","message":"no such sku"}"#,
            Some("InvalidSku"),
            Some("no such sku"),
        ),
        (
            "location",
            404,
            &[("x-ms-error-code", "ResourceNotFound")],
            "",
            Some("ResourceNotFound"),
            None,
        ),
        ("location", 410, &[], "<html>gone</html>", None, None),
        (
            "resource",
            403,
            &[JSON],
            TAKEN,
            Some("StorageAccountAlreadyTaken"),
            Some("The storage account named x is already taken."),
        ),
        (
            "resource",
            404,
            &[JSON, ("x-ms-error-code", "NotFound")],
            r#"{"error":"gone"}"#,
            Some("NotFound"),
            None,
        ),
    ];
    for &(monitor, status, headers, body, code, message) in cases {
        let script = Script::new(move |n, _| match (n, monitor) {
            (0, "location") => reply(202, &[("location", "/operations/1")], ""),
            (0, _) => reply(
                201,
                &[JSON],
                r#"{"properties":{"provisioningState":"Creating"}}"#,
            ),
            _ => reply(status, headers, body),
        });
        let err = script
            .send(LongRunningLayer::new(), request(Method::PUT, "/accounts/a"))
            .await
            .unwrap_err();
        let case = format!("{monitor} {status} {body}");
        assert_eq!(err.kind(), ErrorKind::Failed, "{case}");
        assert_eq!((err.code(), err.message()), (code, message), "{case}");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(status));
        assert_eq!(err.body().map(|b| &b[..]), Some(body.as_bytes()), "{case}");
        assert!(err.resume_token().is_none(), "{case}");
        assert_eq!(script.seen().len(), 2, "not retried: {case}");
    }
    for status in [408, 429] {
        let script = Script::new(move |n, _| match n {
            0 => reply(202, &[("location", "/operations/1")], ""),
            1 => reply(status, &[("retry-after", "1")], ""),
            _ => reply(200, &[JSON], r#"{"name":"a"}"#),
        });
        let response = script
            .send(LongRunningLayer::new(), request(Method::PUT, "/accounts/a"))
            .await
            .unwrap_or_else(|e| panic!("{status} is transient: {e}"));
        assert_eq!(response.body(), &br#"{"name":"a"}"#[..]);
        assert_eq!(script.seen().len(), 3);
    }
}

/// Answers that end the operation without saying it failed stay `UnexpectedStatus` — the
/// operation may still be running, so they keep a resume token — but carry the details too.
#[tokio::test(start_paused = true)]
async fn unexpected_statuses_carry_the_services_details_and_a_token() {
    // A status monitor that answers 404: the monitor is gone, the operation's fate is unknown.
    let script = Script::new(|n, _| match n {
        0 => reply(202, &[("azure-asyncoperation", "/ops/1")], ""),
        _ => reply(
            404,
            &[JSON],
            r#"{"error":{"code":"OperationNotFound","message":"expired"}}"#,
        ),
    });
    let err = script
        .send(
            LongRunningLayer::new(),
            request(Method::POST, "/vms/a/start"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedStatus);
    assert!(!err.is_operation_error());
    assert_eq!(
        (err.code(), err.message()),
        (Some("OperationNotFound"), Some("expired"))
    );
    assert!(err.resume_token().is_some());

    // A final GET that answers 403 after `Succeeded`.
    let script = Script::new(|n, _| match n {
        0 => reply(201, &[("azure-asyncoperation", "/ops/1")], ""),
        1 => reply(200, &[JSON], r#"{"status":"Succeeded"}"#),
        _ => reply(403, &[("x-ms-error-code", "AuthorizationFailed")], ""),
    });
    let err = script
        .send(LongRunningLayer::new(), request(Method::PUT, "/accounts/a"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedStatus);
    assert_eq!(err.code(), Some("AuthorizationFailed"));
    assert!(
        err.resume_token().is_some(),
        "the final GET can be tried again"
    );
    assert!(operation(&err).final_uri.is_some());
}

/// The transient failure that exhausts the retries is read, not drained: its details say why the
/// server kept failing.
#[tokio::test(start_paused = true)]
async fn the_last_transient_failure_keeps_its_details() {
    const BUSY: &str = r#"{"error":{"code":"ServerBusy","message":"try later"}}"#;
    for monitor in ["azure-asyncoperation", "location"] {
        let script = Script::new(move |n, _| match n {
            0 => reply(202, &[(monitor, "/ops/1")], ""),
            _ => reply(503, &[JSON, ("retry-after", "1")], BUSY),
        });
        let err = script
            .send(
                LongRunningLayer::new().max_transient_retries(2),
                request(Method::POST, "/vms/a/start"),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedStatus, "{monitor}");
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(
            (err.code(), err.message()),
            (Some("ServerBusy"), Some("try later"))
        );
        assert_eq!(err.body().map(|b| &b[..]), Some(BUSY.as_bytes()));
        assert!(
            err.resume_token().is_some(),
            "the operation may still be running"
        );
        assert_eq!(
            operation(&err).polls,
            3,
            "{monitor}: the first try and two retries"
        );
    }
}

/// A dialect of its own: `202` + `x-job` starts an operation; a poll's `200` body is one word
/// (`running`, `transient`, `unexpected`, `fetch`), `503` is transient and `418` unexpected. Its
/// `error_detail` says `FromTheDialect`, whatever the answer holds.
#[derive(Debug, Clone)]
struct OwnDetail;

impl Dialect for OwnDetail {
    type Monitor = ();

    fn name(&self) -> &'static str {
        "own-detail"
    }

    fn initial_head<'a>(
        &self,
        _: &RequestHead<'_>,
        res: &'a http::response::Parts,
    ) -> InitialHead<'a, ()> {
        match res.headers.get("x-job") {
            Some(url) if res.status == 202 => {
                InitialHead::Follow(Follow::new((), PollAt::url(url)))
            }
            _ => InitialHead::NotLongRunning,
        }
    }

    fn status_head<'a>(&self, _: &(), res: &'a http::response::Parts) -> StatusHead<'a> {
        match res.status.as_u16() {
            200 => StatusHead::ReadBody,
            503 => StatusHead::Judged(Verdict::Transient),
            _ => StatusHead::Judged(Verdict::Unexpected),
        }
    }

    fn status_body<'a>(
        &self,
        _: &mut (),
        _: &RequestHead<'_>,
        _: &'a http::response::Parts,
        body: &'a [u8],
        _: &mut Observer<'_>,
    ) -> Verdict<'a> {
        match body.split(|&b| b == b' ').next() {
            Some(b"transient") => Verdict::Transient,
            Some(b"unexpected") => Verdict::Unexpected,
            Some(b"fetch") => Verdict::Fetch(PollAt::FromOriginal(b"/result"[..].into())),
            // The body's reading names the state but no code or message.
            Some(b"failed") => Verdict::Failed(ErrorDetail::reported("failed")),
            Some(b"canceled") => Verdict::Canceled(ErrorDetail::reported("canceled")),
            _ => Verdict::Running { moved: None },
        }
    }

    fn error_detail<'a>(&self, _: &'a HeaderMap, _: Option<&'a [u8]>) -> ErrorDetail<'a> {
        ErrorDetail::default()
            .with_detail(Some("FromTheDialect".into()), Some("own reading".into()))
    }
}

/// Every error an answer ends the operation with takes its code and message from the dialect's
/// `error_detail`, never from Azure's envelope or header (both present in every answer here):
/// a transient failure that outlasts the retries, judged by the head or by the body, an
/// unexpected answer, judged either way, a final GET that stays transient, and a body the
/// dialect reads as failed or canceled without a code or message of its own.
#[tokio::test(start_paused = true)]
async fn every_ending_answer_is_detailed_by_the_dialect() {
    const AZURE: &str = r#" {"error":{"code":"AzureEnvelope","message":"azure's reading"}}"#;
    let header = ("x-ms-error-code", "AzureHeader");
    #[rustfmt::skip]
    let cases: &[(&str, u16, &str, u16)] = &[
        // (case, poll status, poll body's first word, the error's status)
        ("transient head, exhausted", 503, "", 503),
        ("transient body, exhausted", 200, "transient", 200),
        ("unexpected head", 418, "", 418),
        ("unexpected body", 200, "unexpected", 200),
        ("final GET transient, exhausted", 200, "fetch", 503),
        ("failed body", 200, "failed", 200),
        ("canceled body", 200, "canceled", 200),
    ];
    for &(case, status, word, expected) in cases {
        let script = Script::new(move |n, seen| {
            if n == 0 {
                return reply(202, &[("x-job", "/jobs/1")], "");
            }
            if seen.uri.path() == "/result" {
                return reply(503, &[JSON, header], &format!("busy{AZURE}"));
            }
            reply(status, &[JSON, header], &format!("{word}{AZURE}"))
        });
        let layer = LongRunningLayer::with_dialect(OwnDetail).max_transient_retries(2);
        let err = script
            .send(layer, request(Method::POST, "/jobs"))
            .await
            .unwrap_err();
        let kind = match word {
            "failed" => ErrorKind::Failed,
            "canceled" => ErrorKind::Canceled,
            _ => ErrorKind::UnexpectedStatus,
        };
        assert_eq!(err.kind(), kind, "{case}: {err:?}");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(expected), "{case}");
        assert_eq!(
            (err.code(), err.message()),
            (Some("FromTheDialect"), Some("own reading")),
            "{case}: {err:?}"
        );
        assert!(
            err.body().is_some_and(|b| b.ends_with(AZURE.as_bytes())),
            "{case}: the answer's body is kept: {err:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What polls repeat.

/// Polls and final GETs drop every `Content-*` and `If-*` header of the original request, and
/// resume tokens do not carry them; other headers travel with every poll.
#[tokio::test(start_paused = true)]
async fn polls_and_tokens_drop_every_content_and_if_header() {
    let original = || {
        let mut req = request(Method::PUT, "/accounts/a");
        for (name, value) in [
            ("content-md5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
            ("content-language", "en"),
            ("content-disposition", "inline"),
            ("if-range", "\"etag\""),
            ("if-match", "\"etag\""),
            ("x-ms-client-request-id", "abc"),
        ] {
            req.headers_mut().insert(
                http::HeaderName::from_static(name),
                http::HeaderValue::from_static(value),
            );
        }
        req
    };
    let script = Script::new(|n, _| match n {
        0 => reply(
            201,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "1")],
            "",
        ),
        1 => reply(200, &[JSON], r#"{"status":"Running"}"#),
        2 => reply(200, &[JSON], r#"{"status":"Succeeded"}"#),
        _ => reply(200, &[JSON], r#"{"name":"a"}"#),
    });
    script
        .send(LongRunningLayer::new(), original())
        .await
        .unwrap();
    let seen = script.seen();
    assert_eq!(seen.len(), 4, "two polls and the final GET");
    assert!(
        seen[0].headers.contains_key("content-md5"),
        "the original request is untouched"
    );
    for poll in &seen[1..] {
        let names: Vec<_> = poll.headers.keys().map(|k| k.as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| !n.starts_with("content-") && !n.starts_with("if-")),
            "{} repeats {names:?}",
            poll.uri
        );
        assert_eq!(poll.headers["x-ms-client-request-id"], "abc");
    }

    let mut accept_only = original();
    accept_only.extensions_mut().insert(Polling::AcceptOnly);
    let script = Script::new(|_, _| reply(202, &[("azure-asyncoperation", "/ops/1")], ""));
    let response = script
        .send(LongRunningLayer::new(), accept_only)
        .await
        .unwrap();
    let token = response
        .extensions()
        .get::<ResumeToken>()
        .unwrap()
        .to_json();
    assert!(token.contains("x-ms-client-request-id"), "{token}");
    for dropped in ["content-", "if-"] {
        assert!(!token.contains(dropped), "{dropped} in {token}");
    }
}

/// A token written by hand (or by an older version) with payload headers: they are not repeated.
#[tokio::test(start_paused = true)]
async fn a_resumed_token_never_repeats_content_or_if_headers() {
    let token = ResumeToken::from_json(&format!(
        r#"{{"version":1,"monitor":"azure-async-operation","monitor_url":"{BASE}/ops/1","method":"DELETE","uri":"{BASE}/things/a","headers":[["content-md5","x"],["if-range","y"],["x-ms-client-request-id","abc"]]}}"#
    ))
    .unwrap();
    let script = Script::new(|_, _| reply(200, &[JSON], r#"{"status":"Succeeded"}"#));
    script
        .send(LongRunningLayer::new(), token.into_request())
        .await
        .unwrap();
    let seen = script.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::GET);
    assert!(!seen[0].headers.contains_key("content-md5"));
    assert!(!seen[0].headers.contains_key("if-range"));
    assert_eq!(seen[0].headers["x-ms-client-request-id"], "abc");
}
