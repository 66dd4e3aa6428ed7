//! FHIR Bulk Data exports (PROTOCOL §16) end to end: against the simulator on the in-memory
//! network, and against scripted services for the bad inputs, on tokio's paused clock.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use support::{reply, text, HttpClient, RawServer};
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{
    ErrorKind, FhirBulkData, LongRunning, LongRunningLayer, Polling, ResumeToken, Step,
};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

const EXPORT: &str = "/fhir/$export";
const STATUS: &str = "/operations/1";

fn fhir() -> LongRunning<HttpClient, FhirBulkData> {
    ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(FhirBulkData::new()))
        .service(support::client())
}

/// The kick-off: a `GET`, as the IG's usual form is.
fn kick_off(sim: &Simulator) -> Request<Full<Bytes>> {
    Request::get(sim.url(&format!("{EXPORT}?_type=Patient")))
        .header("accept", "application/fhir+json")
        .body(Full::default())
        .unwrap()
}

fn scenario() -> Scenario {
    Scenario::new(Method::GET, EXPORT, Monitor::FhirBulkData).retry_after(RetryAfter::Seconds(5))
}

#[tokio::test(start_paused = true)]
async fn an_export_kicked_off_by_a_get_ends_with_its_manifest() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(3).percent_complete(true));
    let (sender, mut updates) = tower_lro::progress::channel();
    let mut req = kick_off(&sim);
    req.extensions_mut().insert(sender);
    let export = tokio::spawn(fhir().oneshot(req));
    let mut progress = Vec::new();
    while updates.changed().await.is_ok() {
        if let Some(update) = updates.borrow_and_update().as_ref() {
            progress.push((
                update.operation.state.clone(),
                update.operation.percent_complete,
            ));
        }
        assert!(progress.len() < 20, "bounded");
    }
    let response = export.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let info = support::info(&response);
    assert_eq!(info.monitor, "fhir-bulk-data");
    assert_eq!(info.polls, 4);
    assert!(
        progress.contains(&(Some("50% complete".into()), Some(50.0))),
        "X-Progress: {progress:?}"
    );
    let manifest = text(response).await;
    assert!(
        manifest.contains(r#""output":[{"type":"Patient""#),
        "{manifest}"
    );
    let requests = sim.requests();
    assert_eq!(requests[0].method, Method::GET);
    assert_eq!(requests[0].headers["prefer"], "respond-async");
    assert!(requests[1..]
        .iter()
        .all(|r| r.method == Method::GET && r.uri.path() == STATUS));
    assert!(requests[1..]
        .iter()
        .all(|r| !r.headers.contains_key("prefer")));
    assert!(requests[1..]
        .iter()
        .all(|r| r.headers["accept"] == "application/fhir+json"));
    let waits: Vec<_> = requests.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        waits.iter().all(|w| w.as_secs() == 5),
        "Retry-After: {waits:?}"
    );
    assert_eq!(sim.count(&Method::GET, EXPORT), 1, "the kick-off, once");
}

#[tokio::test(start_paused = true)]
async fn a_post_kick_off_is_followed_too() {
    let sim = support::simulator().await;
    sim.add(Scenario::new(Method::POST, EXPORT, Monitor::FhirBulkData).completes_after_polls(1));
    let req = support::request(
        Method::POST,
        &sim.url(EXPORT),
        r#"{"resourceType":"Parameters"}"#,
    );
    let response = fhir().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sim.count(&Method::POST, EXPORT), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_export_is_failed_with_the_operation_outcome() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(1).ending(Ending::Failed {
        code: "too-costly".into(),
        message: "the export is too large".into(),
    }));
    let error = fhir().oneshot(kick_off(&sim)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(error.code(), Some("too-costly"));
    assert_eq!(error.message(), Some("the export is too large"));
    assert!(error.resume_token().is_none(), "the export has ended");
}

#[tokio::test(start_paused = true)]
async fn a_transient_outcome_is_polled_again() {
    let server = RawServer::start(|n, _| match n {
        0 => reply(202, &[("content-location", "/status/1")], ""),
        1 | 2 => reply(
            500,
            &[("content-type", "application/fhir+json")],
            r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient","diagnostics":"try later"}]}"#,
        ),
        _ => reply(200, &[("content-type", "application/json")], r#"{"output":[]}"#),
    })
    .await;
    let req = Request::get(server.url(EXPORT))
        .body(Full::default())
        .unwrap();
    let response = fhir().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, r#"{"output":[]}"#);
    assert_eq!(server.count(&Method::GET), 4);
}

/// A client that polls too often gets `429` + `Retry-After` with an `OperationOutcome` of any
/// code (IG v2.0.0): the same GET again, not a failure.
#[tokio::test(start_paused = true)]
async fn a_rate_limited_poll_is_polled_again_whatever_its_outcome_says() {
    let server = RawServer::start(|n, _| match n {
        0 => reply(202, &[("content-location", "/status/1")], ""),
        1 => reply(
            429,
            &[("content-type", "application/fhir+json"), ("retry-after", "7")],
            r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing"}]}"#,
        ),
        2 => reply(202, &[("x-progress", "50% complete")], ""),
        _ => reply(200, &[("content-type", "application/json")], r#"{"output":[]}"#),
    })
    .await;
    let req = Request::get(server.url(EXPORT))
        .body(Full::default())
        .unwrap();
    let response = fhir().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, r#"{"output":[]}"#);
    assert_eq!(server.count(&Method::GET), 4);
    let seen = server.seen();
    assert!(
        seen[2].at - seen[1].at >= Duration::from_secs(7),
        "the 429's Retry-After"
    );
}

/// `Prefer: respond-async, separate-export-status` (IG 3.0.0): every status answer is a `200`,
/// the export's status in `X-Export-Status`. A failed export is `Failed`, never the `200`.
#[tokio::test(start_paused = true)]
async fn a_separate_export_status_is_followed_to_its_failure() {
    let server = RawServer::start(|n, _| match n {
        0 => reply(202, &[("content-location", "/status/1")], ""),
        1 => reply(
            200,
            &[("x-export-status", "202 Accepted"), ("x-progress", "in progress")],
            "",
        ),
        _ => reply(
            200,
            &[
                ("x-export-status", "500 Internal Server Error"),
                ("content-type", "application/fhir+json"),
            ],
            r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception","diagnostics":"the export failed"}]}"#,
        ),
    })
    .await;
    let req = Request::get(server.url(EXPORT))
        .header("prefer", "respond-async, separate-export-status")
        .body(Full::default())
        .unwrap();
    let error = fhir().oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(error.code(), Some("exception"));
    assert_eq!(error.message(), Some("the export failed"));
    assert_eq!(error.status(), Some(StatusCode::OK));
    let headers = error.headers().unwrap();
    assert_eq!(headers["x-export-status"], "500 Internal Server Error");
    assert_eq!(server.count(&Method::GET), 3);
    assert_eq!(
        server.seen()[0].headers["prefer"],
        "respond-async, separate-export-status"
    );
}

async fn accepted(sim: &Simulator) -> ResumeToken {
    let mut req = kick_off(sim);
    req.extensions_mut().insert(Polling::AcceptOnly);
    let response = fhir().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let token = response.extensions().get::<ResumeToken>().cloned().unwrap();
    let outcome = text(response).await;
    assert!(
        outcome.contains("informational"),
        "the 202's OperationOutcome is no failure: {outcome}"
    );
    assert_eq!(token.dialect(), "fhir-bulk-data");
    ResumeToken::from_json(&token.to_json()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_token_resumes_the_export() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(2));
    let token = accepted(&sim).await;
    let response = fhir().resume(token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sim.count(&Method::GET, EXPORT), 1, "never kicked off again");
    assert_eq!(sim.count(&Method::GET, STATUS), 3);
}

#[tokio::test(start_paused = true)]
async fn steps_poll_once_each() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(2));
    let service = fhir();
    let mut token = accepted(&sim).await;
    let response = loop {
        let before = sim.count(&Method::GET, STATUS);
        match service.step(token).await.unwrap() {
            Step::Running(pending) => {
                assert_eq!(sim.count(&Method::GET, STATUS), before + 1);
                assert_eq!(pending.poll_in().as_secs(), 5);
                assert_eq!(pending.operation().state.as_deref(), Some("in progress"));
                token = pending.into_token();
            }
            Step::Done(response) => break response,
        }
        assert!(sim.count(&Method::GET, STATUS) < 10, "bounded");
    };
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sim.count(&Method::GET, STATUS), 3);
}

#[tokio::test(start_paused = true)]
async fn cancel_deletes_the_status_url_once() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(100));
    let token = accepted(&sim).await;
    assert!(token.can_cancel());
    let error = fhir().cancel(token).await.unwrap_err();
    assert_eq!(sim.count(&Method::DELETE, STATUS), 1, "sent once");
    assert_eq!(sim.count(&Method::GET, STATUS), 1, "then polled once");
    // The IG: the status URL answers 404 with an OperationOutcome after a DELETE.
    assert_eq!(error.kind(), ErrorKind::Canceled, "{error}");
    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(error.code(), Some("not-found"), "the OperationOutcome's");
    assert!(
        error
            .to_string()
            .starts_with("long-running operation was canceled: not-found: "),
        "{error}"
    );
    assert!(error.resume_token().is_none(), "the export has ended");
}

#[tokio::test(start_paused = true)]
async fn a_cancel_is_remembered_in_the_token_of_a_layer_that_stopped_early() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(100));
    let token = accepted(&sim).await;
    let before = token.to_json();
    assert!(!before.contains("canceling"), "{before}");
    // The canceling layer's deadline passes before its first poll after the DELETE.
    let layer =
        LongRunningLayer::with_dialect(FhirBulkData::new()).timeout(Duration::from_millis(500));
    let stopped = ServiceBuilder::new()
        .layer(layer)
        .service(support::client())
        .cancel(token)
        .await
        .unwrap_err();
    assert_eq!(stopped.kind(), ErrorKind::TimedOut, "{stopped}");
    assert_eq!(sim.count(&Method::DELETE, STATUS), 1);
    let token = stopped.resume_token().cloned().expect("the cancel goes on");
    let json = token.to_json();
    assert!(json.contains(r#""canceling":true"#), "{json}");
    let polls = sim.count(&Method::GET, STATUS);
    let error = fhir()
        .resume(ResumeToken::from_json(&json).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled, "{error}");
    assert_eq!(error.code(), Some("not-found"));
    assert_eq!(sim.count(&Method::GET, STATUS), polls + 1);
    assert_eq!(sim.count(&Method::DELETE, STATUS), 1, "never sent again");
}

#[tokio::test(start_paused = true)]
async fn a_gone_status_url_without_a_cancel_is_failed() {
    // Expired, or deleted by another client: nothing tells which.
    let server = RawServer::start(|n, _| match n {
        0 => reply(202, &[("content-location", "/status/1")], ""),
        _ => reply(
            404,
            &[("content-type", "application/fhir+json")],
            r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found","diagnostics":"no such export"}]}"#,
        ),
    })
    .await;
    let req = Request::get(server.url(EXPORT))
        .body(Full::default())
        .unwrap();
    let error = fhir().oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed, "{error}");
    assert_eq!(error.code(), Some("not-found"));
    assert_eq!(error.message(), Some("no such export"));
}

#[tokio::test(start_paused = true)]
async fn a_server_without_cancel_answers_405_and_the_export_goes_on() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(1).cancelable(false));
    let token = accepted(&sim).await;
    let error = fhir().cancel(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CancelUnsupported);
    let token = error.resume_token().cloned().expect("the export goes on");
    let response = fhir().resume(token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Bad input.

/// A megabyte of `X-Progress` on every status answer: no HTTP/1 client takes a head that large
/// (hyper stops at about 400 KiB), so the service here is a `tower::service_fn` that hands the
/// layer such answers as they are. The progress kept is its first 256 bytes.
#[tokio::test(start_paused = true)]
async fn a_megabyte_of_progress_is_cut_to_its_first_bytes() {
    let huge = "9".repeat(1 << 20);
    let calls = Arc::new(AtomicUsize::new(0));
    let service = {
        let calls = calls.clone();
        tower::service_fn(move |_: Request<Full<Bytes>>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let huge = huge.clone();
            async move {
                let builder = Response::builder();
                let response = match n {
                    0 => builder
                        .status(202)
                        .header("content-location", "https://fhir.example/status/1"),
                    1..=3 => builder
                        .status(202)
                        .header("x-progress", huge)
                        .header("retry-after", "1"),
                    _ => builder.status(200),
                };
                Ok::<_, Infallible>(response.body(Full::<Bytes>::default()).unwrap())
            }
        })
    };
    let (sender, mut updates) = tower_lro::progress::channel();
    let mut req = Request::get("https://fhir.example/$export")
        .body(Full::default())
        .unwrap();
    req.extensions_mut().insert(sender);
    let layer = LongRunningLayer::with_dialect(FhirBulkData::new());
    let export = tokio::spawn(
        ServiceBuilder::new()
            .layer(layer)
            .service(service)
            .oneshot(req),
    );
    let mut lengths = Vec::new();
    while updates.changed().await.is_ok() {
        if let Some(update) = updates.borrow_and_update().as_ref() {
            lengths.push(update.operation.state.as_ref().map(String::len));
            assert_eq!(
                update.operation.percent_complete, None,
                "999…% is no percentage"
            );
        }
        assert!(lengths.len() < 20, "bounded");
    }
    let response = export.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert!(lengths.contains(&Some(256)), "{lengths:?}");
    assert!(
        lengths.iter().all(|l| l.is_none_or(|l| l <= 256)),
        "{lengths:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_kick_off_answered_without_a_status_url_is_not_followed() {
    let server = RawServer::start(|_, _| reply(202, &[("location", "/status/1")], "")).await;
    let req = Request::get(server.url(EXPORT))
        .body(Full::default())
        .unwrap();
    let response = fhir().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(server.count(&Method::GET), 1);
}
