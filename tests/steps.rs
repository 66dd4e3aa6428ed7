//! The mechanism's rules for steps and cancels, whatever the dialect: a step is exactly one poll
//! (and the final GET when it says done), its bounds count across steps, and a cancel request is
//! sent once and never repeated.
//!
//! The server is an in-memory `tower::service_fn` script on tokio's paused clock: nothing waits
//! on a socket, so the outcome cannot depend on the machine's load.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};
use tower_lro::{CancelVia, ErrorKind, LongRunning, LongRunningLayer, Polling, ResumeToken, Step};

const BASE: &str = "https://management.example";

type Answer =
    Arc<dyn Fn(usize, &Method, &str) -> Result<Response<Full<Bytes>>, BoxError> + Send + Sync>;

/// An in-memory server: `answer(n, method, path)` for the n-th request, every request kept.
#[derive(Clone)]
struct Script {
    seen: Arc<Mutex<Vec<(Method, String, Bytes)>>>,
    answer: Answer,
}

type Inner =
    tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, BoxError>;

impl Script {
    fn new(
        answer: impl Fn(usize, &Method, &str) -> Result<Response<Full<Bytes>>, BoxError>
            + Send
            + Sync
            + 'static,
    ) -> Script {
        Script {
            seen: Arc::default(),
            answer: Arc::new(answer),
        }
    }

    fn service(&self, layer: LongRunningLayer) -> LongRunning<Inner> {
        let script = self.clone();
        let inner = service_fn(move |req: Request<Full<Bytes>>| {
            let script = script.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let path = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default();
                let n = {
                    let mut log = script.seen.lock().unwrap();
                    log.push((parts.method.clone(), path.clone(), body));
                    log.len() - 1
                };
                (script.answer)(n, &parts.method, &path)
            }
        });
        ServiceBuilder::new()
            .layer(layer)
            .service(tower::util::BoxCloneSyncService::new(inner))
    }

    fn trail(&self) -> Vec<(Method, String)> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .map(|(m, p, _)| (m.clone(), p.clone()))
            .collect()
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

fn reply(
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    Ok(response)
}

fn put(cancel: Option<CancelVia>) -> Request<Full<Bytes>> {
    let mut request = Request::builder()
        .method(Method::PUT)
        .uri(format!("{BASE}/deployments/d"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    request.extensions_mut().insert(Polling::AcceptOnly);
    if let Some(cancel) = cancel {
        request.extensions_mut().insert(cancel);
    }
    request
}

/// Starts an Azure-AsyncOperation PUT with `AcceptOnly` and returns its token.
async fn accepted(service: &LongRunning<Inner>, cancel: Option<CancelVia>) -> ResumeToken {
    let response = service.clone().oneshot(put(cancel)).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response
        .extensions()
        .get::<ResumeToken>()
        .cloned()
        .expect("an accepted operation carries a token")
}

/// The initial answer of every script: 201 + Azure-AsyncOperation.
fn started() -> Result<Response<Full<Bytes>>, BoxError> {
    reply(201, &[("azure-asyncoperation", "/operations/1")], "")
}

#[tokio::test(start_paused = true)]
async fn each_step_is_one_poll_and_the_last_one_fetches_the_result() {
    let script = Script::new(|n, _, path| match (n, path) {
        (0, _) => started(),
        (1 | 2, "/operations/1") => reply(
            200,
            &[("retry-after", "7")],
            r#"{"status":"Running","percentComplete":40}"#,
        ),
        (3, "/operations/1") => reply(200, &[], r#"{"status":"Succeeded"}"#),
        (4, "/deployments/d") => reply(200, &[], r#"{"id":"d"}"#),
        _ => reply(500, &[], "unexpected request"),
    });
    let service = script.service(LongRunningLayer::new());
    let mut token = accepted(&service, None).await;
    let mut waits = Vec::new();
    for step in 1..=2 {
        let before = script.count();
        let started = tokio::time::Instant::now();
        match service.step(token).await.unwrap() {
            Step::Running(pending) => {
                assert_eq!(script.count(), before + 1, "step {step} is one poll");
                assert_eq!(pending.operation().percent_complete, Some(40.0));
                assert_eq!(pending.token().polls(), step);
                // The token counts the wait before the next step as spent.
                assert!(pending.token().elapsed() >= pending.poll_in());
                assert_eq!(started.elapsed(), Duration::ZERO, "a step never waits");
                waits.push(pending.poll_in());
                token = pending.into_token();
            }
            Step::Done(_) => panic!("step {step} cannot be the last"),
        }
    }
    assert_eq!(
        waits,
        [Duration::from_secs(7); 2],
        "the server's hint says when"
    );
    let Step::Done(response) = service.step(token).await.unwrap() else {
        panic!("the third step ends the operation");
    };
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, Bytes::from_static(br#"{"id":"d"}"#));
    let trail = script.trail();
    assert_eq!(trail.len(), 5, "{trail:?}");
    assert_eq!(trail[4], (Method::GET, "/deployments/d".to_owned()));
}

#[tokio::test(start_paused = true)]
async fn tokens_say_when_the_next_poll_is_due_and_whether_the_server_asked() {
    let ms = Duration::from_millis;
    for (hint, wait, hinted) in [
        (Some(("retry-after", "2")), ms(2_000), true),
        (Some(("retry-after", "1")), ms(1_000), true),
        (Some(("retry-after-ms", "1500")), ms(1_500), true),
        // No hint: the layer's first default delay, the one it would have waited itself.
        (None, ms(1_000), false),
    ] {
        let script = Script::new(move |n, _, _| match n {
            0 => reply(
                201,
                &[
                    [("azure-asyncoperation", "/operations/1")].as_slice(),
                    hint.as_slice(),
                ]
                .concat(),
                "",
            ),
            1 => reply(200, &[("retry-after", "7")], r#"{"status":"Running"}"#),
            _ => reply(503, &[], ""),
        });
        let service = script.service(LongRunningLayer::new());
        let token = accepted(&service, None).await;
        assert_eq!(token.next_poll_in(), Some(wait), "{hint:?}");
        assert_eq!(token.next_poll_hinted(), hinted, "{hint:?}");
        let back = ResumeToken::from_json(&token.to_json()).unwrap();
        assert_eq!(back.next_poll_in(), Some(wait), "it survives the JSON");
        // A step's token: the same wait as the step's `poll_in`.
        let Step::Running(next) = service.step(token).await.unwrap() else {
            panic!("still running");
        };
        assert_eq!(next.token().next_poll_in(), Some(next.poll_in()));
        assert_eq!(next.poll_in(), Duration::from_secs(7));
        assert!(next.token().next_poll_hinted());
        // A transient failure's backoff is the layer's, not the server's.
        let Step::Running(retry) = service.step(next.into_token()).await.unwrap() else {
            panic!("a 503 is retried");
        };
        // Tokens keep whole milliseconds.
        let kept = retry.token().next_poll_in().map(|wait| wait.as_millis());
        assert_eq!(kept, Some(retry.poll_in().as_millis()));
        assert!(!retry.token().next_poll_hinted());
    }
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_running_steps_and_their_count_survives_the_token() {
    let script = Script::new(|n, _, _| match n {
        0 => started(),
        _ => reply(
            503,
            &[],
            r#"{"error":{"code":"Busy","message":"try later"}}"#,
        ),
    });
    let layer = LongRunningLayer::new().max_transient_retries(2);
    let service = script.service(layer);
    let mut token = accepted(&service, None).await;
    for attempt in 1..=2 {
        match service.step(token).await.unwrap() {
            Step::Running(pending) => {
                assert!(
                    pending.poll_in() > Duration::ZERO,
                    "attempt {attempt} backs off"
                );
                token = pending.into_token();
            }
            _ => panic!("attempt {attempt} is still within the retries"),
        }
    }
    let error = service.step(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedStatus);
    assert_eq!(error.code(), Some("Busy"));
    assert!(
        error.resume_token().is_some(),
        "the operation may still be running"
    );
    assert_eq!(
        script.count(),
        4,
        "one request per step: {:?}",
        script.trail()
    );
}

#[tokio::test(start_paused = true)]
async fn max_polls_counts_across_steps() {
    let script = Script::new(|n, _, _| match n {
        0 => started(),
        _ => reply(200, &[("retry-after", "1")], r#"{"status":"Running"}"#),
    });
    let service = script.service(LongRunningLayer::new().max_polls(2));
    let mut token = accepted(&service, None).await;
    let Step::Running(pending) = service.step(token).await.unwrap() else {
        panic!("one poll of two");
    };
    token = pending.into_token();
    let error = service.step(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TooManyPolls);
    assert_eq!(script.count(), 3, "{:?}", script.trail());
    // The token of the error keeps counting: nothing more is sent.
    let again = service
        .step(error.resume_token().unwrap().clone())
        .await
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::TooManyPolls);
    assert_eq!(script.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_step_that_fails_ends_without_a_token() {
    let script = Script::new(|n, _, _| match n {
        0 => started(),
        _ => reply(
            200,
            &[],
            r#"{"status":"Failed","error":{"code":"Quota","message":"no"}}"#,
        ),
    });
    let service = script.service(LongRunningLayer::new());
    let token = accepted(&service, None).await;
    let error = service.step(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(error.code(), Some("Quota"));
    assert!(error.resume_token().is_none());
}

fn deployment_cancel() -> CancelVia {
    CancelVia::post("/deployments/d/cancel")
}

#[tokio::test(start_paused = true)]
async fn a_cancel_attached_to_the_request_is_sent_once_then_the_operation_followed() {
    let script = Script::new(|n, method, path| match (n, method.as_str(), path) {
        (0, _, _) => started(),
        (1, "POST", "/deployments/d/cancel") => reply(204, &[("retry-after", "2")], ""),
        (2, "GET", "/operations/1") => reply(200, &[], r#"{"status":"Canceled"}"#),
        _ => reply(500, &[], "unexpected request"),
    });
    let service = script.service(LongRunningLayer::new());
    let token = accepted(&service, Some(deployment_cancel())).await;
    assert!(token.can_cancel());
    let error = service.cancel::<Full<Bytes>, _>(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled, "{error}");
    assert_eq!(
        script.trail(),
        [
            (Method::PUT, "/deployments/d".to_owned()),
            (Method::POST, "/deployments/d/cancel".to_owned()),
            (Method::GET, "/operations/1".to_owned()),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn the_way_to_cancel_survives_every_step_and_resume() {
    let script = Script::new(|n, method, path| match (n, method.as_str(), path) {
        (0, _, _) => started(),
        (1 | 2, "GET", "/operations/1") => reply(200, &[], r#"{"status":"Running"}"#),
        (3, "POST", "/deployments/d/cancel") => reply(204, &[], ""),
        (4, "GET", "/operations/1") => reply(200, &[], r#"{"status":"Canceled"}"#),
        _ => reply(500, &[], "unexpected request"),
    });
    let service = script.service(LongRunningLayer::new());
    let mut token = accepted(&service, Some(deployment_cancel())).await;
    // Azure has no cancel of its own: only the caller's `CancelVia`, carried by each token.
    for step in 1..=2 {
        assert!(token.can_cancel(), "before step {step}");
        token = match service.step::<Full<Bytes>, _>(token).await.unwrap() {
            Step::Running(next) => next.into_token(),
            Step::Done(_) => panic!("step {step} cannot be the last"),
        };
    }
    assert!(token.can_cancel(), "after the steps");
    let error = service.cancel::<Full<Bytes>, _>(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled, "{error}");
    assert_eq!(
        script.trail().last(),
        Some(&(Method::GET, "/operations/1".to_owned()))
    );
    assert_eq!(script.count(), 5, "{:?}", script.trail());
}

#[tokio::test(start_paused = true)]
async fn a_cancel_that_fails_is_never_repeated() {
    for (answer, kind) in [
        (reply(503, &[], ""), ErrorKind::UnexpectedStatus),
        (reply(501, &[], ""), ErrorKind::CancelUnsupported),
        (
            Err::<Response<Full<Bytes>>, BoxError>("connection reset".into()),
            ErrorKind::Service,
        ),
    ] {
        let answer = Arc::new(Mutex::new(Some(answer)));
        let script = Script::new(move |n, _, _| match n {
            0 => started(),
            1 => answer.lock().unwrap().take().unwrap(),
            _ => reply(200, &[], r#"{"status":"Running"}"#),
        });
        let service = script.service(LongRunningLayer::new());
        let token = accepted(&service, Some(deployment_cancel())).await;
        let error = service.cancel::<Full<Bytes>, _>(token).await.unwrap_err();
        assert_eq!(error.kind(), kind, "{error}");
        let carried = error.resume_token();
        assert!(carried.is_some(), "the operation goes on: {error}");
        assert!(
            carried.is_some_and(ResumeToken::can_cancel),
            "and can still be canceled: {error}"
        );
        assert_eq!(script.count(), 2, "{kind:?}: {:?}", script.trail());
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_cancel_or_on_another_origin_nothing_is_sent() {
    let script = Script::new(|_, method, _| match *method {
        Method::PUT => started(),
        _ => reply(500, &[], "nothing may be sent"),
    });
    let service = script.service(LongRunningLayer::new());
    let token = accepted(&service, None).await;
    assert!(!token.can_cancel());
    let error = service.cancel::<Full<Bytes>, _>(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CancelUnsupported);
    assert!(error.resume_token().is_some());
    let elsewhere = CancelVia::post("https://evil.example/cancel");
    let token = accepted(&service, Some(elsewhere)).await;
    let error = service.cancel::<Full<Bytes>, _>(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CrossOrigin);
    assert_eq!(script.count(), 2, "only the two PUTs: {:?}", script.trail());
}
