//! Azure Durable Functions orchestrations (PROTOCOL §13), end to end against the simulator over
//! HTTP on the in-memory network, on tokio's paused clock.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use support::{request, text, HttpClient};
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{
    DurableFunctions, ErrorKind, LongRunning, LongRunningLayer, OperationInfo, Polling,
    ResumeToken, Step,
};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

const STARTER: &str = "/api/orchestrators/Hello";
/// The first instance's status path (the simulator's ids are 32 hex digits).
const STATUS: &str = "/runtime/webhooks/durabletask/instances/00000000000000000000000000000001";
/// The simulator's system key, in every URL of its API.
const KEY: &str = "code=sim-system-key";

fn durable() -> LongRunning<HttpClient, DurableFunctions> {
    ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(DurableFunctions::new()))
        .service(support::client())
}

fn start(sim: &Simulator) -> http::Request<Full<Bytes>> {
    request(Method::POST, &sim.url(STARTER), r#"{"city":"Tokyo"}"#)
}

fn info<B>(response: &http::Response<B>) -> &OperationInfo {
    response.extensions().get::<OperationInfo>().unwrap()
}

fn orchestration() -> Scenario {
    Scenario::new(Method::POST, STARTER, Monitor::DurableFunctions)
}

fn failed(code: &str, message: &str) -> Ending {
    Ending::Failed {
        code: code.into(),
        message: message.into(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_completed_orchestration_ends_with_its_status_and_output() {
    let sim = support::simulator().await;
    sim.add(
        orchestration()
            .retry_after(RetryAfter::Seconds(5))
            .completes_after_polls(2)
            .resource_body(r#"["Hello Tokyo!","Hello Seattle!"]"#),
    );
    let started = tokio::time::Instant::now();
    let response = durable().oneshot(start(&sim)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(15),
        "Retry-After: 5, thrice"
    );
    let operation = info(&response).clone();
    assert_eq!(operation.monitor, Monitor::DurableFunctions.as_str());
    assert_eq!(operation.state.as_deref(), Some("Completed"));
    assert_eq!(
        operation.operation_id.as_deref(),
        Some("00000000000000000000000000000001")
    );
    assert_eq!(operation.polls, 3);
    let body = text(response).await;
    assert!(body.contains(r#""runtimeStatus":"Completed""#), "{body}");
    assert!(
        body.contains(r#""output":["Hello Tokyo!","Hello Seattle!"]"#),
        "{body}"
    );
    // Every poll carried the system key of the URL the starter named.
    let polls: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.uri.path() == STATUS)
        .collect();
    assert_eq!(polls.len(), 3);
    assert!(polls.iter().all(|r| r.method == Method::GET));
    assert!(polls.iter().all(|r| r.uri.query().unwrap().contains(KEY)));
    assert_eq!(sim.count(&Method::POST, STARTER), 1, "sent once");
}

#[tokio::test(start_paused = true)]
async fn a_failed_orchestration_is_failed_with_its_error_type_and_message() {
    let sim = support::simulator().await;
    sim.add(orchestration().ending(failed("System.InvalidOperationException", "no city")));
    let error = durable().oneshot(start(&sim)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(error.code(), Some("System.InvalidOperationException"));
    assert_eq!(error.message(), Some("no city"));
    assert_eq!(error.status(), Some(StatusCode::OK));
    assert_eq!(error.operation().unwrap().state.as_deref(), Some("Failed"));
    assert!(
        error.resume_token().is_none(),
        "the orchestration has ended"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_message_alone_is_the_message() {
    let sim = support::simulator().await;
    sim.add(orchestration().ending(failed("", "Orchestrator function 'Hello' failed: no city")));
    let error = durable().oneshot(start(&sim)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(error.code(), None);
    assert_eq!(
        error.message(),
        Some("Orchestrator function 'Hello' failed: no city")
    );
}

/// Today's default dialect takes the `200` of a failed orchestration for its result; the Durable
/// Functions dialect reads its `runtimeStatus`.
#[tokio::test(start_paused = true)]
async fn the_default_dialect_returns_a_failed_orchestration_as_ok_and_this_one_does_not() {
    let sim = support::simulator().await;
    sim.add(orchestration().ending(failed("E", "no city")));
    let wrong = support::stack(LongRunningLayer::new())
        .oneshot(start(&sim))
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::OK);
    assert!(text(wrong).await.contains(r#""runtimeStatus":"Failed""#));
    let error = durable().oneshot(start(&sim)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_500_that_reports_a_failed_instance_is_failed_at_once_not_retried() {
    let sim = support::simulator().await;
    sim.add(
        orchestration()
            .durable_500_on_failure(true)
            .completes_after_polls(1)
            .ending(failed("E", "no city")),
    );
    let error = durable().oneshot(start(&sim)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(error.message(), Some("no city"));
    assert_eq!(sim.count(&Method::GET, STATUS), 2, "no retry of the 500");
    let last = sim.requests().pop().unwrap();
    assert!(last
        .uri
        .query()
        .unwrap()
        .contains("returnInternalServerErrorOnFailure=true"));
}

async fn accepted(sim: &Simulator) -> ResumeToken {
    let mut req = start(sim);
    req.extensions_mut().insert(Polling::AcceptOnly);
    let response = durable().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let token = response.extensions().get::<ResumeToken>().cloned().unwrap();
    assert_eq!(token.dialect(), "durable-functions");
    token
}

#[tokio::test(start_paused = true)]
async fn cancel_posts_the_terminate_url_once_then_follows_to_terminated() {
    let sim = support::simulator().await;
    sim.add(orchestration().completes_after_polls(100));
    let token = accepted(&sim).await;
    assert!(token.can_cancel());
    let token = ResumeToken::from_json(&token.to_json()).unwrap();
    let error = durable().cancel(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled);
    assert_eq!(
        error.message(),
        Some("canceled by tower-lro"),
        "the reason, echoed"
    );
    assert_eq!(
        error.operation().unwrap().state.as_deref(),
        Some("Terminated")
    );
    let terminates: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.uri.path() == format!("{STATUS}/terminate"))
        .collect();
    assert_eq!(terminates.len(), 1, "sent once");
    assert_eq!(terminates[0].method, Method::POST);
    let query = terminates[0].uri.query().unwrap();
    assert!(
        query.starts_with("reason=canceled+by+tower-lro&"),
        "{query}"
    );
    assert!(query.contains(KEY), "{query}");
    assert_eq!(sim.count(&Method::GET, STATUS), 1, "then polled to its end");
}

#[tokio::test(start_paused = true)]
async fn terminating_a_finished_instance_answers_410_and_gives_how_it_ended() {
    let sim = support::simulator().await;
    sim.add(orchestration().completes_after_polls(0));
    let token = accepted(&sim).await;
    let response = durable().cancel(token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(text(response)
        .await
        .contains(r#""runtimeStatus":"Completed""#));
    let answers: Vec<_> = sim.requests().into_iter().map(|r| r.method).collect();
    assert_eq!(answers, [Method::POST, Method::POST, Method::GET]);
}

#[tokio::test(start_paused = true)]
async fn a_token_holds_the_system_key_and_resumes_and_steps() {
    let sim = support::simulator().await;
    sim.add(orchestration().completes_after_polls(2));
    let token = accepted(&sim).await;
    // The status URL and the terminate URL carry the key: the token is a credential.
    assert!(token.to_json().contains("sim-system-key"));
    let debug = format!("{token:?}");
    assert!(!debug.contains("sim-system-key"), "{debug}");
    let token = ResumeToken::from_json(&token.to_json()).unwrap();
    let refused = support::stack(LongRunningLayer::new())
        .resume(token.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidResumeToken);

    let service = durable();
    let mut token = token;
    let mut steps = 0;
    let response = loop {
        match service.step(token).await.unwrap() {
            Step::Running(pending) => {
                assert_eq!(pending.operation().state.as_deref(), Some("Running"));
                token = pending.into_token();
            }
            Step::Done(response) => break response,
        }
        steps += 1;
        assert!(steps < 10, "bounded");
    };
    assert_eq!(steps, 2);
    assert_eq!(response.status(), StatusCode::OK);

    sim.add(orchestration().completes_after_polls(1));
    let response = durable().resume(accepted(&sim).await).await.unwrap();
    assert_eq!(info(&response).state.as_deref(), Some("Completed"));
}

fn answer(status: u16, body: &'static str) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn started(status_url: &str) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(202)
        .header("location", status_url)
        .header("retry-after", "1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(r#"{"id":"abc"}"#)))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn an_unknown_runtime_status_is_malformed_never_ok() {
    let server = support::RawServer::start(|n, _| match n {
        0 => started("/status/abc?code=k"),
        _ => answer(
            200,
            r#"{"instanceId":"abc","runtimeStatus":"Rewinding","output":1}"#,
        ),
    })
    .await;
    let req = request(Method::POST, &server.url(STARTER), "{}");
    let error = durable().oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MalformedStatus);
    assert!(error.to_string().contains("Rewinding"), "{error}");
    assert!(error.resume_token().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_400_that_reports_a_terminated_instance_is_canceled() {
    let server = support::RawServer::start(|n, _| match n {
        0 => started("/status/abc?code=k"),
        _ => answer(
            400,
            r#"{"instanceId":"abc","runtimeStatus":"Terminated","output":"by an operator"}"#,
        ),
    })
    .await;
    let req = request(Method::POST, &server.url(STARTER), "{}");
    let error = durable().oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled);
    assert_eq!(error.message(), Some("by an operator"));
    assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
}

#[tokio::test(start_paused = true)]
async fn without_a_terminate_url_cancel_is_unsupported() {
    let server = support::RawServer::start(|n, _| match n {
        0 => started("/status/abc?code=k"),
        _ => answer(202, r#"{"instanceId":"abc","runtimeStatus":"Running"}"#),
    })
    .await;
    let mut req = request(Method::POST, &server.url(STARTER), "{}");
    req.extensions_mut().insert(Polling::AcceptOnly);
    let response = durable().oneshot(req).await.unwrap();
    let token = response.extensions().get::<ResumeToken>().cloned().unwrap();
    assert!(!token.can_cancel());
    let error = durable().cancel(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CancelUnsupported);
    assert_eq!(server.count(&Method::POST), 1, "only the start");
}

/// `WaitForCompletionOrCreateCheckStatusResponseAsync` of an orchestration that ended before the
/// starter answered: `200` with its instance status, no `Location`.
#[tokio::test(start_paused = true)]
async fn a_waiting_starter_that_answers_a_failed_instance_is_failed_never_ok() {
    let server = support::RawServer::start(|_, _| {
        answer(
            200,
            r#"{"name":"Hello","instanceId":"abc","runtimeStatus":"Failed","output":"Orchestrator function 'Hello' failed: boom"}"#,
        )
    })
    .await;
    let req = request(Method::POST, &server.url(STARTER), "{}");
    let error = durable().oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(
        error.message(),
        Some("Orchestrator function 'Hello' failed: boom")
    );
    assert_eq!(error.status(), Some(StatusCode::OK));
    assert_eq!(server.seen().len(), 1, "nothing to poll");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_starter_that_answers_a_terminated_instance_with_500_is_canceled() {
    let server = support::RawServer::start(|_, _| {
        answer(
            500,
            r#"{"instanceId":"abc","runtimeStatus":"Terminated","output":"by an operator"}"#,
        )
    })
    .await;
    let req = request(Method::POST, &server.url(STARTER), "{}");
    let error = durable().oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled);
    assert_eq!(error.message(), Some("by an operator"));
    assert_eq!(server.seen().len(), 1, "never retried");
}

#[tokio::test(start_paused = true)]
async fn a_waiting_starter_that_answers_a_completed_instance_is_ok_with_its_body() {
    const COMPLETED: &str = r#"{"name":"Hello","instanceId":"abc","runtimeStatus":"Completed","output":["Hello Tokyo!"]}"#;
    let server = support::RawServer::start(|_, _| answer(200, COMPLETED)).await;
    let req = request(Method::POST, &server.url(STARTER), "{}");
    let response = durable().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, COMPLETED);
    assert_eq!(server.seen().len(), 1);
}
