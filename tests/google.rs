//! Google AIP-151 operations (PROTOCOL §9) and server-side cancel (§11), end to end against the
//! simulator over HTTP on the in-memory network, on tokio's paused clock.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use support::{request, text, HttpClient};
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{
    CancelVia, ErrorKind, Google, LongRunning, LongRunningLayer, OperationInfo, Polling,
    ResumeToken, Step,
};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

const INSTANCES: &str = "/v1/projects/p/locations/l/instances";
const OPERATION: &str = "/v1/projects/p/locations/l/operations/op-1";

fn google() -> LongRunning<HttpClient, Google> {
    ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(Google::new()))
        .service(support::client())
}

fn create(sim: &Simulator) -> http::Request<Full<Bytes>> {
    request(
        Method::POST,
        &sim.url(&format!("{INSTANCES}?instanceId=i")),
        "{}",
    )
}

fn answer(status: u16, body: &'static str) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

fn info<B>(response: &http::Response<B>) -> &OperationInfo {
    response.extensions().get::<OperationInfo>().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_successful_operation_ends_with_its_last_status_response_byte_for_byte() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation)
            .completes_after_polls(2)
            .percent_complete(true)
            .resource_body(r#"{"name":"projects/p/locations/l/instances/i","state":"READY"}"#),
    );
    let response = google().oneshot(create(&sim)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let operation = info(&response).clone();
    assert_eq!(operation.monitor, "google-operation");
    assert_eq!(operation.polls, 3, "two running answers, then done");
    assert_eq!(operation.percent_complete, Some(100.0));
    assert_eq!(
        operation.operation_name.as_deref(),
        Some("projects/p/locations/l/operations/op-1")
    );
    assert_eq!(
        operation.monitor_url.path(),
        OPERATION,
        "{{origin}}/{{version}}/{{name}}"
    );
    assert_eq!(operation.final_uri, None, "no GET beyond the status");
    let body = text(response).await;
    assert_eq!(
        body,
        r#"{"name":"projects/p/locations/l/operations/op-1","metadata":{"@type":"type.googleapis.com/google.cloud.sim.v1.OperationMetadata","progressPercent":100},"done":true,"response":{"name":"projects/p/locations/l/instances/i","state":"READY"}}"#
    );
    assert_eq!(
        sim.count(&Method::POST, INSTANCES),
        1,
        "the initial request, once"
    );
    assert_eq!(sim.count(&Method::GET, OPERATION), 3);
    assert_eq!(
        sim.requests().len(),
        4,
        "nothing beyond the protocol's minimum"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_hint_polls_follow_the_layers_delays() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation).completes_after_polls(2),
    );
    google().oneshot(create(&sim)).await.unwrap();
    let at: Vec<_> = sim.requests().iter().map(|r| r.at).collect();
    let waits: Vec<_> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        waits,
        [1, 2, 4].map(Duration::from_secs),
        "1 s, doubling, as google-cloud-lro does"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_operation_is_failed_with_the_integer_code_as_text() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation)
            .retry_after(RetryAfter::Millis(10))
            .ending(Ending::Failed {
                code: "3".into(),
                message: "instance name is invalid".into(),
            }),
    );
    let error = google().oneshot(create(&sim)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(error.code(), Some("3"));
    assert_eq!(error.message(), Some("instance name is invalid"));
    assert_eq!(error.status(), Some(StatusCode::OK));
    assert!(error.body().unwrap().starts_with(b"{\"name\""));
    assert!(error.resume_token().is_none(), "the operation has ended");
}

#[tokio::test(start_paused = true)]
async fn code_1_is_canceled() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation)
            .retry_after(RetryAfter::Millis(10))
            .ending(Ending::Canceled),
    );
    let error = google().oneshot(create(&sim)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled);
    assert_eq!(error.code(), Some("1"));
}

#[tokio::test(start_paused = true)]
async fn progress_comes_from_metadata() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation)
            .retry_after(RetryAfter::Millis(10))
            .completes_after_polls(3)
            .percent_complete(true),
    );
    let (sender, mut updates) = tower_lro::progress::channel();
    let mut req = create(&sim);
    req.extensions_mut().insert(sender);
    let operation = tokio::spawn(google().oneshot(req));
    let mut seen = Vec::new();
    while updates.changed().await.is_ok() {
        if let Some(progress) = updates.borrow_and_update().as_ref() {
            seen.push(progress.operation.percent_complete);
        }
    }
    operation.await.unwrap().unwrap();
    assert_eq!(seen.first(), Some(&Some(0.0)), "{seen:?}");
    assert_eq!(seen.last(), Some(&Some(100.0)), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
}

async fn accepted(sim: &Simulator) -> ResumeToken {
    let mut req = create(sim);
    req.extensions_mut().insert(Polling::AcceptOnly);
    let response = google().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let token = response.extensions().get::<ResumeToken>().cloned().unwrap();
    assert_eq!(token.dialect(), "google");
    token
}

#[tokio::test(start_paused = true)]
async fn a_token_is_resumed_by_a_google_layer_only() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation)
            .retry_after(RetryAfter::Millis(10)),
    );
    let token = ResumeToken::from_json(&accepted(&sim).await.to_json()).unwrap();
    let refused = support::stack(LongRunningLayer::new())
        .resume(token.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidResumeToken);
    let response = google().resume(token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(text(response).await.contains(r#""done":true"#));
    assert_eq!(sim.count(&Method::POST, INSTANCES), 1);
}

#[tokio::test(start_paused = true)]
async fn steps_drive_an_operation_one_poll_at_a_time() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation).completes_after_polls(2),
    );
    let service = google();
    let mut token = accepted(&sim).await;
    let mut waits = Vec::new();
    let response = loop {
        let before = sim.count(&Method::GET, OPERATION);
        match service.step(token).await.unwrap() {
            Step::Running(pending) => {
                assert_eq!(sim.count(&Method::GET, OPERATION), before + 1);
                waits.push(pending.poll_in());
                token = pending.into_token();
            }
            Step::Done(response) => break response,
        }
        assert!(waits.len() < 10, "bounded");
    };
    assert_eq!(waits, [1, 2].map(Duration::from_secs));
    assert_eq!(sim.count(&Method::GET, OPERATION), 3);
    assert!(text(response).await.contains(r#""response""#));
}

#[tokio::test(start_paused = true)]
async fn malformed_operations_are_malformed_status() {
    let server = support::RawServer::start(|n, _| match n {
        0 => answer(200, r#"{"name":"operations/1"}"#),
        _ => answer(200, r#"{"name":"operations/1","done":true}"#),
    })
    .await;
    let req = request(Method::POST, &server.url("/v1/things"), "{}");
    let error = google().oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MalformedStatus);
    assert_eq!(
        error.body().map(|b| b.to_vec()),
        Some(br#"{"name":"operations/1","done":true}"#.to_vec())
    );
    assert!(error.resume_token().is_some());
}

#[tokio::test(start_paused = true)]
async fn an_api_error_is_unexpected_with_its_status_as_the_code() {
    let server = support::RawServer::start(|n, _| match n {
        0 => answer(200, r#"{"name":"operations/1"}"#),
        _ => answer(
            404,
            r#"{"error":{"code":404,"message":"operation gone","status":"NOT_FOUND"}}"#,
        ),
    })
    .await;
    let req = request(Method::POST, &server.url("/v1/things"), "{}");
    let error = google().oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedStatus);
    assert_eq!(error.code(), Some("NOT_FOUND"));
    assert_eq!(error.message(), Some("operation gone"));
}

// ---------------------------------------------------------------------------------------------
// Cancel.

#[tokio::test(start_paused = true)]
async fn cancel_posts_once_then_follows_the_operation_to_canceled() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation).completes_after_polls(100),
    );
    let token = accepted(&sim).await;
    assert!(token.can_cancel());
    let error = google().cancel(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled);
    let cancels: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::POST && r.uri.path() == format!("{OPERATION}:cancel"))
        .collect();
    assert_eq!(cancels.len(), 1, "sent once");
    assert_eq!(cancels[0].headers["content-type"], "application/json");
    assert_eq!(
        sim.count(&Method::GET, OPERATION),
        1,
        "then polled to its end"
    );
}

#[tokio::test(start_paused = true)]
async fn an_operation_that_completes_anyway_gives_its_final_response() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation)
            .completes_after_polls(1)
            .completes_when_canceled(true),
    );
    let token = accepted(&sim).await;
    let response = google().cancel(token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(text(response).await.contains(r#""response""#));
}

#[tokio::test(start_paused = true)]
async fn a_server_without_cancel_answers_501_and_the_operation_goes_on() {
    let sim = support::simulator().await;
    sim.add(Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation).cancelable(false));
    let token = accepted(&sim).await;
    let error = google().cancel(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CancelUnsupported);
    assert_eq!(error.status(), Some(StatusCode::NOT_IMPLEMENTED));
    assert_eq!(error.code(), Some("UNIMPLEMENTED"));
    let token = error
        .resume_token()
        .cloned()
        .expect("the operation goes on");
    let response = google().resume(token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_cancel_request_goes_through_a_buffered_stack() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation).completes_after_polls(100),
    );
    let token = accepted(&sim).await;
    let stack = ServiceBuilder::new()
        .buffer(4)
        .layer(LongRunningLayer::with_dialect(Google::new()))
        .service(support::client());
    let error = stack
        .oneshot(token.into_cancel_request())
        .await
        .unwrap_err();
    let error = error.downcast::<tower_lro::Error>().unwrap();
    assert_eq!(error.kind(), ErrorKind::Canceled);
}

#[tokio::test(start_paused = true)]
async fn an_azure_operation_is_canceled_through_the_request_the_caller_attached() {
    const DEPLOYMENT: &str =
        "/subscriptions/s/resourcegroups/g/providers/Microsoft.Resources/deployments/d";
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::PUT, DEPLOYMENT, Monitor::AzureAsyncOperation)
            .retry_after(RetryAfter::Millis(10))
            .completes_after_polls(100),
    );
    let mut req = request(
        Method::PUT,
        &sim.url(&format!("{DEPLOYMENT}?api-version=2021-04-01")),
        "{}",
    );
    req.extensions_mut().insert(Polling::AcceptOnly);
    req.extensions_mut().insert(CancelVia::post(format!(
        "{DEPLOYMENT}/cancel?api-version=2021-04-01"
    )));
    let azure = support::stack(LongRunningLayer::new());
    let accepted = azure.clone().oneshot(req).await.unwrap();
    let token = accepted.extensions().get::<ResumeToken>().cloned().unwrap();
    let token = ResumeToken::from_json(&token.to_json()).unwrap();
    let error = azure.cancel(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled);
    assert_eq!(sim.count(&Method::POST, &format!("{DEPLOYMENT}/cancel")), 1);
    assert_eq!(sim.count(&Method::PUT, DEPLOYMENT), 1);
    // The body of the final status says so.
    assert!(String::from_utf8_lossy(error.body().unwrap()).contains("Canceled"));
}
