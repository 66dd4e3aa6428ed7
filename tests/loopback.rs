//! Real sockets on the real clock: for each kind of monitor, one operation end to end against the
//! simulator on 127.0.0.1, through hyper-util's client and its `HttpConnector`, with millisecond
//! `retry-after-ms` hints. The rest of the suite runs on tokio's paused clock over the in-memory
//! network; these show that real connections and real waits reach the same outcome.
//!
//! Time is only bounded here, never asserted exactly: each wait lasts at least its hint, and each
//! operation is bounded by `max_polls` and by a deadline.

mod support;

use std::time::Duration;

use http::{Method, Response, StatusCode, Version};
use hyper::body::Incoming;
use support::{assert_sent_once, info, loopback_stack, request, sim_trail, text};
use tower::ServiceExt;
use tower_lro::{LongRunningLayer, ResponseBody};
use tower_lro_sim::{Monitor, RecordedRequest, RetryAfter, Scenario, Simulator};

/// The hint every initial and "running" answer carries.
const HINT: Duration = Duration::from_millis(5);
/// "Running" answers before the terminal one.
const RUNNING: u32 = 2;
/// Far more than the operation needs on a loaded machine, far less than a hung test.
const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `scenario`, started by `method` on `path`, over loopback; returns the final response and
/// what the simulator saw.
async fn follow(
    scenario: Scenario,
    method: Method,
    path: &str,
    body: &'static str,
) -> (Response<ResponseBody<Incoming>>, Vec<RecordedRequest>) {
    // Not registered in the in-memory network: the loopback client reaches its socket.
    let sim = Simulator::start().await.unwrap();
    sim.add(
        scenario
            .retry_after(RetryAfter::Millis(HINT.as_millis() as u64))
            .completes_after_polls(RUNNING),
    );
    let layer = LongRunningLayer::new().max_polls(10).timeout(DEADLINE);
    let call = loopback_stack(layer).oneshot(request(method.clone(), &sim.url(path), body));
    let response = tokio::time::timeout(DEADLINE + Duration::from_secs(1), call)
        .await
        .expect("the operation ends before its deadline")
        .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"));
    let requests = sim.requests();
    assert_sent_once(&sim_trail(&requests), &method, path);
    assert!(requests.iter().all(|r| r.version == Version::HTTP_11));
    // The initial answer and each "running" one asked for a wait before the next request.
    for (n, pair) in requests[..=RUNNING as usize + 1].windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= HINT, "request {} came {gap:?} after the hint", n + 1);
    }
    (response, requests)
}

fn polls(monitor: &str) -> Vec<(Method, String)> {
    (0..=RUNNING)
        .map(|_| (Method::GET, monitor.to_owned()))
        .collect()
}

#[tokio::test]
async fn azure_async_operation_over_loopback() {
    let path = "/vms/vm/start";
    let (response, requests) = follow(
        Scenario::new(Method::POST, path, Monitor::AzureAsyncOperation),
        Method::POST,
        path,
        "",
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let info = info(&response);
    assert_eq!(info.monitor, "azure-async-operation");
    assert_eq!(info.polls, RUNNING + 1);
    assert_eq!(info.state.as_deref(), Some("Succeeded"));
    assert_eq!(
        info.final_uri, None,
        "a POST's last status response is final"
    );
    assert!(info.elapsed >= HINT * (RUNNING + 1), "{:?}", info.elapsed);
    assert!(text(response).await.contains(r#""status":"Succeeded""#));
    let expected = [
        vec![(Method::POST, path.to_owned())],
        polls("/operations/1"),
    ]
    .concat();
    assert_eq!(sim_trail(&requests), expected);
}

#[tokio::test]
async fn operation_location_over_loopback() {
    let path = "/things/a";
    let (response, requests) = follow(
        Scenario::new(Method::PUT, path, Monitor::OperationLocation).resource_location(true),
        Method::PUT,
        path,
        r#"{"size":3}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let info = info(&response);
    assert_eq!(info.monitor, "operation-location");
    assert_eq!(info.polls, RUNNING + 1);
    assert_eq!(info.state.as_deref(), Some("Succeeded"));
    assert_eq!(info.final_uri.unwrap().path(), "/resources/1");
    assert!(text(response).await.contains(r#""name":"resource-1""#));
    let expected = [
        vec![(Method::PUT, path.to_owned())],
        polls("/operations/1"),
        vec![(Method::GET, "/resources/1".to_owned())],
    ]
    .concat();
    assert_eq!(sim_trail(&requests), expected);
}

#[tokio::test]
async fn location_over_loopback() {
    let path = "/accounts/a";
    let (response, requests) = follow(
        Scenario::new(Method::PUT, path, Monitor::Location),
        Method::PUT,
        path,
        r#"{"kind":"Storage"}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let info = info(&response);
    assert_eq!(info.monitor, "location");
    assert_eq!(info.polls, RUNNING + 1);
    assert_eq!(info.last_http_status, Some(StatusCode::OK));
    assert!(text(response).await.contains(r#""name":"resource-1""#));
    let expected = [
        vec![(Method::PUT, path.to_owned())],
        polls("/operations/1?monitor=true"),
    ]
    .concat();
    assert_eq!(sim_trail(&requests), expected);
}

#[tokio::test]
async fn resource_over_loopback() {
    let path = "/things/r";
    let (response, requests) = follow(
        Scenario::new(Method::PUT, path, Monitor::Resource),
        Method::PUT,
        path,
        r#"{"size":3}"#,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let info = info(&response);
    assert_eq!(info.monitor, "resource");
    assert_eq!(info.polls, RUNNING + 1);
    assert_eq!(info.state.as_deref(), Some("Succeeded"));
    assert!(text(response)
        .await
        .contains(r#""provisioningState":"Succeeded""#));
    let expected = [vec![(Method::PUT, path.to_owned())], polls(path)].concat();
    assert_eq!(sim_trail(&requests), expected);
}

#[tokio::test]
async fn google_operation_and_its_cancel_over_loopback() {
    const INSTANCES: &str = "/v1/projects/p/locations/l/instances";
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation)
            .retry_after(RetryAfter::Millis(HINT.as_millis() as u64))
            .completes_after_polls(RUNNING),
    );
    let layer = || {
        LongRunningLayer::with_dialect(tower_lro::Google::new())
            .max_polls(10)
            .timeout(DEADLINE)
    };
    let google = tower::ServiceBuilder::new()
        .layer(layer())
        .service(support::loopback_client());
    let call = google
        .clone()
        .oneshot(request(Method::POST, &sim.url(INSTANCES), "{}"));
    let response = tokio::time::timeout(DEADLINE + Duration::from_secs(1), call)
        .await
        .expect("the operation ends before its deadline")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(info(&response).polls, RUNNING + 1);
    assert!(text(response).await.contains(r#""done":true"#));
    let operation = "/v1/projects/p/locations/l/operations/op-1";
    assert_sent_once(&sim_trail(&sim.requests()), &Method::POST, INSTANCES);
    assert_eq!(sim.count(&Method::GET, operation), RUNNING as usize + 1);

    // A second one, accepted, then canceled over the same kind of connection.
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation)
            .retry_after(RetryAfter::Millis(HINT.as_millis() as u64))
            .completes_after_polls(1_000),
    );
    let mut start = request(Method::POST, &sim.url(INSTANCES), "{}");
    start
        .extensions_mut()
        .insert(tower_lro::Polling::AcceptOnly);
    let accepted = google.clone().oneshot(start).await.unwrap();
    let token = accepted
        .extensions()
        .get::<tower_lro::ResumeToken>()
        .cloned()
        .unwrap();
    let canceled = tokio::time::timeout(DEADLINE, google.cancel(token))
        .await
        .expect("the cancel ends before its deadline")
        .unwrap_err();
    assert_eq!(canceled.kind(), tower_lro::ErrorKind::Canceled);
    let cancel = "/v1/projects/p/locations/l/operations/op-2:cancel";
    assert_eq!(sim.count(&Method::POST, cancel), 1);
}
