//! OData 4.01 asynchronous requests (PROTOCOL §15) end to end: against the simulator on the
//! in-memory network, and against scripted servers for the bad inputs, on tokio's paused clock.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use support::{reply, request, text, HttpClient, RawServer};
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{ErrorKind, LongRunning, LongRunningLayer, ODataAsync, Polling, ResumeToken, Step};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

const ORDERS: &str = "/service/Orders";
const MONITOR: &str = "/operations/1";

fn odata() -> LongRunning<HttpClient, ODataAsync> {
    odata_with(LongRunningLayer::with_dialect(ODataAsync::new()))
}

fn odata_with(layer: LongRunningLayer<ODataAsync>) -> LongRunning<HttpClient, ODataAsync> {
    ServiceBuilder::new()
        .layer(layer)
        .service(support::client())
}

fn create(sim: &Simulator) -> http::Request<Full<Bytes>> {
    request(Method::POST, &sim.url(ORDERS), r#"{"item":"tea"}"#)
}

/// The same request, asking for results as HTTP messages (§11.6: `OData-MaxVersion: 4.0` and
/// no `Accept`); polls repeat the header.
fn create_v40(sim: &Simulator) -> http::Request<Full<Bytes>> {
    let mut req = create(sim);
    req.headers_mut()
        .insert("odata-maxversion", "4.0".parse().unwrap());
    req
}

fn scenario() -> Scenario {
    Scenario::new(Method::POST, ORDERS, Monitor::ODataAsync)
        .retry_after(RetryAfter::Seconds(2))
        .resource_body(r#"{"id":7,"item":"tea"}"#)
}

#[tokio::test(start_paused = true)]
async fn the_async_result_status_is_the_final_status() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(2));
    let mut req = create(&sim);
    req.headers_mut()
        .insert("prefer", "return=representation".parse().unwrap());
    let response = odata().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "AsyncResult: 201");
    assert!(!response.headers().contains_key("asyncresult"));
    assert_eq!(response.headers()["location"], sim.url("/resources/1"));
    let info = support::info(&response);
    assert_eq!(info.monitor, "odata-async");
    assert_eq!(info.polls, 3);
    assert_eq!(text(response).await, r#"{"id":7,"item":"tea"}"#);
    let requests = sim.requests();
    assert_eq!(
        requests[0].headers["prefer"], "return=representation, respond-async",
        "merged with the caller's preference"
    );
    assert!(
        requests[1..]
            .iter()
            .all(|r| !r.headers.contains_key("prefer")),
        "polls do not repeat the preference"
    );
    assert_eq!(sim.count(&Method::POST, ORDERS), 1);
    assert_eq!(sim.count(&Method::GET, MONITOR), 3);
    assert_eq!(requests.len(), 4);
    let waits: Vec<_> = requests.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        waits.iter().all(|w| w.as_secs() == 2),
        "Retry-After: {waits:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_embedded_response_is_the_final_response() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(1));
    let response = odata().oneshot(create_v40(&sim)).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["odata-version"], "4.01");
    assert_eq!(text(response).await, r#"{"id":7,"item":"tea"}"#);
}

#[tokio::test(start_paused = true)]
async fn a_moved_monitor_is_followed() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(2).moves_monitor(true));
    let response = odata().oneshot(create(&sim)).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(sim.count(&Method::GET, MONITOR), 1);
    assert_eq!(sim.count(&Method::GET, "/operations/1-moved"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_service_that_answers_at_once_is_not_followed() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::GET, ORDERS, Monitor::ODataAsync).resource_body(r#"{"value":[]}"#),
    );
    // A layer of another dialect does not ask for an asynchronous answer: the service answers
    // at once, and so the request is not followed.
    let response = support::stack(LongRunningLayer::new())
        .oneshot(support::get(&sim.url(ORDERS)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, r#"{"value":[]}"#);
    // The OData dialect asks for one, even for a GET.
    let response = odata()
        .oneshot(support::get(&sim.url(ORDERS)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(support::info(&response).polls, 3);
}

#[tokio::test(start_paused = true)]
async fn a_failed_request_is_failed_in_both_forms_with_the_odata_error() {
    for v40 in [false, true] {
        let sim = support::simulator().await;
        sim.add(scenario().completes_after_polls(1).ending(Ending::Failed {
            code: "OutOfStock".into(),
            message: "no tea left".into(),
        }));
        let req = if v40 { create_v40(&sim) } else { create(&sim) };
        let error = odata().oneshot(req).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Failed, "v4.0 form: {v40}");
        assert_eq!(error.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
        assert_eq!(error.code(), Some("OutOfStock"));
        assert_eq!(error.message(), Some("no tea left"));
        assert_eq!(
            error.body().map(|b| b.to_vec()),
            Some(br#"{"error":{"code":"OutOfStock","message":"no tea left"}}"#.to_vec()),
            "the embedded body, not the wrapper"
        );
        assert!(error.resume_token().is_none(), "the request has ended");
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_the_service_canceled_is_failed_with_its_5xx() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(1).ending(Ending::Canceled));
    let error = odata().oneshot(create_v40(&sim)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(error.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(error.code(), Some("Canceled"));
}

async fn accepted(sim: &Simulator) -> ResumeToken {
    let mut req = create(sim);
    req.extensions_mut().insert(Polling::AcceptOnly);
    let response = odata().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let token = response.extensions().get::<ResumeToken>().cloned().unwrap();
    assert_eq!(token.dialect(), "odata-async");
    ResumeToken::from_json(&token.to_json()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_token_resumes_the_request() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(2));
    let token = accepted(&sim).await;
    let refused = support::stack(LongRunningLayer::new())
        .resume(token.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidResumeToken);
    let response = odata().resume(token).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(sim.count(&Method::POST, ORDERS), 1, "never sent again");
}

#[tokio::test(start_paused = true)]
async fn steps_poll_once_each() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(2));
    let service = odata();
    let mut token = accepted(&sim).await;
    let response = loop {
        let before = sim.count(&Method::GET, MONITOR);
        match service.step(token).await.unwrap() {
            Step::Running(pending) => {
                assert_eq!(sim.count(&Method::GET, MONITOR), before + 1);
                assert_eq!(pending.poll_in().as_secs(), 2);
                token = pending.into_token();
            }
            Step::Done(response) => break response,
        }
        assert!(sim.count(&Method::GET, MONITOR) < 10, "bounded");
    };
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(sim.count(&Method::GET, MONITOR), 3);
}

#[tokio::test(start_paused = true)]
async fn cancel_deletes_the_monitor_once() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(100));
    let token = accepted(&sim).await;
    assert!(token.can_cancel());
    let error = odata().cancel(token).await.unwrap_err();
    assert_eq!(sim.count(&Method::DELETE, MONITOR), 1, "sent once");
    assert_eq!(sim.count(&Method::GET, MONITOR), 1, "then polled once");
    // The `204` said canceled; the monitor, gone then (§11.6), says it again.
    assert_eq!(error.kind(), ErrorKind::Canceled, "{error}");
    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(error.code(), Some("NotFound"), "the answer's OData error");
    assert_eq!(
        error.to_string(),
        "long-running operation was canceled: NotFound: no such status monitor \
         (the odata-async monitor answered 404 Not Found)"
    );
    assert!(error.resume_token().is_none(), "the request has ended");
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
        LongRunningLayer::with_dialect(ODataAsync::new()).timeout(Duration::from_millis(500));
    let stopped = odata_with(layer).cancel(token).await.unwrap_err();
    assert_eq!(stopped.kind(), ErrorKind::TimedOut, "{stopped}");
    assert_eq!(sim.count(&Method::DELETE, MONITOR), 1);
    let token = stopped.resume_token().cloned().expect("the cancel goes on");
    let json = token.to_json();
    assert!(json.contains(r#""canceling":true"#), "{json}");
    let polls = sim.count(&Method::GET, MONITOR);
    let error = odata()
        .resume(ResumeToken::from_json(&json).unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled, "{error}");
    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(sim.count(&Method::GET, MONITOR), polls + 1);
    assert_eq!(sim.count(&Method::DELETE, MONITOR), 1, "never sent again");
}

#[tokio::test(start_paused = true)]
async fn a_gone_monitor_without_a_cancel_is_unexpected() {
    // Expired, or canceled by another client: nothing tells which.
    let server = RawServer::start(|n, _| match n {
        0 => reply(202, &[("location", "/monitor/1")], ""),
        _ => reply(404, &[], ""),
    })
    .await;
    let req = request(Method::POST, &server.url(ORDERS), "{}");
    let error = odata().oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedStatus, "{error}");
    assert_eq!(error.status(), Some(StatusCode::NOT_FOUND));
}

#[tokio::test(start_paused = true)]
async fn a_service_without_cancel_answers_405_and_the_request_goes_on() {
    let sim = support::simulator().await;
    sim.add(scenario().completes_after_polls(1).cancelable(false));
    let token = accepted(&sim).await;
    let error = odata().cancel(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CancelUnsupported);
    assert_eq!(error.status(), Some(StatusCode::METHOD_NOT_ALLOWED));
    let token = error.resume_token().cloned().expect("the request goes on");
    let response = odata().resume(token).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

// ---------------------------------------------------------------------------------------------
// Bad input: each a typed error with the answer, never a panic and never `Ok`.

/// A service whose monitor answers `200` with `headers` and `body` at the first poll.
async fn done_with(headers: &'static [(&'static str, &'static str)], body: Bytes) -> RawServer {
    RawServer::start(move |n, _| match n {
        0 => reply(202, &[("location", "/monitor/1")], ""),
        _ => reply(200, headers, body.clone()),
    })
    .await
}

async fn ends_malformed(
    server: &RawServer,
    layer: LongRunningLayer<ODataAsync>,
) -> tower_lro::Error {
    let req = request(Method::POST, &server.url(ORDERS), "{}");
    let error = odata_with(layer).oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MalformedStatus, "{error}");
    assert_eq!(error.status(), Some(StatusCode::OK), "the wrapper's status");
    assert!(
        error.resume_token().is_some(),
        "the request may still be done"
    );
    error
}

#[tokio::test(start_paused = true)]
async fn a_truncated_embedded_response_is_malformed() {
    let body = "HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{\"id\":";
    let server = done_with(&[("content-type", "application/http")], body.into()).await;
    let error = ends_malformed(&server, LongRunningLayer::with_dialect(ODataAsync::new())).await;
    assert!(error.to_string().contains("truncated"), "{error}");
    assert_eq!(
        error.body().map(|b| b.to_vec()),
        Some(body.as_bytes().to_vec())
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_that_is_not_http_is_malformed() {
    let server = done_with(
        &[("content-type", "application/http")],
        r#"{"id":7}"#.into(),
    )
    .await;
    let error = ends_malformed(&server, LongRunningLayer::with_dialect(ODataAsync::new())).await;
    assert!(
        error.to_string().contains("not an HTTP response"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_embedded_response_over_the_bound_is_refused() {
    let mut body = b"HTTP/1.1 201 Created\r\nContent-Length: 4096\r\n\r\n".to_vec();
    body.resize(body.len() + 4096, b'x');
    let server = done_with(&[("content-type", "application/http")], body.into()).await;
    let layer = LongRunningLayer::with_dialect(ODataAsync::new()).max_status_body(1024);
    let req = request(Method::POST, &server.url(ORDERS), "{}");
    let error = odata_with(layer).oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StatusBodyTooLarge);
    // Over the header bound: malformed.
    let mut body = b"HTTP/1.1 201 Created\r\n".to_vec();
    for i in 0..101 {
        body.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    let server = done_with(&[("content-type", "application/http")], body.into()).await;
    let error = ends_malformed(&server, LongRunningLayer::with_dialect(ODataAsync::new())).await;
    assert!(error.to_string().contains("100 headers"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn an_async_result_that_is_not_a_status_is_malformed() {
    for value in ["created", "2010", ""] {
        let headers: &'static [(&str, &str)] = match value {
            "created" => &[("asyncresult", "created")],
            "2010" => &[("asyncresult", "2010")],
            _ => &[],
        };
        let server = done_with(headers, r#"{"id":7}"#.into()).await;
        let error =
            ends_malformed(&server, LongRunningLayer::with_dialect(ODataAsync::new())).await;
        let why = error.to_string();
        if value.is_empty() {
            assert!(why.contains("without an AsyncResult"), "{why}");
        } else {
            assert!(why.contains("is not a status code"), "{why}");
            assert_eq!(error.headers().unwrap()["asyncresult"], value);
        }
    }
}
