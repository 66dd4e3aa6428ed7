//! The tower `Service` contract of `LongRunning`: readiness is forwarded, the ready service sends
//! the original request, the stored clone is driven to readiness before each poll, it composes
//! with `Buffer`, and its future, body and error are `Send`. Mocks (tower-test) are used only
//! here, where the contract, not the protocol, is under test.

mod support;

use std::error::Error as _;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio_test::{assert_pending, assert_ready_err, assert_ready_ok, task};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_lro::{Error, ErrorKind, LongRunning, LongRunningLayer, OperationInfo, ResponseBody};
use tower_lro_sim::{Monitor, RetryAfter, Scenario};
use tower_test::mock;

type Req = Request<Full<Bytes>>;
type Res = Response<Full<Bytes>>;

fn req(method: Method, path: &str) -> Req {
    Request::builder()
        .method(method)
        .uri(format!("http://lro.test{path}"))
        .body(Full::default())
        .unwrap()
}

fn res(status: u16, headers: &[(&str, &str)], body: &'static str) -> Res {
    support::reply(status, headers, body)
}

fn connection_refused() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "inner is down")
}

#[tokio::test]
async fn poll_ready_is_pending_while_the_inner_service_is_not_ready() {
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(LongRunningLayer::new());
    handle.allow(0);

    assert_pending!(svc.poll_ready());
    handle.allow(1);
    assert!(
        svc.is_woken(),
        "the inner service's wake-up reaches the caller"
    );
    assert_ready_ok!(svc.poll_ready());
}

#[tokio::test]
async fn an_inner_poll_ready_error_becomes_a_service_error_with_its_source() {
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(LongRunningLayer::new());
    handle.send_error(connection_refused());

    let err: Error = assert_ready_err!(svc.poll_ready());
    assert_eq!(err.kind(), ErrorKind::Service);
    assert!(err.operation().is_none());
    let source = err.source().expect("the inner error is kept");
    assert_eq!(
        source.downcast_ref::<std::io::Error>().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
}

#[tokio::test]
async fn each_call_is_sent_by_the_service_that_was_driven_ready() {
    // tower-test's mock panics when `call` is used on a clone that was not polled ready: the
    // layer must send with the ready service and keep a fresh clone for the next call.
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(LongRunningLayer::new());
    handle.allow(2);

    assert_ready_ok!(svc.poll_ready());
    let first = tokio::spawn(svc.call(req(Method::GET, "/a")));
    assert_ready_ok!(svc.poll_ready());
    let second = tokio::spawn(svc.call(req(Method::GET, "/b")));

    for (path, body) in [("/a", "A"), ("/b", "B")] {
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.uri().path(), path);
        send.send_response(res(200, &[], body));
    }
    for (task, body) in [(first, "A"), (second, "B")] {
        let response = task.await.unwrap().unwrap();
        assert_eq!(support::text(response).await, body);
    }
}

#[tokio::test]
async fn a_response_that_is_not_long_running_passes_through() {
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(LongRunningLayer::new());

    assert_ready_ok!(svc.poll_ready());
    let task = tokio::spawn(svc.call(req(Method::POST, "/things/a/run")));
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request.method(), Method::POST);
    send.send_response(res(200, &[("x-ms-request-id", "r")], "done"));

    let response = task.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-ms-request-id"], "r");
    assert!(response.extensions().get::<OperationInfo>().is_none());
    assert_eq!(support::text(response).await, "done");
    assert!(handle.poll_request().is_pending(), "nothing else was sent");
}

#[tokio::test]
async fn an_inner_error_on_the_original_request_is_a_service_error() {
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(LongRunningLayer::new());

    assert_ready_ok!(svc.poll_ready());
    let task = tokio::spawn(svc.call(req(Method::PUT, "/things/a")));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_error(connection_refused());

    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service);
    assert!(err.operation().is_none(), "no monitor was known yet");
    assert!(err
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some());
    assert!(
        handle.poll_request().is_pending(),
        "the original request is never repeated"
    );
}

#[tokio::test(start_paused = true)]
async fn the_stored_clone_is_driven_ready_before_each_poll() {
    let (mut svc, mut handle) = mock::spawn_layer::<Req, Res, _>(LongRunningLayer::new());
    handle.allow(1);

    assert_ready_ok!(svc.poll_ready());
    let mut future = task::spawn(svc.call(req(Method::DELETE, "/things/a")));
    assert_pending!(future.poll());
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request.method(), Method::DELETE);
    send.send_response(res(
        202,
        &[
            ("azure-asyncoperation", "http://lro.test/ops/1"),
            ("retry-after", "0"),
        ],
        "",
    ));

    // The allowance is spent: the poll waits for the inner service, however long that takes.
    assert_pending!(future.poll());
    tokio::time::advance(Duration::from_secs(3600)).await;
    assert_pending!(future.poll());
    assert!(
        handle.poll_request().is_pending(),
        "no GET without readiness"
    );

    handle.allow(1);
    assert!(future.is_woken(), "readiness wakes the operation");
    assert_pending!(future.poll());
    let (request, send) = handle.next_request().await.unwrap();
    assert_eq!(request.method(), Method::GET);
    assert_eq!(request.uri().path(), "/ops/1");
    send.send_response(res(200, &[], r#"{"status":"Succeeded"}"#));

    let response = assert_ready_ok!(future.poll());
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.extensions().get::<OperationInfo>().unwrap().polls,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn an_inner_error_on_a_poll_is_retried_then_ends_as_a_service_error() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<Req, Res, _>(LongRunningLayer::new().max_transient_retries(1));

    assert_ready_ok!(svc.poll_ready());
    let task = tokio::spawn(svc.call(req(Method::DELETE, "/things/a")));
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(res(
        202,
        &[
            ("azure-asyncoperation", "http://lro.test/ops/1"),
            ("retry-after", "0"),
        ],
        "",
    ));
    for _ in 0..2 {
        let (request, send) = handle.next_request().await.unwrap();
        assert_eq!(request.uri().path(), "/ops/1");
        send.send_error(connection_refused());
    }

    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service);
    let op = err.operation().expect("the monitor was known");
    assert_eq!(op.polls, 2, "the poll and its one retry");
    assert_eq!(op.monitor, "azure-async-operation");
    assert!(handle.poll_request().is_pending());
}

#[tokio::test(start_paused = true)]
async fn layers_below_see_every_poll_and_layers_above_see_one_call() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let above = Arc::new(AtomicUsize::new(0));
    let below = Arc::new(AtomicUsize::new(0));
    let (mock, mut handle) = mock::pair::<Req, Res>();
    let (a, b) = (above.clone(), below.clone());
    let svc = ServiceBuilder::new()
        .map_request(move |r: Req| {
            a.fetch_add(1, Ordering::SeqCst);
            r
        })
        .layer(LongRunningLayer::new())
        .map_request(move |r: Req| {
            b.fetch_add(1, Ordering::SeqCst);
            r
        })
        .service(mock);

    let task = tokio::spawn(svc.oneshot(req(Method::POST, "/things/a/run")));
    let answers = [
        res(
            202,
            &[("operation-location", "/ops/1"), ("retry-after", "2")],
            "",
        ),
        res(200, &[("retry-after", "2")], r#"{"status":"Running"}"#),
        res(200, &[], r#"{"status":"Succeeded"}"#),
    ];
    for answer in answers {
        let (_, send) = handle.next_request().await.unwrap();
        send.send_response(answer);
    }

    let response = task.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(above.load(Ordering::SeqCst), 1);
    assert_eq!(below.load(Ordering::SeqCst), 3);
}

/// A service that is not `Clone`: the crate documents putting a `Buffer` below the layer.
struct NotClone(support::HttpClient);

impl Service<Req> for NotClone {
    type Response = Response<Incoming>;
    type Error = hyper_util::client::legacy::Error;
    type Future = <support::HttpClient as Service<Req>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.0.call(req)
    }
}

#[tokio::test(start_paused = true)]
async fn a_buffer_below_the_layer_carries_a_whole_operation() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::PUT, "/things/a", Monitor::AzureAsyncOperation)
            .retry_after(RetryAfter::Seconds(3))
            .completes_after_polls(2),
    );
    let svc = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .buffer(1)
        .service(NotClone(support::client()));
    let started = tokio::time::Instant::now();
    let response = svc
        .oneshot(support::request(
            Method::PUT,
            &sim.url("/things/a"),
            r#"{"size":3}"#,
        ))
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let info = response.extensions().get::<OperationInfo>().unwrap();
    assert_eq!(info.polls, 3);
    assert!(info.final_uri.is_some());
    assert_eq!(started.elapsed(), Duration::from_secs(9));
    let trail = support::sim_trail(&sim.requests());
    support::assert_sent_once(&trail, &Method::PUT, "/things/a");
    assert_eq!(trail.len(), 5, "{trail:?}");
}

fn assert_send<T: Send>(_: &T) {}

fn assert_send_type<T: Send>() {}

fn assert_send_sync_static<T: Send + Sync + 'static>() {}

#[tokio::test]
async fn the_response_future_and_body_are_send_and_the_error_is_send_sync_static() {
    assert_send_sync_static::<Error>();
    assert_send_sync_static::<ErrorKind>();
    assert_send_sync_static::<OperationInfo>();

    // Over the real client: its future and `Incoming` are Send, so ours are.
    let mut svc = support::stack(LongRunningLayer::new());
    let future = svc
        .ready()
        .await
        .unwrap()
        .call(support::get("http://127.0.0.1:9/"));
    assert_send(&future);
    assert_send_type::<tower_lro::future::ResponseFuture<support::HttpClient, Full<Bytes>, Incoming>>(
    );
    assert_send_type::<Response<ResponseBody<Incoming>>>();

    // And over a Buffer.
    let mut buffered: LongRunning<_> = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .buffer::<Req>(1)
        .service(support::client());
    let future = buffered
        .ready()
        .await
        .unwrap()
        .call(support::get("http://127.0.0.1:9/"));
    assert_send(&future);

    // A future that can be moved to another task is Send for real: spawn it.
    let spawned = tokio::spawn(async move {
        let _ = future.await;
    });
    spawned.abort();

    // The step and cancel futures too, for every dialect.
    let token = tower_lro::ResumeToken::from_json(
        r#"{"version":2,"dialect":"google","monitor":{"name":"operations/1"},"monitor_url":"http://127.0.0.1:9/v1/operations/1","method":"POST","uri":"http://127.0.0.1:9/v1/x"}"#,
    )
    .unwrap();
    let google = ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(tower_lro::Google::new()))
        .service(support::client());
    assert_send(&google.step(token.clone()));
    assert_send(&google.cancel(token));
    assert_send_sync_static::<tower_lro::Step<Response<ResponseBody<Incoming>>>>();
}
