//! `ReqwestService` end to end against the simulator: every kind of monitor, a Google operation,
//! a failed operation, resuming, progress, the final response's URL, and a URI reqwest cannot
//! send. Real loopback sockets on the real clock, with millisecond hints; time is only bounded
//! (by `max_polls` and a deadline), never asserted.
//!
//! No request, token or service below is annotated with a body type: the concrete
//! `reqwest::Body` makes every one of them infer.

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{
    progress, ErrorKind, Google, LongRunning, LongRunningLayer, OperationInfo, Polling,
    ReqwestService, ResumeToken,
};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

use support::{assert_sent_once, sim_trail};

/// The hint every initial and "running" answer carries.
const HINT: RetryAfter = RetryAfter::Millis(5);
/// "Running" answers before the terminal one.
const RUNNING: u32 = 2;
/// Far more than an operation needs on a loaded machine, far less than a hung test.
const DEADLINE: Duration = Duration::from_secs(30);

type Stack = LongRunning<ReqwestService>;

fn stack() -> Stack {
    // No proxy from the environment between the test and 127.0.0.1.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    ServiceBuilder::new()
        .layer(LongRunningLayer::new().max_polls(10).timeout(DEADLINE))
        .service(ReqwestService::new(client))
}

async fn simulator(scenario: Scenario) -> Simulator {
    let sim = Simulator::start().await.unwrap();
    sim.add(scenario.retry_after(HINT).completes_after_polls(RUNNING));
    sim
}

fn request(method: Method, url: &str, body: &'static str) -> http::Request<reqwest::Body> {
    http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(reqwest::Body::from(body))
        .unwrap()
}

/// One operation, started by `method` on `path` and followed through `monitor`, and what
/// following it must come to.
struct Case<'a> {
    method: Method,
    path: &'a str,
    monitor: Monitor,
    /// The requests after the original one, as path and query.
    then: &'a [&'a str],
    /// The path and query of the URL the final response came from.
    final_url: &'a str,
    /// Text the final body contains.
    body: &'a str,
}

/// Follows `case` to its end through reqwest, against a scenario `tune` adjusts, and checks it.
async fn follows(case: Case<'_>, tune: fn(Scenario) -> Scenario) {
    let Case {
        method,
        path,
        monitor,
        ..
    } = &case;
    let sim = simulator(tune(Scenario::new(method.clone(), *path, *monitor))).await;
    let call = stack().oneshot(request(method.clone(), &sim.url(path), "{}"));
    let response = tokio::time::timeout(DEADLINE + Duration::from_secs(1), call)
        .await
        .expect("the operation ends before its deadline")
        .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
    let info = response
        .extensions()
        .get::<OperationInfo>()
        .cloned()
        .unwrap();
    assert_eq!(info.monitor, monitor.as_str());
    assert_eq!(info.polls, RUNNING + 1);
    let trail = sim_trail(&sim.requests());
    assert_sent_once(&trail, method, path);
    let then: Vec<_> = trail[1..].iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(then, case.then);

    let response = reqwest::Response::from(response);
    assert_eq!(response.status(), StatusCode::OK);
    let url = response.url();
    let path_and_query = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    assert_eq!(path_and_query, case.final_url);
    // The layer may have read this body to decide; reqwest still gets every byte.
    let body = response.text().await.unwrap();
    assert!(body.contains(case.body), "{body}");
}

/// Three polls of `monitor`.
const fn polls(monitor: &str) -> [&str; RUNNING as usize + 1] {
    [monitor; RUNNING as usize + 1]
}

#[tokio::test]
async fn azure_async_operation() {
    let case = Case {
        method: Method::POST,
        path: "/vms/vm/start",
        monitor: Monitor::AzureAsyncOperation,
        then: &polls("/operations/1"),
        // A POST's last status response is final.
        final_url: "/operations/1",
        body: r#""status":"Succeeded""#,
    };
    follows(case, |s| s).await;
}

#[tokio::test]
async fn operation_location() {
    let [a, b, c] = polls("/operations/1");
    let case = Case {
        method: Method::PUT,
        path: "/things/a",
        monitor: Monitor::OperationLocation,
        then: &[a, b, c, "/resources/1"],
        final_url: "/resources/1",
        body: r#""name":"resource-1""#,
    };
    follows(case, |s| s.resource_location(true)).await;
}

#[tokio::test]
async fn location() {
    let case = Case {
        method: Method::PUT,
        path: "/accounts/a",
        monitor: Monitor::Location,
        then: &polls("/operations/1?monitor=true"),
        final_url: "/operations/1?monitor=true",
        body: r#""name":"resource-1""#,
    };
    follows(case, |s| s).await;
}

#[tokio::test]
async fn resource() {
    let case = Case {
        method: Method::PUT,
        path: "/things/r",
        monitor: Monitor::Resource,
        then: &polls("/things/r"),
        final_url: "/things/r",
        body: r#""provisioningState":"Succeeded""#,
    };
    follows(case, |s| s).await;
}

const INSTANCES: &str = "/v1/projects/p/locations/l/instances";
const OPERATION: &str = "/v1/projects/p/locations/l/operations/op-1";

#[tokio::test]
async fn a_google_operation_is_followed_and_resumed() {
    let sim = simulator(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation)
            .resource_body(r#"{"name":"projects/p/locations/l/instances/i","state":"READY"}"#),
    )
    .await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let google = LongRunning::with_dialect(ReqwestService::new(client), Google::new());
    let url = sim.url(&format!("{INSTANCES}?instanceId=i"));

    let call = google.clone().oneshot(request(Method::POST, &url, "{}"));
    let response = tokio::time::timeout(DEADLINE, call)
        .await
        .expect("the operation ends before the deadline")
        .unwrap();
    let info = response
        .extensions()
        .get::<OperationInfo>()
        .cloned()
        .unwrap();
    assert_eq!(info.monitor, "google-operation");
    assert_eq!(info.polls, RUNNING + 1);
    let trail = sim_trail(&sim.requests());
    assert_sent_once(&trail, &Method::POST, &format!("{INSTANCES}?instanceId=i"));
    let then: Vec<_> = trail[1..].iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(then, polls(OPERATION));
    // The final response is the last status response: the Operation, done, with the resource.
    let response = reqwest::Response::from(response);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.url().path(), OPERATION);
    let body = response.text().await.unwrap();
    assert!(body.contains(r#""done":true"#), "{body}");
    assert!(body.contains(r#""state":"READY""#), "{body}");

    // Accepted only, then resumed from its token by the same Google service.
    let mut accept = request(Method::POST, &url, "{}");
    accept.extensions_mut().insert(Polling::AcceptOnly);
    let accepted = google.clone().oneshot(accept).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    let token = accepted.extensions().get::<ResumeToken>().cloned().unwrap();
    assert_eq!(token.dialect(), "google");
    let call = google.oneshot(token.into_request());
    let resumed = tokio::time::timeout(DEADLINE, call)
        .await
        .expect("the operation ends before the deadline")
        .unwrap();
    let resumed = reqwest::Response::from(resumed);
    assert_eq!(
        resumed.url().path(),
        "/v1/projects/p/locations/l/operations/op-2"
    );
    assert!(resumed.text().await.unwrap().contains(r#""done":true"#));
    assert_eq!(sim.count(&Method::POST, INSTANCES), 2, "one per operation");
    assert_eq!(
        sim.count(&Method::GET, INSTANCES),
        0,
        "a token sends no request of its own"
    );
}

#[tokio::test]
async fn a_failed_operation_is_a_typed_error() {
    let path = "/accounts/taken";
    let sim = simulator(
        Scenario::new(Method::PUT, path, Monitor::AzureAsyncOperation).ending(Ending::Failed {
            code: "StorageAccountAlreadyTaken".into(),
            message: "taken".into(),
        }),
    )
    .await;
    let err = stack()
        .oneshot(request(Method::PUT, &sim.url(path), "{}"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.code(), Some("StorageAccountAlreadyTaken"));
    assert_eq!(sim.count(&Method::PUT, path), 1);
}

#[tokio::test]
async fn an_accepted_operation_resumes_through_resume_and_into_request() {
    let path = "/accounts/later";
    let sim = simulator(Scenario::new(
        Method::PUT,
        path,
        Monitor::AzureAsyncOperation,
    ))
    .await;
    let mut accept = request(Method::PUT, &sim.url(path), "{}");
    accept.extensions_mut().insert(Polling::AcceptOnly);
    let accepted = stack().oneshot(accept).await.unwrap();
    assert_eq!(accepted.status(), StatusCode::CREATED);
    let token = accepted.extensions().get::<ResumeToken>().cloned().unwrap();

    let resumed = stack().resume(token.clone()).await.unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    // A PUT's final response is a GET of the original URI.
    assert_eq!(reqwest::Response::from(resumed).url().path(), path);
    assert_eq!(sim.count(&Method::PUT, path), 1);
    assert_eq!(
        sim.count(&Method::GET, "/operations/1"),
        RUNNING as usize + 1
    );

    // The same token through `oneshot`: the operation has ended, so one poll says so.
    let again = stack().oneshot(token.into_request()).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(sim.count(&Method::PUT, path), 1);
    assert_eq!(
        sim.count(&Method::GET, "/operations/1"),
        RUNNING as usize + 2
    );
}

#[tokio::test]
async fn progress_is_reported_after_every_poll() {
    let path = "/vms/vm/restart";
    let sim = simulator(
        Scenario::new(Method::POST, path, Monitor::AzureAsyncOperation).percent_complete(true),
    )
    .await;
    let (sender, mut updates) = progress::channel();
    let mut req = request(Method::POST, &sim.url(path), "");
    req.extensions_mut().insert(sender);
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while updates.changed().await.is_ok() {
            if let Some(p) = updates.borrow_and_update().as_ref() {
                seen.push((p.operation.polls, p.finished));
            }
        }
        seen
    });
    stack().oneshot(req).await.unwrap();
    let seen = tokio::time::timeout(DEADLINE, watcher)
        .await
        .unwrap()
        .unwrap();
    // A latest-value channel may skip updates, never reorder them; the last one is final.
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
    assert_eq!(seen.last(), Some(&(RUNNING + 1, true)), "{seen:?}");
}

#[tokio::test]
async fn a_response_that_starts_no_operation_keeps_its_url() {
    let sim = Simulator::start().await.unwrap();
    let response = stack()
        .oneshot(request(Method::GET, &sim.url("/nothing/here?x=1"), ""))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.extensions().get::<OperationInfo>().is_none());
    let url = response
        .extensions()
        .get::<reqwest::Url>()
        .cloned()
        .unwrap();
    let response = reqwest::Response::from(response);
    assert_eq!(*response.url(), url);
    assert_eq!(response.url().as_str(), sim.url("/nothing/here?x=1"));
}

#[tokio::test]
async fn a_uri_reqwest_cannot_send_is_its_builder_error() {
    let err = stack()
        .oneshot(request(Method::PUT, "/relative/only", "{}"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service);
    let source = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<reqwest::Error>())
        .unwrap_or_else(|| panic!("a reqwest::Error inside {err:?}"));
    assert!(source.is_builder(), "{source:?}");
}
