//! The layer inside real stacks: every combination the README recommends, run end to end against
//! the simulator or a raw server, on the in-memory network and
//! tokio's paused clock; HTTP/2 over real loopback on the real clock.

mod support;

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_ENCODING};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{client, info, reply, request, stack, text, RawServer};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::decompression::DecompressionLayer;
use tower_http::follow_redirect::FollowRedirectLayer;
use tower_http::set_header::SetRequestHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_lro::LongRunningLayer;
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

const VM: &str =
    "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm/start";

async fn vm_sim(polls: u32, retry_after: RetryAfter) -> Arc<Simulator> {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, VM, Monitor::AzureAsyncOperation)
            .retry_after(retry_after)
            .completes_after_polls(polls),
    );
    sim
}

fn post_vm(sim: &Simulator) -> Request<Full<Bytes>> {
    request(
        Method::POST,
        &sim.url(&format!("{VM}?api-version=2016-03-30")),
        "",
    )
}

fn assert_polled(sim: &Simulator, expected_gets: usize) {
    assert_eq!(
        sim.count(&Method::POST, VM),
        1,
        "the initial request is sent once"
    );
    assert_eq!(
        sim.requests()
            .iter()
            .filter(|r| r.method == Method::GET)
            .count(),
        expected_gets
    );
}

#[tokio::test(start_paused = true)]
async fn hyper_util_client_over_http1() {
    let sim = vm_sim(2, RetryAfter::Seconds(1)).await;
    let response = stack(LongRunningLayer::new())
        .oneshot(post_vm(&sim))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(sim.requests().iter().all(|r| r.version == Version::HTTP_11));
    assert_polled(&sim, 3);
}

/// Over real loopback on the real clock, with millisecond hints: hyper-util's HTTP/2 client
/// stalls on its second request under tokio's paused clock even without this layer, so time must
/// really pass here.
#[tokio::test]
async fn hyper_util_client_over_h2c() {
    let sim = vm_sim(2, RetryAfter::Millis(5)).await;
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .service(h2);
    let mut req = post_vm(&sim);
    *req.version_mut() = Version::HTTP_2;
    let response = service.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), Version::HTTP_2);
    assert!(
        sim.requests().iter().all(|r| r.version == Version::HTTP_2),
        "polls keep the request's version"
    );
    assert_polled(&sim, 3);
}

#[tokio::test(start_paused = true)]
async fn tower_http_trace_layer_above_and_below() {
    let sim = vm_sim(2, RetryAfter::Seconds(1)).await;
    let service = ServiceBuilder::new()
        .layer(TraceLayer::new_for_http())
        .layer(LongRunningLayer::new())
        .layer(TraceLayer::new_for_http())
        .service(client());
    let response = service.oneshot(post_vm(&sim)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(text(response).await.contains("Succeeded"));
    assert_polled(&sim, 3);
}

#[tokio::test(start_paused = true)]
async fn set_request_header_below_signs_every_poll() {
    let sim = vm_sim(3, RetryAfter::Seconds(1)).await;
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .layer(SetRequestHeaderLayer::overriding(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer fresh"),
        ))
        .service(client());
    service.oneshot(post_vm(&sim)).await.unwrap();
    let requests = sim.requests();
    assert_eq!(requests.len(), 5);
    assert!(requests
        .iter()
        .all(|r| r.headers[AUTHORIZATION] == "Bearer fresh"));
}

fn gzip(text: &str) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    Bytes::from(encoder.finish().unwrap())
}

#[tokio::test(start_paused = true)]
async fn decompression_below_hands_the_layer_plain_json() {
    let server = RawServer::start(|n, seen| match n {
        0 => reply(
            202,
            &[
                ("azure-asyncoperation", "/operations/1"),
                ("retry-after", "1"),
            ],
            "",
        ),
        _ => {
            assert!(seen.headers["accept-encoding"]
                .to_str()
                .unwrap()
                .contains("gzip"));
            let status = if n < 3 { "InProgress" } else { "Succeeded" };
            let mut response = reply(
                200,
                &[("retry-after", "1")],
                gzip(&format!(r#"{{"status":"{status}"}}"#)),
            );
            response
                .headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            response
        }
    })
    .await;
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .layer(DecompressionLayer::new())
        .service(client());
    let response = service
        .oneshot(request(Method::POST, &server.url("/start"), ""))
        .await
        .unwrap();
    assert_eq!(info(&response).polls, 3);
    assert_eq!(text(response).await, r#"{"status":"Succeeded"}"#);
    assert_eq!(server.count(&Method::POST), 1);
}

#[tokio::test(start_paused = true)]
async fn follow_redirect_below_makes_a_redirecting_monitor_transparent() {
    let server = RawServer::start(|n, seen| match (n, seen.uri.path()) {
        (0, _) => reply(
            202,
            &[
                ("azure-asyncoperation", "/moved-monitor"),
                ("retry-after", "1"),
            ],
            "",
        ),
        (_, "/moved-monitor") => reply(307, &[("location", "/operations/1")], ""),
        (_, "/operations/1") => reply(200, &[], r#"{"status":"Succeeded"}"#),
        _ => reply(404, &[], ""),
    })
    .await;
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .layer(FollowRedirectLayer::new())
        .service(client());
    let response = service
        .oneshot(request(Method::POST, &server.url("/start"), ""))
        .await
        .unwrap();
    assert_eq!(text(response).await, r#"{"status":"Succeeded"}"#);
    let paths: Vec<_> = server
        .seen()
        .iter()
        .map(|s| (s.method.clone(), s.uri.path().to_owned()))
        .collect();
    assert_eq!(
        paths,
        [
            (Method::POST, "/start".into()),
            (Method::GET, "/moved-monitor".into()),
            (Method::GET, "/operations/1".into())
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn tower_timeout_above_bounds_the_whole_operation() {
    let sim = vm_sim(100, RetryAfter::Seconds(10)).await;
    let service = ServiceBuilder::new()
        .timeout(Duration::from_secs(35))
        .layer(LongRunningLayer::new())
        .service(client());
    let started = tokio::time::Instant::now();
    let err = service.oneshot(post_vm(&sim)).await.unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(35));
    // Dropping the operation stopped it: no poll after the timeout.
    let polls = sim.requests().len();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(sim.requests().len(), polls);
    assert_polled(&sim, 3);
}

#[tokio::test(start_paused = true)]
async fn tower_timeout_below_bounds_each_round_trip_and_is_retried() {
    let server = RawServer::start_with(|n, _| async move {
        match n {
            0 => reply(
                202,
                &[
                    ("azure-asyncoperation", "/operations/1"),
                    ("retry-after", "1"),
                ],
                "",
            ),
            // The first poll hangs past the per-request timeout; the retry answers.
            1 => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                reply(200, &[], r#"{"status":"InProgress"}"#)
            }
            _ => reply(200, &[], r#"{"status":"Succeeded"}"#),
        }
    })
    .await;
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .timeout(Duration::from_secs(5))
        .service(client());
    let response = service
        .oneshot(request(Method::POST, &server.url("/start"), ""))
        .await
        .unwrap();
    assert_eq!(text(response).await, r#"{"status":"Succeeded"}"#);
    assert_eq!(server.count(&Method::POST), 1);
    assert_eq!(server.count(&Method::GET), 2);
}

/// A `tower::retry` policy for below the layer: retries 503s, and only of GETs, so the
/// operation's POST is never sent twice.
#[derive(Clone)]
struct RetryGets {
    left: usize,
}

impl<E> tower::retry::Policy<Request<Full<Bytes>>, Response<Incoming>, E> for RetryGets {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<Full<Bytes>>,
        result: &mut Result<Response<Incoming>, E>,
    ) -> Option<Ready<()>> {
        match result {
            Ok(response)
                if response.status() == StatusCode::SERVICE_UNAVAILABLE && self.left > 0 =>
            {
                self.left -= 1;
                Some(ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        if req.method() != Method::GET {
            return None;
        }
        let mut clone = Request::new(Full::default());
        *clone.uri_mut() = req.uri().clone();
        *clone.headers_mut() = req.headers().clone();
        *clone.version_mut() = req.version();
        Some(clone)
    }
}

fn retrying_below() -> tower_lro::LongRunning<tower::retry::Retry<RetryGets, support::HttpClient>> {
    ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .layer(tower::retry::RetryLayer::new(RetryGets { left: 5 }))
        .service(client())
}

#[tokio::test(start_paused = true)]
async fn tower_retry_below_retries_polls_but_never_the_initial_request() {
    let server = RawServer::start(|n, _| match n {
        // The initial POST answers 503 once is *not* retried: it is returned as is.
        0 => reply(
            202,
            &[
                ("azure-asyncoperation", "/operations/1"),
                ("retry-after", "1"),
            ],
            "",
        ),
        1 | 2 => reply(503, &[], ""),
        _ => reply(200, &[], r#"{"status":"Succeeded"}"#),
    })
    .await;
    let service = retrying_below();
    let response = service
        .oneshot(request(Method::POST, &server.url("/start"), ""))
        .await
        .unwrap();
    // The layer saw one poll; the retry layer below made three round trips of it.
    assert_eq!(info(&response).polls, 1);
    assert_eq!(server.count(&Method::POST), 1);
    assert_eq!(server.count(&Method::GET), 3);

    let refused = RawServer::start(|_, _| reply(503, &[], "busy")).await;
    let service = retrying_below();
    let response = service
        .oneshot(request(Method::POST, &refused.url("/start"), ""))
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a non-LRO answer passes through"
    );
    assert_eq!(refused.count(&Method::POST), 1);
}

#[tokio::test(start_paused = true)]
async fn buffer_below_and_above() {
    let sim = vm_sim(2, RetryAfter::Seconds(1)).await;
    let below = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .buffer(1)
        .service(client());
    assert_eq!(
        below.oneshot(post_vm(&sim)).await.unwrap().status(),
        StatusCode::OK
    );
    // Above the layer, `Buffer` runs the operation on its worker task: the future must be Send.
    let above = ServiceBuilder::new()
        .buffer(4)
        .layer(LongRunningLayer::new())
        .service(client());
    assert_eq!(
        above.oneshot(post_vm(&sim)).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(sim.count(&Method::POST, VM), 2);
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_below_interleaves_operations() {
    let sim = vm_sim(3, RetryAfter::Seconds(2)).await;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (now, peak) = (in_flight.clone(), most.clone());
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .concurrency_limit(1)
        .map_future(move |future| {
            let (now, peak) = (now.clone(), peak.clone());
            peak.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            async move {
                let result = future.await;
                now.fetch_sub(1, Ordering::SeqCst);
                result
            }
        })
        .service(client());
    let calls = (0..3).map(|_| service.clone().oneshot(post_vm(&sim)));
    let results = futures_join(calls).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|r| r.status() == StatusCode::OK)));
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "one request at a time below the limit"
    );
    assert_eq!(sim.count(&Method::POST, VM), 3);
    assert_eq!(sim.requests().len(), 3 * 5);
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut outputs = Vec::new();
    for future in set.iter_mut() {
        outputs.push(future.await);
    }
    outputs
}

#[tokio::test(start_paused = true)]
async fn an_axum_handler_calls_a_downstream_operation_through_the_stack() {
    use axum::extract::State;
    use axum::routing::post;
    use axum::Router;

    let sim = vm_sim(2, RetryAfter::Seconds(3)).await;
    let downstream = (
        stack(LongRunningLayer::new()),
        sim.url(&format!("{VM}?api-version=2016-03-30")),
    );
    async fn start_vm(
        State((service, url)): State<(support::Stack, String)>,
    ) -> Result<String, (StatusCode, String)> {
        let response = service
            .oneshot(request(Method::POST, &url, ""))
            .await
            .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
        Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
    }
    let mut app = Router::new()
        .route("/vms/start", post(start_vm))
        .with_state(downstream);
    let call = Request::post("/vms/start")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app
        .call(call)
        .await
        .unwrap_or_else(|e: Infallible| match e {});
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("Succeeded"));
    assert_polled(&sim, 3);
}
