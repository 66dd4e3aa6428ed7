//! The Asynchronous Request-Reply pattern (PROTOCOL §14), end to end against the simulator: on
//! the in-memory network on tokio's paused clock, and through `ReqwestService` over loopback on
//! the real clock.

mod support;

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use support::{request, text, HttpClient};
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{
    AsyncRequestReply, ErrorKind, LongRunning, LongRunningLayer, OperationInfo, Polling,
    ReqwestService, ResumeToken, Step,
};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

const WORK: &str = "/api/work";
const STATUS: &str = "/api/RequestStatus/1";
const RESULT: &str = "/results/1";
const RESULT_BODY: &str = r#"{"report":"42 rows"}"#;

fn reply_layer() -> LongRunningLayer<AsyncRequestReply> {
    LongRunningLayer::with_dialect(AsyncRequestReply::new())
}

fn stack(layer: LongRunningLayer<AsyncRequestReply>) -> LongRunning<HttpClient, AsyncRequestReply> {
    ServiceBuilder::new()
        .layer(layer)
        .service(support::client())
}

fn work() -> Scenario {
    Scenario::new(Method::POST, WORK, Monitor::AsyncRequestReply)
        .completes_after_polls(2)
        .resource_body(RESULT_BODY)
}

fn start(sim: &Simulator) -> http::Request<Full<Bytes>> {
    let mut req = request(Method::POST, &sim.url(WORK), r#"{"rows":42}"#);
    req.headers_mut()
        .insert("authorization", "Bearer secret".parse().unwrap());
    req
}

fn info<B>(response: &http::Response<B>) -> &OperationInfo {
    response.extensions().get::<OperationInfo>().unwrap()
}

#[tokio::test(start_paused = true)]
async fn pending_200s_then_a_302_to_the_result() {
    let sim = support::simulator().await;
    sim.add(work().retry_after(RetryAfter::Seconds(3)));
    let started = tokio::time::Instant::now();
    let response = stack(reply_layer()).oneshot(start(&sim)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::from_secs(9));
    let operation = info(&response).clone();
    assert_eq!(operation.monitor, Monitor::AsyncRequestReply.as_str());
    assert_eq!(operation.state.as_deref(), Some("In progress"));
    assert_eq!(operation.final_uri.unwrap().path(), RESULT);
    assert_eq!(text(response).await, RESULT_BODY);
    let trail = support::sim_trail(&sim.requests());
    let paths: Vec<_> = trail
        .iter()
        .map(|(m, p)| (m.as_str(), p.split('?').next().unwrap()))
        .collect();
    assert_eq!(
        paths,
        [
            ("POST", WORK),
            ("GET", STATUS),
            ("GET", STATUS),
            ("GET", STATUS),
            ("GET", RESULT)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_303_a_202_while_running_or_the_result_itself() {
    for (tune, final_path) in [
        (
            (|s: Scenario| s.result_redirect(Some(StatusCode::SEE_OTHER)))
                as fn(Scenario) -> Scenario,
            Some(RESULT),
        ),
        (|s: Scenario| s.accepted_while_running(true), Some(RESULT)),
        (|s: Scenario| s.result_redirect(None), None),
    ] {
        let sim = support::simulator().await;
        sim.add(tune(work()));
        let response = stack(reply_layer()).oneshot(start(&sim)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            info(&response)
                .final_uri
                .as_ref()
                .map(|u| u.path().to_owned())
                .as_deref(),
            final_path
        );
        assert_eq!(text(response).await, RESULT_BODY);
        assert_eq!(sim.count(&Method::GET, STATUS), 3);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failure_at_the_status_url_is_failed_with_its_code_and_message() {
    let sim = support::simulator().await;
    sim.add(work().ending(Ending::Failed {
        code: "RowLimit".into(),
        message: "too many rows".into(),
    }));
    let error = stack(reply_layer()).oneshot(start(&sim)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(error.status(), Some(StatusCode::CONFLICT));
    assert_eq!(error.code(), Some("RowLimit"));
    assert_eq!(error.message(), Some("too many rows"));
    assert!(error.resume_token().is_none(), "the work has ended");
}

/// Registers `sim` in the in-memory network under `localhost:{port}` too: the same server as
/// another origin. Unregistered when the returned guard is dropped.
struct OtherName(String, Arc<support::Dial>);

impl Drop for OtherName {
    fn drop(&mut self) {
        support::unregister(&self.0, &self.1);
    }
}

fn as_localhost(sim: &Arc<Simulator>) -> (OtherName, String) {
    let weak: Weak<Simulator> = Arc::downgrade(sim);
    let authority = format!("localhost:{}", sim.addr().port());
    let dial = support::register(
        authority.clone(),
        Arc::new(move || match weak.upgrade() {
            Some(sim) => sim.connect_in_memory(),
            None => Err(std::io::ErrorKind::ConnectionRefused.into()),
        }),
    );
    let origin = format!("http://{authority}");
    (OtherName(authority, dial), origin)
}

#[tokio::test(start_paused = true)]
async fn a_redirect_to_another_origin_is_cross_origin_and_nothing_is_sent() {
    let sim = support::simulator().await;
    let blob = support::simulator().await;
    sim.add(
        work()
            .result_redirect(Some(StatusCode::SEE_OTHER))
            .result_origin(format!("http://{}", blob.addr())),
    );
    let error = stack(reply_layer()).oneshot(start(&sim)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CrossOrigin);
    assert!(
        blob.requests().is_empty(),
        "nothing sent to the other origin"
    );
    assert_eq!(sim.count(&Method::GET, RESULT), 0);
}

#[tokio::test(start_paused = true)]
async fn an_allowed_origin_gets_the_final_get_without_credentials() {
    let sim = support::simulator().await;
    let (_name, origin) = as_localhost(&sim);
    sim.add(work().result_origin(origin.clone()));
    let layer = reply_layer().allow_origin(origin.parse().unwrap());
    let response = stack(layer).oneshot(start(&sim)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, RESULT_BODY);
    let requests = sim.requests();
    let polls: Vec<_> = requests.iter().filter(|r| r.uri.path() == STATUS).collect();
    assert!(polls
        .iter()
        .all(|r| r.headers.contains_key("authorization")));
    let result: Vec<_> = requests.iter().filter(|r| r.uri.path() == RESULT).collect();
    assert_eq!(result.len(), 1);
    assert!(result[0].headers["host"]
        .to_str()
        .unwrap()
        .starts_with("localhost:"));
    assert!(
        !result[0].headers.contains_key("authorization"),
        "withheld from the other origin"
    );
    assert!(
        result[0].uri.query().unwrap().contains("sig="),
        "the SAS query kept"
    );
}

fn answer(
    status: u16,
    headers: &[(&str, &str)],
    body: &'static str,
) -> http::Response<Full<Bytes>> {
    let mut response = http::Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    response
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_redirect_loop_ends_with_the_second_redirect() {
    let server = support::RawServer::start(|_, req| match req.uri.path() {
        WORK => answer(202, &[("location", "/status")], ""),
        "/status" => answer(303, &[("location", "/result")], ""),
        _ => answer(302, &[("location", "/status")], ""),
    })
    .await;
    let req = request(Method::POST, &server.url(WORK), "{}");
    let error = stack(reply_layer()).oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedStatus);
    assert_eq!(error.status(), Some(StatusCode::FOUND));
    assert_eq!(
        server.count(&Method::GET),
        2,
        "the status URL and the result, once each"
    );
}

#[tokio::test(start_paused = true)]
async fn a_status_url_pending_forever_is_bounded_by_max_polls() {
    let sim = support::simulator().await;
    sim.add(work().completes_after_polls(u32::MAX));
    let layer = reply_layer().max_polls(5);
    let error = stack(layer).oneshot(start(&sim)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TooManyPolls);
    assert_eq!(sim.count(&Method::GET, STATUS), 5);
    assert!(error.resume_token().is_some(), "it may still finish");
}

#[tokio::test(start_paused = true)]
async fn a_configured_pending_word_keeps_polling_where_the_default_would_stop() {
    let server = support::RawServer::start(|n, _| match n {
        0 => answer(202, &[("location", "/status")], ""),
        1 => answer(
            200,
            &[("content-type", "application/json")],
            r#"{"state":"Queued"}"#,
        ),
        _ => answer(
            200,
            &[("content-type", "application/json")],
            r#"{"state":"Done","rows":42}"#,
        ),
    })
    .await;
    let dialect = AsyncRequestReply::new()
        .status_member("state")
        .pending_statuses(["Queued"]);
    let req = request(Method::POST, &server.url(WORK), "{}");
    let response = stack(LongRunningLayer::with_dialect(dialect))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(text(response).await, r#"{"state":"Done","rows":42}"#);
    assert_eq!(server.count(&Method::GET), 2);
    // The default words do not include `Queued`: that answer is the result.
    let server = support::RawServer::start(|n, _| match n {
        0 => answer(202, &[("location", "/status")], ""),
        _ => answer(
            200,
            &[("content-type", "application/json")],
            r#"{"state":"Queued"}"#,
        ),
    })
    .await;
    let req = request(Method::POST, &server.url(WORK), "{}");
    let response = stack(reply_layer()).oneshot(req).await.unwrap();
    assert_eq!(text(response).await, r#"{"state":"Queued"}"#);
}

#[tokio::test(start_paused = true)]
async fn a_token_resumes_and_steps_and_has_no_cancel() {
    let sim = support::simulator().await;
    sim.add(work());
    let mut req = start(&sim);
    req.extensions_mut().insert(Polling::AcceptOnly);
    let accepted = stack(reply_layer()).oneshot(req).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let token = accepted.extensions().get::<ResumeToken>().cloned().unwrap();
    assert_eq!(token.dialect(), "async-request-reply");
    assert!(!token.can_cancel());
    let token = ResumeToken::from_json(&token.to_json()).unwrap();
    let error = stack(reply_layer())
        .cancel(token.clone())
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CancelUnsupported);
    assert_eq!(sim.count(&Method::GET, STATUS), 0, "nothing sent");

    let service = stack(reply_layer());
    let mut token = token;
    let mut steps = 0;
    let response = loop {
        match service.step(token).await.unwrap() {
            Step::Running(pending) => token = pending.into_token(),
            Step::Done(response) => break response,
        }
        steps += 1;
        assert!(steps < 10, "bounded");
    };
    assert_eq!(steps, 2);
    assert_eq!(text(response).await, RESULT_BODY);

    sim.add(work().completes_after_polls(1));
    let mut req = start(&sim);
    req.extensions_mut().insert(Polling::AcceptOnly);
    let accepted = stack(reply_layer()).oneshot(req).await.unwrap();
    let token = accepted.extensions().get::<ResumeToken>().cloned().unwrap();
    let response = stack(reply_layer()).resume(token).await.unwrap();
    assert_eq!(text(response).await, RESULT_BODY);
}

// ---------------------------------------------------------------------------------------------
// Through reqwest, over loopback on the real clock.

/// Far more than an operation needs on a loaded machine, far less than a hung test.
const DEADLINE: Duration = Duration::from_secs(30);

fn reqwest_stack(client: reqwest::Client) -> LongRunning<ReqwestService, AsyncRequestReply> {
    ServiceBuilder::new()
        .layer(reply_layer().max_polls(10).timeout(DEADLINE))
        .service(ReqwestService::new(client))
}

fn reqwest_client(redirect: reqwest::redirect::Policy) -> reqwest::Client {
    // No proxy from the environment between the test and 127.0.0.1.
    reqwest::Client::builder()
        .no_proxy()
        .redirect(redirect)
        .build()
        .unwrap()
}

async fn loopback(scenario: Scenario) -> Simulator {
    let sim = Simulator::start().await.unwrap();
    sim.add(scenario.retry_after(RetryAfter::Millis(5)));
    sim
}

fn reqwest_start(sim: &Simulator) -> http::Request<reqwest::Body> {
    http::Request::post(sim.url(WORK))
        .header("content-type", "application/json")
        .body(reqwest::Body::from("{}"))
        .unwrap()
}

#[tokio::test]
async fn through_reqwest_without_redirects_the_layer_makes_the_final_get() {
    let sim = loopback(work().result_redirect(Some(StatusCode::SEE_OTHER))).await;
    let stack = reqwest_stack(reqwest_client(reqwest::redirect::Policy::none()));
    let response = reqwest::Response::from(stack.oneshot(reqwest_start(&sim)).await.unwrap());
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.url().path(), RESULT);
    assert_eq!(response.text().await.unwrap(), RESULT_BODY);
    assert_eq!(sim.count(&Method::GET, RESULT), 1);
}

#[tokio::test]
async fn through_reqwest_without_redirects_another_origin_is_refused() {
    let blob = Simulator::start().await.unwrap();
    let sim = loopback(work().result_origin(format!("http://{}", blob.addr()))).await;
    let stack = reqwest_stack(reqwest_client(reqwest::redirect::Policy::none()));
    let error = stack.oneshot(reqwest_start(&sim)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CrossOrigin);
    assert!(
        blob.requests().is_empty(),
        "nothing sent to the other origin"
    );
}

/// Why `ReqwestService` wants `redirect::Policy::none()`: reqwest's default policy follows the
/// redirect itself, below the layer, so the layer's origin policy never sees it.
#[tokio::test]
async fn reqwests_default_redirects_would_bypass_the_origin_policy() {
    let blob = Simulator::start().await.unwrap();
    let sim = loopback(work().result_origin(format!("http://{}", blob.addr()))).await;
    let stack = reqwest_stack(reqwest_client(reqwest::redirect::Policy::default()));
    // The other origin got the GET (and answers 404: it has no such result).
    let _ = stack.oneshot(reqwest_start(&sim)).await;
    assert_eq!(blob.count(&Method::GET, RESULT), 1);
}

#[tokio::test(start_paused = true)]
async fn a_200_whose_status_says_failed_is_failed_never_ok() {
    let server = support::RawServer::start(|n, _| match n {
        0 => answer(202, &[("location", "/status")], ""),
        1 => answer(
            200,
            &[("content-type", "application/json")],
            r#"{"status":"In progress"}"#,
        ),
        _ => answer(
            200,
            &[("content-type", "application/json")],
            r#"{"status":"Failed","error":{"code":"Quota","message":"over the quota"}}"#,
        ),
    })
    .await;
    let req = request(Method::POST, &server.url(WORK), "{}");
    let error = stack(reply_layer()).oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(error.code(), Some("Quota"));
    assert_eq!(error.message(), Some("over the quota"));
    assert_eq!(error.status(), Some(StatusCode::OK));
    assert_eq!(
        error.operation().and_then(|o| o.state.as_deref()),
        Some("Failed")
    );
    assert_eq!(server.count(&Method::GET), 2);
}

#[tokio::test(start_paused = true)]
async fn a_200_whose_status_says_canceled_is_canceled() {
    let server = support::RawServer::start(|n, _| match n {
        0 => answer(202, &[("location", "/status")], ""),
        _ => answer(200, &[], r#"{"status":"Cancelled"}"#),
    })
    .await;
    let req = request(Method::POST, &server.url(WORK), "{}");
    let error = stack(reply_layer()).oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled);
    assert_eq!(server.count(&Method::GET), 1);
}
