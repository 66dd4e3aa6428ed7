//! PROTOCOL.md end to end: each rule of §1–§5 and §7, through the real hyper-util client, against
//! the simulator or a scripted raw server on the in-memory network, on tokio's paused clock (waits
//! take no real time and are asserted exactly from server-side arrival times).
//!
//! Every test checks server-side that the original request arrived exactly once and that only
//! GETs followed it.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use support::{
    assert_sent_once, get, info, reply, request, sim_trail, stack, text, trail, ChannelBody,
    RawServer, Seen,
};
use tokio::time::Instant;
use tower::ServiceExt;
use tower_lro::{
    Error, ErrorKind, FinalStateVia, LongRunningLayer, OperationInfo, Polling, ResponseBody,
};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

type Reply = Response<ResponseBody<Incoming>>;

const RUNNING: &str = r#"{"status":"InProgress"}"#;
const SUCCEEDED: &str = r#"{"status":"Succeeded"}"#;

/// A JSON response with extra headers.
fn json(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Full<Bytes>> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    reply(status, &all, body.to_owned())
}

/// The same, with a body fed through a channel that is already complete.
fn channel_json(status: u16, headers: &[(&str, &str)], body: &str) -> Response<ChannelBody> {
    let (tx, channel) = ChannelBody::new();
    if !body.is_empty() {
        tx.send(Bytes::from(body.to_owned())).unwrap();
    }
    let mut response = Response::new(channel);
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in std::iter::once(&("content-type", "application/json")).chain(headers) {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

/// The time between consecutive requests.
fn gaps(at: impl IntoIterator<Item = Instant>) -> Vec<Duration> {
    let at: Vec<_> = at.into_iter().collect();
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

fn seen_gaps(seen: &[Seen]) -> Vec<Duration> {
    gaps(seen.iter().map(|s| s.at))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

fn owned(trail: &[(Method, &str)]) -> Vec<(Method, String)> {
    trail
        .iter()
        .map(|(m, p)| (m.clone(), (*p).to_owned()))
        .collect()
}

async fn send(layer: LongRunningLayer, req: Request<Full<Bytes>>) -> Result<Reply, Error> {
    stack(layer).oneshot(req).await
}

/// `DELETE /things/a` → 202 `Azure-AsyncOperation: /ops/1` with `Retry-After: 0`; the monitor
/// answers with `poll(n)` for its n-th poll (from 1).
async fn status_monitor(
    poll: impl Fn(usize) -> Response<Full<Bytes>> + Send + Sync + 'static,
) -> (Result<Reply, Error>, RawServer) {
    let server = RawServer::start(move |n, _| match n {
        0 => json(
            202,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "0")],
            "",
        ),
        n => poll(n),
    })
    .await;
    let result = send(
        LongRunningLayer::new(),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await;
    (result, server)
}

// ---------------------------------------------------------------------------------------------
// §1 Is the response long-running?
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn non_2xx_initial_response_is_returned_untouched_and_its_monitor_headers_ignored() {
    for code in [400u16, 409, 500, 302] {
        let body = format!(r#"{{"error":{{"code":"E{code}","message":"refused"}}}}"#);
        let answer = body.clone();
        let server = RawServer::start(move |_, _| {
            json(
                code,
                &[
                    ("azure-asyncoperation", "/ops/1"),
                    ("operation-location", "/ops/2"),
                    ("location", "/ops/3"),
                    ("retry-after", "0"),
                    ("x-ms-request-id", "req-1"),
                ],
                &answer,
            )
        })
        .await;
        let response = send(
            LongRunningLayer::new(),
            request(Method::PUT, &server.url("/things/a"), r#"{"x":1}"#),
        )
        .await
        .unwrap();

        assert_eq!(response.status().as_u16(), code);
        assert_eq!(response.headers()["x-ms-request-id"], "req-1");
        assert_eq!(response.headers()["azure-asyncoperation"], "/ops/1");
        assert!(response.extensions().get::<OperationInfo>().is_none());
        assert_eq!(text(response).await, body, "{code}: body intact");
        let trail = trail(&server.seen());
        assert_sent_once(&trail, &Method::PUT, "/things/a");
        assert_eq!(trail.len(), 1, "{code}: nothing was polled");
    }
}

#[tokio::test(start_paused = true)]
async fn initial_200_or_201_with_succeeded_provisioning_state_is_final_and_monitors_never_contacted(
) {
    for code in [200u16, 201] {
        let body = r#"{"id":"a","properties":{"provisioningState":"Succeeded","size":3}}"#;
        let server = RawServer::start(move |_, _| {
            json(
                code,
                &[
                    ("azure-asyncoperation", "/ops/1"),
                    ("operation-location", "/ops/2"),
                    ("location", "/ops/3"),
                    ("retry-after", "0"),
                ],
                body,
            )
        })
        .await;
        let response = send(
            LongRunningLayer::new(),
            request(Method::PUT, &server.url("/things/a"), r#"{"size":3}"#),
        )
        .await
        .unwrap();

        assert_eq!(response.status().as_u16(), code);
        assert_eq!(text(response).await, body);
        let trail = trail(&server.seen());
        assert_sent_once(&trail, &Method::PUT, "/things/a");
        assert_eq!(
            trail.len(),
            1,
            "{code}: stale monitor headers were contacted"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn initial_201_with_failed_provisioning_state_is_a_failed_error_without_polling() {
    let body = r#"{"properties":{"provisioningState":"Failed"},"error":{"code":"QuotaExceeded","message":"out of cores"}}"#;
    let server = RawServer::start(move |_, _| {
        json(
            201,
            &[
                ("azure-asyncoperation", "/ops/1"),
                ("location", "/ops/3"),
                ("retry-after", "0"),
            ],
            body,
        )
    })
    .await;
    let err = send(
        LongRunningLayer::new(),
        request(Method::PUT, &server.url("/things/a"), r#"{"size":3}"#),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.is_operation_error());
    assert_eq!(err.code(), Some("QuotaExceeded"));
    assert_eq!(err.message(), Some("out of cores"));
    assert_eq!(err.status(), Some(StatusCode::CREATED));
    assert_eq!(err.body().map(|b| &b[..]), Some(body.as_bytes()));
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::PUT, "/things/a");
    assert_eq!(trail.len(), 1);
}

/// A 201 that names a monitor but whose body is too large to judge (streamed, no length) is
/// followed by that monitor: the head's verdict stands when its body cannot settle anything.
#[tokio::test(start_paused = true)]
async fn initial_201_with_a_monitor_and_a_body_too_large_to_judge_follows_the_monitor() {
    let padded = format!(r#"{{"pad":"{}"}}"#, "x".repeat(8 * 1024));
    let server = RawServer::start_with_body(move |n, _| {
        let response = match n {
            0 => channel_json(201, &[("azure-asyncoperation", "/ops/1")], &padded),
            1 => channel_json(200, &[], r#"{"status":"Succeeded"}"#),
            _ => channel_json(200, &[], r#"{"id":"a"}"#),
        };
        async move { response }
    })
    .await;
    let response = send(
        LongRunningLayer::new().max_status_body(1024),
        request(Method::PUT, &server.url("/things/a"), r#"{"size":3}"#),
    )
    .await
    .unwrap();

    assert_eq!(info(&response).monitor, "azure-async-operation");
    assert_eq!(text(response).await, r#"{"id":"a"}"#);
    let trail = trail(&server.seen());
    assert_eq!(
        trail,
        owned(&[
            (Method::PUT, "/things/a"),
            (Method::GET, "/ops/1"),
            (Method::GET, "/things/a"),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn initial_200_with_top_level_canceled_state_is_a_canceled_error_without_polling() {
    let server = RawServer::start(|_, _| {
        json(
            200,
            &[("operation-location", "/ops/2"), ("retry-after", "0")],
            r#"{"name":"a","provisioningState":"Canceled"}"#,
        )
    })
    .await;
    let err = send(
        LongRunningLayer::new(),
        request(Method::PATCH, &server.url("/things/a"), r#"{"size":3}"#),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Canceled);
    assert_eq!(err.status(), Some(StatusCode::OK));
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::PATCH, "/things/a");
    assert_eq!(trail.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn azure_async_operation_wins_over_operation_location_and_location() {
    let server = RawServer::start(|n, seen| match (n, seen.uri.path()) {
        (0, _) => json(
            202,
            &[
                ("location", "/loc/1"),
                ("operation-location", "/ol/1"),
                ("azure-asyncoperation", "/aao/1"),
                ("retry-after", "0"),
            ],
            "",
        ),
        (_, "/aao/1") => json(200, &[], SUCCEEDED),
        _ => json(404, &[], ""),
    })
    .await;
    let response = send(
        LongRunningLayer::new(),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(info(&response).monitor, "azure-async-operation");
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::DELETE, "/things/a");
    assert_eq!(
        trail,
        owned(&[(Method::DELETE, "/things/a"), (Method::GET, "/aao/1")])
    );
}

#[tokio::test(start_paused = true)]
async fn operation_location_wins_over_location() {
    let server = RawServer::start(|n, seen| match (n, seen.uri.path()) {
        (0, _) => json(
            202,
            &[
                ("location", "/loc/1"),
                ("operation-location", "/ol/1"),
                ("retry-after", "0"),
            ],
            "",
        ),
        (_, "/ol/1") => json(200, &[], SUCCEEDED),
        _ => json(404, &[], ""),
    })
    .await;
    let response = send(
        LongRunningLayer::new(),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap();

    assert_eq!(info(&response).monitor, "operation-location");
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::DELETE, "/things/a");
    assert_eq!(
        trail,
        owned(&[(Method::DELETE, "/things/a"), (Method::GET, "/ol/1")])
    );
}

#[tokio::test(start_paused = true)]
async fn accepted_with_location_polls_the_location_until_it_answers_200() {
    let sim = support::simulator().await;
    let result = r#"{"id":"r","value":42}"#;
    sim.add(
        Scenario::new(Method::POST, "/things/a/export", Monitor::Location)
            .retry_after(RetryAfter::Seconds(2))
            .completes_after_polls(2)
            .resource_body(result),
    );
    let response = send(
        LongRunningLayer::new(),
        request(Method::POST, &sim.url("/things/a/export"), r#"{"to":"x"}"#),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(info(&response).monitor, "location");
    assert_eq!(text(response).await, result);
    let trail = sim_trail(&sim.requests());
    assert_sent_once(&trail, &Method::POST, "/things/a/export");
    let poll = (Method::GET, "/operations/1?monitor=true");
    assert_eq!(
        trail,
        owned(&[
            (Method::POST, "/things/a/export"),
            poll.clone(),
            poll.clone(),
            poll
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn created_with_only_location_is_returned_untouched_by_default() {
    let server = RawServer::start(|_, _| {
        json(
            201,
            &[("location", "/things/a/items/1"), ("retry-after", "0")],
            r#"{"id":"1"}"#,
        )
    })
    .await;
    let response = send(
        LongRunningLayer::new(),
        request(Method::POST, &server.url("/things/a/items"), r#"{"n":1}"#),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "/things/a/items/1");
    assert!(response.extensions().get::<OperationInfo>().is_none());
    assert_eq!(text(response).await, r#"{"id":"1"}"#);
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::POST, "/things/a/items");
    assert_eq!(trail.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn created_with_only_location_is_followed_when_the_builder_opts_in() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            201,
            &[("location", "/status/1"), ("retry-after", "1")],
            r#"{"id":"1"}"#,
        ),
        1 => json(202, &[("retry-after", "1")], ""),
        _ => json(200, &[], r#"{"id":"1","ready":true}"#),
    })
    .await;
    let response = send(
        LongRunningLayer::with_dialect(tower_lro::Azure::new().follow_created_location(true)),
        request(Method::POST, &server.url("/things/a/items"), r#"{"n":1}"#),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let info = info(&response);
    assert_eq!(info.monitor, "location");
    assert_eq!(info.polls, 2);
    assert_eq!(text(response).await, r#"{"id":"1","ready":true}"#);
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::POST, "/things/a/items");
    assert_eq!(
        trail,
        owned(&[
            (Method::POST, "/things/a/items"),
            (Method::GET, "/status/1"),
            (Method::GET, "/status/1"),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn put_201_with_running_properties_provisioning_state_polls_the_resource() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::PUT, "/things/a", Monitor::Resource)
            .running_status("Creating")
            .retry_after(RetryAfter::Seconds(3))
            .completes_after_polls(2),
    );
    let url = sim.url("/things/a");
    let response = send(
        LongRunningLayer::new(),
        request(Method::PUT, &url, r#"{"size":3}"#),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let info = info(&response);
    assert_eq!(info.monitor, "resource");
    assert_eq!(info.monitor_url.to_string(), url);
    assert_eq!(info.polls, 3);
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["properties"]["provisioningState"], "Succeeded");
    let trail = sim_trail(&sim.requests());
    assert_sent_once(&trail, &Method::PUT, "/things/a");
    let poll = (Method::GET, "/things/a");
    assert_eq!(
        trail,
        owned(&[(Method::PUT, "/things/a"), poll.clone(), poll.clone(), poll])
    );
}

#[tokio::test(start_paused = true)]
async fn patch_200_with_running_top_level_provisioning_state_polls_the_resource() {
    let done = r#"{"name":"a","provisioningState":"Succeeded","tags":{"k":"v"}}"#;
    let server = RawServer::start(move |n, _| match n {
        0 | 1 => json(
            200,
            &[("retry-after", "2")],
            r#"{"name":"a","provisioningState":"Updating"}"#,
        ),
        _ => json(200, &[], done),
    })
    .await;
    let response = send(
        LongRunningLayer::new(),
        request(
            Method::PATCH,
            &server.url("/things/a"),
            r#"{"tags":{"k":"v"}}"#,
        ),
    )
    .await
    .unwrap();

    let info = info(&response);
    assert_eq!(info.monitor, "resource");
    assert_eq!(info.state.as_deref(), Some("Succeeded"));
    assert_eq!(text(response).await, done);
    let seen = server.seen();
    let trail = trail(&seen);
    assert_sent_once(&trail, &Method::PATCH, "/things/a");
    assert_eq!(
        trail,
        owned(&[
            (Method::PATCH, "/things/a"),
            (Method::GET, "/things/a"),
            (Method::GET, "/things/a"),
        ])
    );
    assert_eq!(seen_gaps(&seen), [secs(2), secs(2)]);
}

#[tokio::test(start_paused = true)]
async fn put_201_with_an_empty_body_is_returned_untouched() {
    let server = RawServer::start(|_, _| reply(201, &[("x-ms-request-id", "r1")], "")).await;
    let response = send(
        LongRunningLayer::new(),
        request(Method::PUT, &server.url("/things/a"), r#"{"size":3}"#),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-ms-request-id"], "r1");
    assert!(response.extensions().get::<OperationInfo>().is_none());
    assert_eq!(text(response).await, "");
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::PUT, "/things/a");
    assert_eq!(trail.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn completed_2xx_without_anything_to_follow_is_returned_untouched() {
    let cases: [(Method, u16, &str); 5] = [
        (Method::PUT, 200, r#"{"id":"a","properties":{"size":3}}"#),
        (Method::PATCH, 201, r#"{"id":"a"}"#),
        (Method::PUT, 204, ""),
        (
            Method::POST,
            200,
            r#"{"properties":{"provisioningState":"Running"}}"#,
        ),
        (Method::DELETE, 204, ""),
    ];
    for (method, code, body) in cases {
        let server = RawServer::start(move |_, _| json(code, &[("retry-after", "0")], body)).await;
        let response = send(
            LongRunningLayer::new(),
            request(method.clone(), &server.url("/things/a"), r#"{"size":3}"#),
        )
        .await
        .unwrap();

        assert_eq!(response.status().as_u16(), code, "{method} {code}");
        assert!(response.extensions().get::<OperationInfo>().is_none());
        assert_eq!(text(response).await, body, "{method} {code}");
        let trail = trail(&server.seen());
        assert_sent_once(&trail, &method, "/things/a");
        assert_eq!(trail.len(), 1, "{method} {code}: nothing was polled");
    }
}

#[tokio::test(start_paused = true)]
async fn accepted_without_anything_to_follow_is_returned_untouched() {
    for method in [Method::POST, Method::DELETE, Method::PUT] {
        let server = RawServer::start(|_, _| {
            json(
                202,
                &[("retry-after", "0"), ("x-ms-request-id", "r2")],
                r#"{"queued":true}"#,
            )
        })
        .await;
        let response = send(
            LongRunningLayer::new(),
            request(method.clone(), &server.url("/things/a"), ""),
        )
        .await
        .unwrap();

        assert_eq!(response.status(), StatusCode::ACCEPTED, "{method}");
        assert_eq!(response.headers()["x-ms-request-id"], "r2");
        assert!(response.extensions().get::<OperationInfo>().is_none());
        assert_eq!(text(response).await, r#"{"queued":true}"#);
        let trail = trail(&server.seen());
        assert_sent_once(&trail, &method, "/things/a");
        assert_eq!(trail.len(), 1, "{method}: nothing was polled");
    }
}

#[tokio::test(start_paused = true)]
async fn sync_200_get_is_streamed_through_before_its_body_is_complete() {
    const PIECE: usize = 64 * 1024;
    const PIECES: usize = 64;
    let (tx, body) = ChannelBody::new();
    let held = Mutex::new(Some(body));
    let server = RawServer::start_with_body(move |_, _| {
        let body = held.lock().unwrap().take().expect("only one request");
        let mut response = Response::new(body);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        async move { response }
    })
    .await;
    let piece = |i: usize| Bytes::from(vec![b'a' + (i % 26) as u8; PIECE]);
    tx.send(piece(0)).unwrap();

    // A status-body limit far below the body: a pass-through response is never limited. A layer
    // that waited for the whole body would never resolve: the paused clock then fires this timeout.
    let mut response = tokio::time::timeout(
        secs(600),
        send(
            LongRunningLayer::new().max_status_body(1024),
            get(&server.url("/big")),
        ),
    )
    .await
    .expect("the response head arrives before the body is complete")
    .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    // The head and the first piece arrived while the server still holds the rest back.
    let first = response
        .body_mut()
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert!(!first.is_empty() && first.iter().all(|&b| b == b'a'));
    for i in 1..PIECES {
        tx.send(piece(i)).unwrap();
    }
    drop(tx);
    let rest = response.into_body().collect().await.unwrap().to_bytes();
    let mut expected = Vec::with_capacity(PIECE * PIECES);
    for i in 0..PIECES {
        expected.extend_from_slice(&piece(i));
    }
    assert_eq!([&first[..], &rest[..]].concat(), expected);
    assert_eq!(trail(&server.seen()), owned(&[(Method::GET, "/big")]));
}

// ---------------------------------------------------------------------------------------------
// §2 Waiting between polls
// ---------------------------------------------------------------------------------------------

/// A `DELETE` followed through `Azure-AsyncOperation` on the simulator, hinting with `hint`,
/// `InProgress` twice then `Succeeded`; returns the gaps between the four requests.
async fn sim_waits(hint: RetryAfter) -> Vec<Duration> {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::DELETE, "/things/a", Monitor::AzureAsyncOperation)
            .retry_after(hint)
            .completes_after_polls(2),
    );
    let started = Instant::now();
    let response = send(
        LongRunningLayer::new(),
        request(Method::DELETE, &sim.url("/things/a"), ""),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let requests = sim.requests();
    let trail = sim_trail(&requests);
    assert_sent_once(&trail, &Method::DELETE, "/things/a");
    assert_eq!(trail.len(), 4, "{trail:?}");
    let gaps = gaps(requests.iter().map(|r| r.at));
    assert_eq!(started.elapsed(), gaps.iter().sum::<Duration>());
    gaps
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_sets_each_wait() {
    assert_eq!(sim_waits(RetryAfter::Seconds(7)).await, [secs(7); 3]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_ms_sets_each_wait_in_milliseconds() {
    assert_eq!(sim_waits(RetryAfter::Millis(250)).await, [ms(250); 3]);
}

#[tokio::test(start_paused = true)]
async fn x_ms_retry_after_ms_sets_each_wait_in_milliseconds() {
    assert_eq!(sim_waits(RetryAfter::XMsMillis(1500)).await, [ms(1500); 3]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_as_an_http_date_waits_until_that_date() {
    // The date has one-second resolution, so the wait is in (19 s, 20 s].
    for gap in sim_waits(RetryAfter::HttpDate(secs(20))).await {
        assert!(gap > secs(18) && gap <= secs(20), "{gap:?}");
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → `Sunday, 06-Nov-94 08:49:37 GMT` (RFC 850).
fn rfc850(imf: &str) -> String {
    let p: Vec<&str> = imf.split(' ').collect();
    let day = match &p[0][..3] {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    };
    format!("{day}, {}-{}-{} {} GMT", p[1], p[2], &p[3][2..], p[4])
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → `Sun Nov  6 08:49:37 1994` (asctime).
fn asctime(imf: &str) -> String {
    let p: Vec<&str> = imf.split(' ').collect();
    let day: u32 = p[1].parse().unwrap();
    format!("{} {} {day:>2} {} {}", &p[0][..3], p[2], p[4], p[3])
}

#[tokio::test(start_paused = true)]
async fn retry_after_dates_in_rfc850_and_asctime_formats_are_understood() {
    let in_secs = |s| httpdate::fmt_http_date(SystemTime::now() + secs(s));
    let server = RawServer::start(move |n, _| match n {
        0 => json(
            202,
            &[
                ("azure-asyncoperation", "/ops/1"),
                ("retry-after", &rfc850(&in_secs(20))),
            ],
            "",
        ),
        1 => json(200, &[("retry-after", &asctime(&in_secs(30)))], RUNNING),
        _ => json(200, &[], SUCCEEDED),
    })
    .await;
    send(
        LongRunningLayer::new(),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap();

    let seen = server.seen();
    assert_sent_once(&trail(&seen), &Method::DELETE, "/things/a");
    let gaps = seen_gaps(&seen);
    assert_eq!(gaps.len(), 2);
    assert!(gaps[0] > secs(18) && gaps[0] <= secs(20), "{gaps:?}");
    assert!(gaps[1] > secs(28) && gaps[1] <= secs(30), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn retry_after_date_in_the_past_or_zero_means_poll_now() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            202,
            &[
                ("azure-asyncoperation", "/ops/1"),
                ("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
            "",
        ),
        1 => json(200, &[("retry-after", "0")], RUNNING),
        _ => json(200, &[], SUCCEEDED),
    })
    .await;
    let started = Instant::now();
    send(
        LongRunningLayer::new(),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap();

    let seen = server.seen();
    assert_sent_once(&trail(&seen), &Method::DELETE, "/things/a");
    assert_eq!(seen_gaps(&seen), [Duration::ZERO, Duration::ZERO]);
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn unparseable_retry_after_is_ignored_and_the_default_delay_doubles() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            202,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "soon")],
            "",
        ),
        1 => json(200, &[("retry-after", "1.5")], RUNNING),
        2 => json(200, &[("retry-after", "-3")], RUNNING),
        _ => json(200, &[], SUCCEEDED),
    })
    .await;
    send(
        LongRunningLayer::new().initial_delay(secs(2)),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap();

    let seen = server.seen();
    assert_sent_once(&trail(&seen), &Method::DELETE, "/things/a");
    assert_eq!(seen_gaps(&seen), [secs(2), secs(4), secs(8)]);
}

#[tokio::test(start_paused = true)]
async fn unparseable_retry_after_ms_falls_through_to_retry_after() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            202,
            &[
                ("azure-asyncoperation", "/ops/1"),
                ("retry-after-ms", "soon"),
                ("x-ms-retry-after-ms", "1e3"),
                ("retry-after", "3"),
            ],
            "",
        ),
        _ => json(200, &[], SUCCEEDED),
    })
    .await;
    send(
        LongRunningLayer::new(),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap();

    let seen = server.seen();
    assert_sent_once(&trail(&seen), &Method::DELETE, "/things/a");
    assert_eq!(seen_gaps(&seen), [secs(3)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_ms_beats_x_ms_retry_after_ms_which_beats_retry_after() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            202,
            &[
                ("azure-asyncoperation", "/ops/1"),
                ("retry-after", "9"),
                ("x-ms-retry-after-ms", "700"),
                ("retry-after-ms", "300"),
            ],
            "",
        ),
        1 => json(
            200,
            &[("retry-after", "9"), ("x-ms-retry-after-ms", "700")],
            RUNNING,
        ),
        2 => json(200, &[("retry-after", "9")], RUNNING),
        _ => json(200, &[], SUCCEEDED),
    })
    .await;
    send(
        LongRunningLayer::new(),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap();

    let seen = server.seen();
    assert_sent_once(&trail(&seen), &Method::DELETE, "/things/a");
    assert_eq!(seen_gaps(&seen), [ms(300), ms(700), secs(9)]);
}

#[tokio::test(start_paused = true)]
async fn only_the_most_recent_responses_hint_counts() {
    // 10 s from the initial response; none on poll 1 (default 1 s, not the older 10 s); 3 s on
    // poll 2; none on poll 3 (the default, grown once: 2 s).
    let server = RawServer::start(|n, _| match n {
        0 => json(
            202,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "10")],
            "",
        ),
        1 | 3 => json(200, &[], RUNNING),
        2 => json(200, &[("retry-after", "3")], RUNNING),
        _ => json(200, &[], SUCCEEDED),
    })
    .await;
    send(
        LongRunningLayer::new().initial_delay(secs(1)),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap();

    let seen = server.seen();
    assert_sent_once(&trail(&seen), &Method::DELETE, "/things/a");
    assert_eq!(seen_gaps(&seen), [secs(10), secs(1), secs(3), secs(2)]);
}

#[tokio::test(start_paused = true)]
async fn min_delay_raises_short_hints() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            202,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after-ms", "50")],
            "",
        ),
        1 => json(200, &[("retry-after", "0")], RUNNING),
        _ => json(200, &[], SUCCEEDED),
    })
    .await;
    send(
        LongRunningLayer::new().min_delay(secs(5)),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap();

    let seen = server.seen();
    assert_sent_once(&trail(&seen), &Method::DELETE, "/things/a");
    assert_eq!(seen_gaps(&seen), [secs(5), secs(5)]);
}

#[tokio::test(start_paused = true)]
async fn max_delay_caps_long_hints_and_the_growing_default() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            202,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "3600")],
            "",
        ),
        1..=3 => json(200, &[], RUNNING),
        _ => json(200, &[], SUCCEEDED),
    })
    .await;
    send(
        LongRunningLayer::new()
            .initial_delay(secs(20))
            .max_delay(secs(30)),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap();

    let seen = server.seen();
    assert_sent_once(&trail(&seen), &Method::DELETE, "/things/a");
    assert_eq!(seen_gaps(&seen), [secs(30), secs(20), secs(30), secs(30)]);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_says_poll_now_forever_is_stopped_by_max_polls() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            202,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "0")],
            "",
        ),
        _ => json(200, &[("retry-after", "0")], RUNNING),
    })
    .await;
    let err = send(
        LongRunningLayer::new().max_polls(5),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::TooManyPolls);
    let op = err.operation().unwrap();
    assert_eq!(op.polls, 5);
    assert_eq!(op.state.as_deref(), Some("InProgress"));
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::DELETE, "/things/a");
    assert_eq!(trail.len(), 6);
}

#[tokio::test(start_paused = true)]
async fn the_operation_timeout_ends_it_instead_of_waiting_past_the_deadline() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            202,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "17")],
            "",
        ),
        _ => json(200, &[("retry-after", "17")], RUNNING),
    })
    .await;
    let started = Instant::now();
    let err = send(
        LongRunningLayer::new().timeout(secs(60)),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::TimedOut);
    // Polls at 17, 34 and 51 s; the next one (68 s) would be past the deadline, so it ends at 51 s.
    assert_eq!(started.elapsed(), secs(51));
    assert_eq!(err.operation().unwrap().polls, 3);
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::DELETE, "/things/a");
    assert_eq!(trail.len(), 4);
}

// ---------------------------------------------------------------------------------------------
// §3 Reading a status
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn terminal_statuses_match_in_any_letter_case() {
    let cases = [
        ("succeeded", Ending::Succeeded, None),
        ("SUCCEEDED", Ending::Succeeded, None),
        ("Cancelled", Ending::Canceled, Some(ErrorKind::Canceled)),
        ("CANCELED", Ending::Canceled, Some(ErrorKind::Canceled)),
        ("cancelled", Ending::Canceled, Some(ErrorKind::Canceled)),
        (
            "FAILED",
            Ending::Failed {
                code: "Boom".into(),
                message: "it broke".into(),
            },
            Some(ErrorKind::Failed),
        ),
    ];
    for (spelling, outcome, error) in cases {
        let sim = support::simulator().await;
        sim.add(
            Scenario::new(Method::DELETE, "/things/a", Monitor::AzureAsyncOperation)
                .terminal_status(spelling)
                .ending(outcome)
                .completes_after_polls(1),
        );
        let result = send(
            LongRunningLayer::new(),
            request(Method::DELETE, &sim.url("/things/a"), ""),
        )
        .await;
        let op = match (&result, error) {
            (Ok(response), None) => info(response),
            (Err(err), Some(kind)) => {
                assert_eq!(err.kind(), kind, "{spelling}");
                err.operation().unwrap().clone()
            }
            _ => panic!("{spelling}: {result:?}"),
        };
        assert_eq!(op.state.as_deref(), Some(spelling), "kept as spelled");
        assert_eq!(op.polls, 2, "{spelling}");
        let trail = sim_trail(&sim.requests());
        assert_sent_once(&trail, &Method::DELETE, "/things/a");
        assert_eq!(trail.len(), 3, "{spelling}: stopped at the terminal status");
    }
}

#[tokio::test(start_paused = true)]
async fn provider_specific_statuses_mean_still_running() {
    for running in ["Running", "Accepted", "Creating", "NotStarted", "Deleting"] {
        let sim = support::simulator().await;
        sim.add(
            Scenario::new(Method::DELETE, "/things/a", Monitor::OperationLocation)
                .running_status(running)
                .completes_after_polls(3),
        );
        let response = send(
            LongRunningLayer::new(),
            request(Method::DELETE, &sim.url("/things/a"), ""),
        )
        .await
        .unwrap();

        let info = info(&response);
        assert_eq!(info.polls, 4, "{running}");
        assert_eq!(info.state.as_deref(), Some("Succeeded"));
        let trail = sim_trail(&sim.requests());
        assert_sent_once(&trail, &Method::DELETE, "/things/a");
        assert_eq!(trail.len(), 5, "{running}");
    }
}

#[tokio::test(start_paused = true)]
async fn percent_complete_of_the_final_status_is_in_operation_info() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, "/things/a/run", Monitor::AzureAsyncOperation)
            .percent_complete(true)
            .completes_after_polls(3),
    );
    let response = send(
        LongRunningLayer::new(),
        request(Method::POST, &sim.url("/things/a/run"), ""),
    )
    .await
    .unwrap();

    assert_eq!(info(&response).percent_complete, Some(100.0));
    assert_sent_once(&sim_trail(&sim.requests()), &Method::POST, "/things/a/run");
}

#[tokio::test(start_paused = true)]
async fn an_error_keeps_the_last_reported_percent_complete() {
    let (result, server) = status_monitor(|n| match n {
        1 => json(200, &[], r#"{"status":"Running","percentComplete":40}"#),
        2 => json(200, &[], r#"{"status":"Running","percentComplete":75.5}"#),
        _ => json(200, &[], r#"{"status":"Failed"}"#),
    })
    .await;

    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.operation().unwrap().percent_complete, Some(75.5));
    assert_sent_once(&trail(&server.seen()), &Method::DELETE, "/things/a");
}

#[tokio::test(start_paused = true)]
async fn failed_status_is_a_typed_error_with_code_message_status_and_body() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, "/things/a/run", Monitor::AzureAsyncOperation)
            .retry_after(RetryAfter::Seconds(1))
            .completes_after_polls(2)
            .ending(Ending::Failed {
                code: "QuotaExceeded".into(),
                message: "Operation results in exceeding quota limits of Core.".into(),
            }),
    );
    let err = send(
        LongRunningLayer::new(),
        request(Method::POST, &sim.url("/things/a/run"), ""),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.is_operation_error());
    assert_eq!(err.code(), Some("QuotaExceeded"));
    assert_eq!(
        err.message(),
        Some("Operation results in exceeding quota limits of Core.")
    );
    assert_eq!(err.status(), Some(StatusCode::OK));
    let body: serde_json::Value = serde_json::from_slice(err.body().unwrap()).unwrap();
    assert_eq!(body["status"], "Failed");
    assert_eq!(body["error"]["code"], "QuotaExceeded");
    let op = err.operation().unwrap();
    assert_eq!(op.monitor, "azure-async-operation");
    assert_eq!(op.polls, 3);
    assert_eq!(op.state.as_deref(), Some("Failed"));
    let trail = sim_trail(&sim.requests());
    assert_sent_once(&trail, &Method::POST, "/things/a/run");
    assert_eq!(trail.len(), 4, "no final GET after Failed");
}

#[tokio::test(start_paused = true)]
async fn failed_status_without_error_code_takes_the_code_from_x_ms_error_code() {
    let body = r#"{"status":"Failed","error":{"message":"disk full"}}"#;
    let (result, server) = status_monitor(move |_| {
        json(
            200,
            &[("x-ms-error-code", "DiskFull"), ("x-ms-request-id", "q9")],
            body,
        )
    })
    .await;

    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.code(), Some("DiskFull"));
    assert_eq!(err.message(), Some("disk full"));
    assert_eq!(err.body().map(|b| &b[..]), Some(body.as_bytes()));
    assert_eq!(err.headers().unwrap()["x-ms-request-id"], "q9");
    assert_sent_once(&trail(&server.seen()), &Method::DELETE, "/things/a");
}

#[tokio::test(start_paused = true)]
async fn error_code_of_the_status_body_wins_over_x_ms_error_code() {
    let (result, server) = status_monitor(|_| {
        json(
            200,
            &[("x-ms-error-code", "FromHeader")],
            r#"{"status":"Failed","error":{"code":"FromBody","message":"m"}}"#,
        )
    })
    .await;

    assert_eq!(result.unwrap_err().code(), Some("FromBody"));
    assert_sent_once(&trail(&server.seen()), &Method::DELETE, "/things/a");
}

/// An empty or blank `error.code` (or message) says nothing: the `x-ms-error-code` header's code
/// is the error's, in a `Failed` or `Canceled` status and in an initial `200`/`201` whose
/// `provisioningState` is `Failed`; `code()` and `message()` are never `Some("")`.
#[tokio::test(start_paused = true)]
async fn an_empty_error_code_leaves_x_ms_error_code_to_speak() {
    let header = ("x-ms-error-code", "FromHeader");
    for (body, kind) in [
        (
            r#"{"status":"Failed","error":{"code":""}}"#,
            ErrorKind::Failed,
        ),
        (
            r#"{"status":"Failed","error":{"code":"  ","message":""}}"#,
            ErrorKind::Failed,
        ),
        (
            r#"{"status":"Canceled","error":{"code":"","message":"stopped"}}"#,
            ErrorKind::Canceled,
        ),
    ] {
        let (result, server) = status_monitor(move |_| json(200, &[header], body)).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind(), kind, "{body}");
        assert_eq!(err.code(), Some("FromHeader"), "{body}");
        assert_ne!(err.message(), Some(""), "{body}");
        assert_eq!(err.body().map(|b| &b[..]), Some(body.as_bytes()));
        assert_sent_once(&trail(&server.seen()), &Method::DELETE, "/things/a");
    }
    let body = r#"{"properties":{"provisioningState":"Failed"},"error":{"code":"","message":"out of cores"}}"#;
    for status in [200u16, 201] {
        let server = RawServer::start(move |_, _| json(status, &[header], body)).await;
        let err = send(
            LongRunningLayer::new(),
            request(Method::PUT, &server.url("/things/a"), r#"{"size":3}"#),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Failed, "{status}");
        assert_eq!(
            (err.code(), err.message()),
            (Some("FromHeader"), Some("out of cores")),
            "{status}"
        );
        let trail = trail(&server.seen());
        assert_sent_once(&trail, &Method::PUT, "/things/a");
        assert_eq!(trail.len(), 1, "{status}: settled by the initial body");
    }
    // Without the header, an empty code is no code at all.
    let (result, _) =
        status_monitor(|_| json(200, &[], r#"{"status":"Failed","error":{"code":""}}"#)).await;
    assert_eq!(result.unwrap_err().code(), None);
}

#[tokio::test(start_paused = true)]
async fn canceled_status_is_a_typed_canceled_error() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::PUT, "/things/a", Monitor::OperationLocation)
            .completes_after_polls(1)
            .ending(Ending::Canceled),
    );
    let err = send(
        LongRunningLayer::new(),
        request(Method::PUT, &sim.url("/things/a"), r#"{"size":3}"#),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Canceled);
    assert!(err.is_operation_error());
    assert_eq!(err.code(), Some("OperationCanceled"));
    assert_eq!(err.message(), Some("the operation was canceled"));
    assert_eq!(err.status(), Some(StatusCode::OK));
    assert_eq!(err.operation().unwrap().monitor, "operation-location");
    let trail = sim_trail(&sim.requests());
    assert_sent_once(&trail, &Method::PUT, "/things/a");
    assert_eq!(trail.len(), 3, "no final GET after Canceled");
}

#[tokio::test(start_paused = true)]
async fn location_monitor_202_is_running_and_its_200_201_or_204_is_returned_untouched() {
    for code in [200u16, 201, 204] {
        let result = r#"{"result":42}"#;
        let server = RawServer::start(move |n, _| match n {
            0 => json(202, &[("location", "/ops/1"), ("retry-after", "1")], ""),
            1 => json(202, &[("retry-after", "1")], r#"{"note":"still going"}"#),
            _ => json(code, &[("x-result", "yes")], result),
        })
        .await;
        let response = send(
            LongRunningLayer::new(),
            request(Method::POST, &server.url("/things/a/run"), ""),
        )
        .await
        .unwrap();

        assert_eq!(response.status().as_u16(), code);
        assert_eq!(response.headers()["x-result"], "yes");
        let info = info(&response);
        assert_eq!(info.monitor, "location");
        assert_eq!(info.polls, 2);
        assert_eq!(info.last_http_status.map(|s| s.as_u16()), Some(code));
        assert_eq!(info.final_uri, None, "{code}: the poll response is final");
        let expected = if code == 204 { "" } else { result };
        assert_eq!(text(response).await, expected);
        let trail = trail(&server.seen());
        assert_sent_once(&trail, &Method::POST, "/things/a/run");
        assert_eq!(
            trail,
            owned(&[
                (Method::POST, "/things/a/run"),
                (Method::GET, "/ops/1"),
                (Method::GET, "/ops/1"),
            ])
        );
    }
}

#[tokio::test(start_paused = true)]
async fn location_monitor_final_body_is_streamed_not_buffered() {
    let (tx, body) = ChannelBody::new();
    let held = Mutex::new(Some(body));
    let server = RawServer::start_with_body(move |n, _| {
        let response = match n {
            0 => channel_json(202, &[("location", "/ops/1"), ("retry-after", "1")], ""),
            _ => {
                let mut response = Response::new(held.lock().unwrap().take().unwrap());
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                response
            }
        };
        async move { response }
    })
    .await;
    tx.send(Bytes::from_static(b"{\"part\":1,")).unwrap();

    let mut response = tokio::time::timeout(
        secs(600),
        send(
            LongRunningLayer::new().max_status_body(4),
            request(Method::POST, &server.url("/things/a/run"), ""),
        ),
    )
    .await
    .expect("the final response arrives before its body is complete")
    .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let first = response.body_mut().frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "{\"part\":1,");
    tx.send(Bytes::from_static(b"\"done\":true}")).unwrap();
    drop(tx);
    assert_eq!(text(response).await, "\"done\":true}");
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::POST, "/things/a/run");
    assert_eq!(trail.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn resource_monitor_202_is_running_and_204_is_final() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            201,
            &[("retry-after", "1")],
            r#"{"properties":{"provisioningState":"Accepted"}}"#,
        ),
        1 => json(202, &[("retry-after", "1")], ""),
        2 => json(
            200,
            &[("retry-after", "1")],
            r#"{"properties":{"provisioningState":"Running"}}"#,
        ),
        _ => reply(204, &[("x-final", "1")], ""),
    })
    .await;
    let response = send(
        LongRunningLayer::new(),
        request(Method::PUT, &server.url("/things/a"), r#"{"size":3}"#),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["x-final"], "1");
    let info = info(&response);
    assert_eq!(info.monitor, "resource");
    assert_eq!(info.polls, 3);
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::PUT, "/things/a");
    assert_eq!(trail.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn resource_monitor_body_without_provisioning_state_is_done() {
    let done = r#"{"id":"a","properties":{"size":3}}"#;
    let server = RawServer::start(move |n, _| match n {
        0 => json(
            200,
            &[("retry-after", "1")],
            r#"{"properties":{"provisioningState":"Updating"}}"#,
        ),
        _ => json(200, &[], done),
    })
    .await;
    let response = send(
        LongRunningLayer::new(),
        request(Method::PUT, &server.url("/things/a"), r#"{"size":3}"#),
    )
    .await
    .unwrap();

    assert_eq!(info(&response).polls, 1);
    assert_eq!(text(response).await, done);
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::PUT, "/things/a");
    assert_eq!(trail.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn resource_monitor_failed_or_canceled_state_is_a_typed_error() {
    let cases = [
        (
            Ending::Failed {
                code: "Conflict".into(),
                message: "name taken".into(),
            },
            ErrorKind::Failed,
            "Conflict",
        ),
        (Ending::Canceled, ErrorKind::Canceled, "OperationCanceled"),
    ];
    for (outcome, kind, code) in cases {
        let sim = support::simulator().await;
        sim.add(
            Scenario::new(Method::PUT, "/things/a", Monitor::Resource)
                .running_status("Provisioning")
                .completes_after_polls(1)
                .ending(outcome),
        );
        let err = send(
            LongRunningLayer::new(),
            request(Method::PUT, &sim.url("/things/a"), r#"{"size":3}"#),
        )
        .await
        .unwrap_err();

        assert_eq!(err.kind(), kind);
        assert_eq!(err.code(), Some(code));
        assert_eq!(err.status(), Some(StatusCode::OK));
        let body: serde_json::Value = serde_json::from_slice(err.body().unwrap()).unwrap();
        assert_eq!(body["error"]["code"], code);
        let op = err.operation().unwrap();
        assert_eq!(op.monitor, "resource");
        assert_eq!(op.polls, 2);
        let trail = sim_trail(&sim.requests());
        assert_sent_once(&trail, &Method::PUT, "/things/a");
        assert_eq!(trail.len(), 3);
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_monitor_header_in_a_poll_response_replaces_the_url() {
    for kind in [
        Monitor::AzureAsyncOperation,
        Monitor::OperationLocation,
        Monitor::Location,
    ] {
        let sim = support::simulator().await;
        sim.add(
            Scenario::new(Method::DELETE, "/things/a", kind)
                .moves_monitor(true)
                .completes_after_polls(2),
        );
        let response = send(
            LongRunningLayer::new(),
            request(Method::DELETE, &sim.url("/things/a"), ""),
        )
        .await
        .unwrap();

        let info = info(&response);
        assert_eq!(info.monitor, kind.as_str());
        assert_eq!(info.monitor_url.path(), "/operations/1-moved", "{kind:?}");
        let trail = sim_trail(&sim.requests());
        assert_sent_once(&trail, &Method::DELETE, "/things/a");
        let paths: Vec<_> = trail
            .iter()
            .map(|(_, p)| p.split('?').next().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/things/a",
                "/operations/1",
                "/operations/1-moved",
                "/operations/1-moved"
            ],
            "{kind:?}"
        );
    }
}

/// RFC 9110 §10.2.2: a relative reference resolves against the target URI of the request it
/// answered — the initial response's against the original URI, a poll response's against the URL
/// that was polled.
#[tokio::test(start_paused = true)]
async fn a_relative_moved_monitor_resolves_against_the_url_that_was_polled() {
    let server = RawServer::start(|n, seen| match (n, seen.uri.path()) {
        (0, _) => json(
            202,
            &[("azure-asyncoperation", "ops/1"), ("retry-after", "0")],
            "",
        ),
        (_, "/subs/1/things/ops/1") => {
            json(200, &[("azure-asyncoperation", "../../ops/2")], RUNNING)
        }
        (_, "/subs/1/ops/2") => json(200, &[], SUCCEEDED),
        _ => json(404, &[], ""),
    })
    .await;
    let response = send(
        LongRunningLayer::new(),
        request(
            Method::DELETE,
            &server.url("/subs/1/things/a?api-version=2024-01-01"),
            "",
        ),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        info(&response).monitor_url.path_and_query().unwrap(),
        "/subs/1/ops/2?api-version=2024-01-01"
    );
    let trail = trail(&server.seen());
    assert_sent_once(
        &trail,
        &Method::DELETE,
        "/subs/1/things/a?api-version=2024-01-01",
    );
    assert_eq!(
        trail,
        owned(&[
            (Method::DELETE, "/subs/1/things/a?api-version=2024-01-01"),
            (Method::GET, "/subs/1/things/ops/1?api-version=2024-01-01"),
            (Method::GET, "/subs/1/ops/2?api-version=2024-01-01"),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn relative_monitor_urls_from_the_simulator_resolve_against_the_original_uri() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::PUT, "/things/a", Monitor::Location)
            .relative_monitor(true)
            .completes_after_polls(1),
    );
    let response = send(
        LongRunningLayer::new(),
        request(
            Method::PUT,
            &sim.url("/things/a?api-version=2024-01-01"),
            r#"{"size":3}"#,
        ),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let monitor = "/operations/1?monitor=true&api-version=2024-01-01";
    assert_eq!(
        info(&response).monitor_url.to_string(),
        sim.url(monitor),
        "an absolute URL on the original origin"
    );
    let trail = sim_trail(&sim.requests());
    assert_sent_once(&trail, &Method::PUT, "/things/a?api-version=2024-01-01");
    assert_eq!(
        trail,
        owned(&[
            (Method::PUT, "/things/a?api-version=2024-01-01"),
            (Method::GET, monitor),
            (Method::GET, monitor),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn relative_references_of_every_form_resolve_against_the_original_uri() {
    let original = "/subs/1/accounts/a?api-version=2016-01-01";
    let cases = [
        (
            "../operations/9?monitor=true",
            "/subs/1/operations/9?monitor=true&api-version=2016-01-01",
        ),
        ("ops/3", "/subs/1/accounts/ops/3?api-version=2016-01-01"),
        ("/ops/2", "/ops/2?api-version=2016-01-01"),
        (
            "./a/status",
            "/subs/1/accounts/a/status?api-version=2016-01-01",
        ),
    ];
    for (reference, expected) in cases {
        let server = RawServer::start(move |n, _| match n {
            0 => json(202, &[("location", reference), ("retry-after", "0")], ""),
            _ => json(200, &[], r#"{"id":"a"}"#),
        })
        .await;
        let response = send(
            LongRunningLayer::new(),
            request(Method::PUT, &server.url(original), r#"{"size":3}"#),
        )
        .await
        .unwrap();

        assert_eq!(response.status(), StatusCode::OK, "{reference}");
        let trail = trail(&server.seen());
        assert_sent_once(&trail, &Method::PUT, original);
        assert_eq!(
            trail,
            owned(&[(Method::PUT, original), (Method::GET, expected)]),
            "{reference}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn api_version_is_added_to_a_monitor_url_that_lacks_it() {
    let server = RawServer::start(|n, seen| {
        let host = seen.headers["host"].to_str().unwrap().to_owned();
        match (n, seen.uri.path()) {
            (0, _) => json(
                201,
                &[
                    ("azure-asyncoperation", &format!("http://{host}/ops/1")),
                    ("retry-after", "0"),
                ],
                r#"{"properties":{"provisioningState":"Accepted"}}"#,
            ),
            (_, "/ops/1") => json(200, &[], SUCCEEDED),
            _ => json(200, &[], r#"{"id":"a"}"#),
        }
    })
    .await;
    send(
        LongRunningLayer::new(),
        request(
            Method::PUT,
            &server.url("/things/a?api-version=2024-05-01"),
            r#"{"size":3}"#,
        ),
    )
    .await
    .unwrap();

    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::PUT, "/things/a?api-version=2024-05-01");
    assert_eq!(
        trail,
        owned(&[
            (Method::PUT, "/things/a?api-version=2024-05-01"),
            (Method::GET, "/ops/1?api-version=2024-05-01"),
            (Method::GET, "/things/a?api-version=2024-05-01"),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn a_monitor_url_with_its_own_api_version_keeps_it() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            202,
            &[
                ("operation-location", "/ops/1?api-version=2099-01-01"),
                ("retry-after", "0"),
            ],
            "",
        ),
        _ => json(200, &[], SUCCEEDED),
    })
    .await;
    send(
        LongRunningLayer::new(),
        request(
            Method::DELETE,
            &server.url("/things/a?api-version=2024-05-01"),
            "",
        ),
    )
    .await
    .unwrap();

    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::DELETE, "/things/a?api-version=2024-05-01");
    assert_eq!(
        trail[1],
        (Method::GET, "/ops/1?api-version=2099-01-01".into())
    );
    assert_eq!(trail.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_transient_503_on_a_poll_is_retried_after_its_retry_after() {
    let (result, server) = status_monitor(|n| match n {
        1 => json(503, &[("retry-after", "4")], r#"{"error":{"code":"Busy"}}"#),
        _ => json(200, &[], SUCCEEDED),
    })
    .await;

    let response = result.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(info(&response).polls, 2, "the retry counts as a poll");
    let seen = server.seen();
    let trail = trail(&seen);
    assert_sent_once(&trail, &Method::DELETE, "/things/a");
    assert_eq!(
        trail,
        owned(&[
            (Method::DELETE, "/things/a"),
            (Method::GET, "/ops/1"),
            (Method::GET, "/ops/1"),
        ])
    );
    assert_eq!(seen_gaps(&seen), [Duration::ZERO, secs(4)]);
}

#[tokio::test(start_paused = true)]
async fn a_transient_status_that_outlasts_the_retries_is_unexpected_status() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            202,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "0")],
            "",
        ),
        _ => json(503, &[("retry-after", "1")], r#"{"error":{"code":"Busy"}}"#),
    })
    .await;
    let err = send(
        LongRunningLayer::new().max_transient_retries(2),
        request(Method::DELETE, &server.url("/things/a"), ""),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::UnexpectedStatus);
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(
        err.operation().unwrap().polls,
        3,
        "the poll and two retries"
    );
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::DELETE, "/things/a");
    assert_eq!(trail.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_transient_503_on_the_final_get_is_retried() {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            201,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "0")],
            r#"{"properties":{"provisioningState":"Accepted"}}"#,
        ),
        1 => json(200, &[], SUCCEEDED),
        2 => json(503, &[("retry-after", "6")], ""),
        _ => json(200, &[], r#"{"id":"a"}"#),
    })
    .await;
    let response = send(
        LongRunningLayer::new(),
        request(Method::PUT, &server.url("/things/a"), r#"{"size":3}"#),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(text(response).await, r#"{"id":"a"}"#);
    let seen = server.seen();
    let trail = trail(&seen);
    assert_sent_once(&trail, &Method::PUT, "/things/a");
    assert_eq!(
        trail,
        owned(&[
            (Method::PUT, "/things/a"),
            (Method::GET, "/ops/1"),
            (Method::GET, "/things/a"),
            (Method::GET, "/things/a"),
        ])
    );
    assert_eq!(seen_gaps(&seen), [Duration::ZERO, Duration::ZERO, secs(6)]);
}

// ---------------------------------------------------------------------------------------------
// §3/§7 Bad input: typed errors with details, never a panic or a hang
// ---------------------------------------------------------------------------------------------

/// The status monitor's first answer is `body` with `code`: a malformed-status error that keeps
/// the response and knows the operation (one poll of `/ops/1`).
async fn assert_malformed_status(code: u16, body: &'static str) -> Error {
    let (result, server) =
        status_monitor(move |_| json(code, &[("x-ms-request-id", "m1")], body)).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MalformedStatus, "{body:?}: {err:?}");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(code));
    assert_eq!(err.headers().unwrap()["x-ms-request-id"], "m1");
    let op = err.operation().expect("the monitor was known");
    assert_eq!(op.polls, 1);
    assert_eq!(op.monitor_url.path(), "/ops/1");
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::DELETE, "/things/a");
    assert_eq!(trail.len(), 2, "stopped at the malformed status");
    err
}

#[tokio::test(start_paused = true)]
async fn invalid_json_status_body_is_malformed_status() {
    let body = r#"{"status":"Succeeded""#;
    let err = assert_malformed_status(200, body).await;
    assert_eq!(err.body().map(|b| &b[..]), Some(body.as_bytes()));
}

#[tokio::test(start_paused = true)]
async fn status_body_without_status_is_malformed_not_success() {
    let body =
        r#"{"id":"/ops/1","percentComplete":100,"properties":{"provisioningState":"Succeeded"}}"#;
    let err = assert_malformed_status(200, body).await;
    assert_eq!(err.body().map(|b| &b[..]), Some(body.as_bytes()));
}

#[tokio::test(start_paused = true)]
async fn empty_status_body_is_malformed_status() {
    assert_malformed_status(200, "").await;
    assert_malformed_status(202, "").await;
}

#[tokio::test(start_paused = true)]
async fn non_string_status_is_malformed_status() {
    for body in [
        r#"{"status":true}"#,
        r#"{"status":1}"#,
        r#"{"status":null}"#,
        r#"{"status":{"value":"Succeeded"}}"#,
        r#"{"status":""}"#,
        r#"["Succeeded"]"#,
        r#""Succeeded""#,
    ] {
        let err = assert_malformed_status(200, body).await;
        assert_eq!(err.body().map(|b| &b[..]), Some(body.as_bytes()));
    }
}

#[tokio::test(start_paused = true)]
async fn no_content_on_a_status_monitor_is_malformed_status() {
    assert_malformed_status(204, "").await;
}

#[tokio::test(start_paused = true)]
async fn unparseable_monitor_header_is_invalid_monitor_url() {
    for reference in [
        "http://[::1",
        "ftp://127.0.0.1/ops/1",
        "http://user:secret@127.0.0.1/ops/1",
        "javascript:alert(1)",
        "   ",
    ] {
        let server = RawServer::start(move |_, _| {
            json(
                202,
                &[("azure-asyncoperation", reference), ("retry-after", "0")],
                "",
            )
        })
        .await;
        let err = send(
            LongRunningLayer::new(),
            request(Method::POST, &server.url("/things/a/run"), ""),
        )
        .await
        .unwrap_err();

        assert_eq!(err.kind(), ErrorKind::InvalidMonitorUrl, "{reference:?}");
        assert!(err.operation().is_none(), "no monitor was ever known");
        let trail = trail(&server.seen());
        assert_sent_once(&trail, &Method::POST, "/things/a/run");
        assert_eq!(trail.len(), 1, "{reference:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn unparseable_moved_monitor_in_a_poll_is_invalid_monitor_url_with_the_operation() {
    let (result, server) =
        status_monitor(|_| json(200, &[("azure-asyncoperation", "http://[::1")], RUNNING)).await;

    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidMonitorUrl);
    let op = err.operation().unwrap();
    assert_eq!(op.polls, 1);
    assert_eq!(op.monitor_url.path(), "/ops/1");
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::DELETE, "/things/a");
    assert_eq!(trail.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn client_error_on_a_poll_is_unexpected_status_with_status_and_body() {
    for code in [400u16, 401, 404, 410] {
        let body = format!(r#"{{"error":{{"code":"E{code}","message":"nope"}}}}"#);
        let answer = body.clone();
        let (result, server) =
            status_monitor(move |_| json(code, &[("x-ms-request-id", "p1")], &answer)).await;

        let err = result.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnexpectedStatus, "{code}");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(code));
        assert_eq!(err.body().map(|b| &b[..]), Some(body.as_bytes()));
        assert_eq!(err.headers().unwrap()["x-ms-request-id"], "p1");
        let op = err.operation().unwrap();
        assert_eq!(op.polls, 1);
        assert_eq!(op.monitor, "azure-async-operation");
        let trail = trail(&server.seen());
        assert_sent_once(&trail, &Method::DELETE, "/things/a");
        assert_eq!(trail.len(), 2, "{code}: a 4xx is not retried");
    }
}

#[tokio::test(start_paused = true)]
async fn not_found_on_the_final_get_is_unexpected_status() {
    let body = r#"{"error":{"code":"ResourceNotFound","message":"gone"}}"#;
    let server = RawServer::start(move |n, _| match n {
        0 => json(
            201,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "0")],
            r#"{"properties":{"provisioningState":"Accepted"}}"#,
        ),
        1 => json(200, &[], SUCCEEDED),
        _ => json(404, &[], body),
    })
    .await;
    let url = server.url("/things/a");
    let err = send(
        LongRunningLayer::new(),
        request(Method::PUT, &url, r#"{"size":3}"#),
    )
    .await
    .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::UnexpectedStatus);
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(err.body().map(|b| &b[..]), Some(body.as_bytes()));
    let op = err.operation().unwrap();
    assert_eq!(op.polls, 1);
    assert_eq!(op.state.as_deref(), Some("Succeeded"));
    assert_eq!(op.final_uri.as_ref().map(ToString::to_string), Some(url));
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::PUT, "/things/a");
    assert_eq!(
        trail,
        owned(&[
            (Method::PUT, "/things/a"),
            (Method::GET, "/ops/1"),
            (Method::GET, "/things/a"),
        ])
    );
}

// ---------------------------------------------------------------------------------------------
// §4 Which response is final
// ---------------------------------------------------------------------------------------------

/// Runs one operation against a fresh simulator; returns the result and the request trail.
async fn sim_operation(
    scenario: Scenario,
    method: Method,
    path: &str,
    via: Option<FinalStateVia>,
) -> (Result<Reply, Error>, Vec<(Method, String)>, Arc<Simulator>) {
    let sim = support::simulator().await;
    sim.add(scenario.completes_after_polls(1));
    let body = if method == Method::PUT || method == Method::PATCH {
        r#"{"size":3}"#
    } else {
        ""
    };
    let mut req = request(method.clone(), &sim.url(path), body);
    if let Some(via) = via {
        req.extensions_mut().insert(via);
    }
    let result = send(LongRunningLayer::new(), req).await;
    let trail = sim_trail(&sim.requests());
    assert_sent_once(&trail, &method, path);
    (result, trail, sim)
}

fn aao(method: Method, path: &str) -> Scenario {
    Scenario::new(method, path, Monitor::AzureAsyncOperation)
}

fn ol(method: Method, path: &str) -> Scenario {
    Scenario::new(method, path, Monitor::OperationLocation)
}

#[tokio::test(start_paused = true)]
async fn put_and_patch_get_the_original_uri_after_success() {
    for method in [Method::PUT, Method::PATCH] {
        let resource = r#"{"id":"a","properties":{"provisioningState":"Succeeded"}}"#;
        let (result, trail, sim) = sim_operation(
            aao(method.clone(), "/things/a").resource_body(resource),
            method.clone(),
            "/things/a",
            None,
        )
        .await;

        let response = result.unwrap();
        assert_eq!(
            info(&response).final_uri.map(|u| u.to_string()),
            Some(sim.url("/things/a"))
        );
        assert_eq!(text(response).await, resource);
        assert_eq!(
            trail,
            owned(&[
                (method.clone(), "/things/a"),
                (Method::GET, "/operations/1"),
                (Method::GET, "/operations/1"),
                (Method::GET, "/things/a"),
            ])
        );
    }
}

#[tokio::test(start_paused = true)]
async fn put_with_operation_location_gets_the_resource_location() {
    let (result, trail, sim) = sim_operation(
        ol(Method::PUT, "/things/a").resource_location(true),
        Method::PUT,
        "/things/a",
        None,
    )
    .await;

    let response = result.unwrap();
    assert_eq!(
        info(&response).final_uri.map(|u| u.to_string()),
        Some(sim.url("/resources/1"))
    );
    assert_eq!(trail.last(), Some(&(Method::GET, "/resources/1".into())));
    assert_eq!(trail.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn put_with_azure_async_operation_gets_the_original_uri_despite_resource_location() {
    let (result, trail, _sim) = sim_operation(
        aao(Method::PUT, "/things/a").resource_location(true),
        Method::PUT,
        "/things/a",
        None,
    )
    .await;

    assert!(result.is_ok());
    assert_eq!(trail.last(), Some(&(Method::GET, "/things/a".into())));
    assert_eq!(trail.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn post_with_an_initial_location_gets_it() {
    let (result, trail, _sim) = sim_operation(
        aao(Method::POST, "/things/a/run")
            .location_header(true)
            .resource_location(true),
        Method::POST,
        "/things/a/run",
        None,
    )
    .await;

    let response = result.unwrap();
    assert!(info(&response)
        .final_uri
        .is_some_and(|u| u.path() == "/results/1"));
    assert_eq!(trail.last(), Some(&(Method::GET, "/results/1".into())));
    assert_eq!(trail.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn post_with_only_resource_location_gets_it() {
    let (result, trail, _sim) = sim_operation(
        ol(Method::POST, "/things/a/run").resource_location(true),
        Method::POST,
        "/things/a/run",
        None,
    )
    .await;

    assert!(result.is_ok());
    assert_eq!(trail.last(), Some(&(Method::GET, "/resources/1".into())));
    assert_eq!(trail.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn post_without_location_returns_the_last_status_response_byte_for_byte() {
    let last = "{ \"status\" : \"Succeeded\",\n  \"properties\": {\"output\": [1, 2, 3]} }\n";
    let server = RawServer::start(move |n, _| match n {
        0 => json(
            202,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "0")],
            "",
        ),
        1 => json(200, &[("retry-after", "0")], RUNNING),
        _ => json(200, &[("x-ms-request-id", "last"), ("etag", "\"7\"")], last),
    })
    .await;
    let response = send(
        LongRunningLayer::new(),
        request(Method::POST, &server.url("/things/a/run"), ""),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-ms-request-id"], "last");
    assert_eq!(response.headers()["etag"], "\"7\"");
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(info(&response).final_uri, None);
    assert_eq!(text(response).await, last);
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::POST, "/things/a/run");
    assert_eq!(trail.len(), 3, "no final GET");
}

#[tokio::test(start_paused = true)]
async fn delete_returns_the_last_status_response_without_a_final_get() {
    for scenario in [
        aao(Method::DELETE, "/things/a").location_header(true),
        ol(Method::DELETE, "/things/a").resource_location(true),
    ] {
        let (result, trail, _sim) =
            sim_operation(scenario, Method::DELETE, "/things/a", None).await;

        let response = result.unwrap();
        assert_eq!(info(&response).final_uri, None);
        let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
        assert_eq!(body["status"], "Succeeded");
        assert!(
            trail[1..].iter().all(|(_, p)| p == "/operations/1"),
            "{trail:?}"
        );
        assert_eq!(trail.len(), 3);
    }
}

#[tokio::test(start_paused = true)]
async fn final_state_via_azure_async_operation_makes_the_last_status_final_for_a_put() {
    let (result, trail, _sim) = sim_operation(
        aao(Method::PUT, "/things/a").location_header(true),
        Method::PUT,
        "/things/a",
        Some(FinalStateVia::AzureAsyncOperation),
    )
    .await;

    let response = result.unwrap();
    assert_eq!(info(&response).final_uri, None);
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["status"], "Succeeded");
    assert_eq!(trail.len(), 3, "no final GET: {trail:?}");
}

#[tokio::test(start_paused = true)]
async fn final_state_via_operation_location_makes_the_last_status_final_despite_resource_location()
{
    let (result, trail, _sim) = sim_operation(
        ol(Method::PUT, "/things/a").resource_location(true),
        Method::PUT,
        "/things/a",
        Some(FinalStateVia::OperationLocation),
    )
    .await;

    let response = result.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["status"], "Succeeded");
    assert!(body["resourceLocation"].is_string());
    assert_eq!(trail.len(), 3, "no final GET: {trail:?}");
}

#[tokio::test(start_paused = true)]
async fn final_state_via_location_gets_the_initial_location_even_for_put_and_delete() {
    for method in [Method::PUT, Method::DELETE] {
        let (result, trail, _sim) = sim_operation(
            aao(method.clone(), "/things/a").location_header(true),
            method.clone(),
            "/things/a",
            Some(FinalStateVia::Location),
        )
        .await;

        assert!(result.is_ok());
        assert_eq!(
            trail.last(),
            Some(&(Method::GET, "/results/1".into())),
            "{method}"
        );
        assert_eq!(trail.len(), 4);
    }
}

#[tokio::test(start_paused = true)]
async fn final_state_via_location_without_a_location_falls_back_to_the_default() {
    // PUT: the default is the original URI.
    let (result, trail, _sim) = sim_operation(
        aao(Method::PUT, "/things/a"),
        Method::PUT,
        "/things/a",
        Some(FinalStateVia::Location),
    )
    .await;
    assert!(result.is_ok());
    assert_eq!(trail.last(), Some(&(Method::GET, "/things/a".into())));
    assert_eq!(trail.len(), 4);

    // POST without Location or resourceLocation: the default is the last status.
    let (result, trail, _sim) = sim_operation(
        aao(Method::POST, "/things/a/run"),
        Method::POST,
        "/things/a/run",
        Some(FinalStateVia::Location),
    )
    .await;
    assert_eq!(info(&result.unwrap()).final_uri, None);
    assert_eq!(trail.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn final_state_via_original_uri_gets_the_original_uri_for_post_and_delete() {
    for (method, path) in [
        (Method::POST, "/things/a/run"),
        (Method::DELETE, "/things/a"),
    ] {
        let (result, trail, sim) = sim_operation(
            aao(method.clone(), path).location_header(true),
            method.clone(),
            path,
            Some(FinalStateVia::OriginalUri),
        )
        .await;

        let response = result.unwrap();
        assert_eq!(
            info(&response).final_uri.map(|u| u.to_string()),
            Some(sim.url(path))
        );
        assert_eq!(trail.last(), Some(&(Method::GET, path.into())), "{method}");
        assert_eq!(trail.len(), 4);
    }
}

// ---------------------------------------------------------------------------------------------
// §5 Poll and final-GET requests
// ---------------------------------------------------------------------------------------------

/// `PUT /things/a` with `headers` → 201 `Azure-AsyncOperation`; one running poll, `Succeeded`,
/// then the final GET of the original URI. Returns the server once done.
async fn put_with_headers(headers: &[(&str, &str)]) -> RawServer {
    let server = RawServer::start(|n, _| match n {
        0 => json(
            201,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "0")],
            r#"{"properties":{"provisioningState":"Accepted"}}"#,
        ),
        1 => json(200, &[("retry-after", "0")], RUNNING),
        2 => json(200, &[], SUCCEEDED),
        _ => json(200, &[], r#"{"id":"a"}"#),
    })
    .await;
    let mut builder = Request::put(server.url("/things/a"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let req = builder
        .body(Full::new(Bytes::from_static(br#"{"size":3}"#)))
        .unwrap();
    let response = send(LongRunningLayer::new(), req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::PUT, "/things/a");
    assert_eq!(
        trail,
        owned(&[
            (Method::PUT, "/things/a"),
            (Method::GET, "/ops/1"),
            (Method::GET, "/ops/1"),
            (Method::GET, "/things/a"),
        ])
    );
    server
}

#[tokio::test(start_paused = true)]
async fn polls_and_the_final_get_are_bodiless_gets() {
    let server = put_with_headers(&[("content-type", "application/json")]).await;

    assert_eq!(server.body(0).unwrap(), r#"{"size":3}"#);
    for (n, seen) in server.seen().iter().enumerate().skip(1) {
        assert_eq!(seen.method, Method::GET);
        assert_eq!(server.body(n).unwrap(), "", "request {n} has no body");
        assert!(!seen.headers.contains_key("content-length"), "request {n}");
        assert!(
            !seen.headers.contains_key("transfer-encoding"),
            "request {n}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn original_headers_travel_with_every_poll_and_the_final_get() {
    let kept = [
        (
            "x-ms-client-request-id",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
        ),
        ("authorization", "Bearer token-1"),
        ("user-agent", "tower-lro-tests/1"),
        ("accept", "application/json"),
        ("x-custom", "v"),
    ];
    let server = put_with_headers(&kept).await;

    for (n, seen) in server.seen().iter().enumerate() {
        for (name, value) in kept {
            assert_eq!(
                seen.headers.get(name).map(|v| v.to_str().unwrap()),
                Some(value),
                "request {n}: {name}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn payload_conditional_and_host_headers_are_not_sent_with_polls() {
    let dropped = [
        ("content-type", "application/json"),
        ("content-encoding", "identity"),
        ("if-match", "\"etag-1\""),
        ("if-none-match", "*"),
        ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("host", "api.example.test"),
    ];
    let server = put_with_headers(&dropped).await;

    let seen = server.seen();
    // The original request carried them all, so their absence below is the layer's doing.
    for (name, value) in dropped {
        assert_eq!(seen[0].headers[name], value, "original: {name}");
    }
    assert!(seen[0].headers.contains_key("content-length"));
    let own_host = server.addr.to_string();
    for (n, poll) in seen.iter().enumerate().skip(1) {
        for (name, _) in dropped.iter().filter(|(name, _)| *name != "host") {
            assert!(!poll.headers.contains_key(*name), "request {n}: {name}");
        }
        assert!(!poll.headers.contains_key("content-length"), "request {n}");
        assert_eq!(poll.headers["host"], own_host.as_str(), "request {n}");
    }
}

#[tokio::test(start_paused = true)]
async fn polling_disabled_returns_the_accepted_response_untouched() {
    let server = RawServer::start(|_, _| {
        json(
            202,
            &[("azure-asyncoperation", "/ops/1"), ("retry-after", "0")],
            r#"{"accepted":true}"#,
        )
    })
    .await;
    let mut req = request(Method::POST, &server.url("/things/a/run"), "");
    req.extensions_mut().insert(Polling::Disabled);
    let response = send(LongRunningLayer::new(), req).await.unwrap();

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["azure-asyncoperation"], "/ops/1");
    assert!(response.extensions().get::<OperationInfo>().is_none());
    assert_eq!(text(response).await, r#"{"accepted":true}"#);
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::POST, "/things/a/run");
    assert_eq!(trail.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// §7 What the caller can see: OperationInfo
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn operation_info_describes_a_status_monitor_operation() {
    let sim = support::simulator().await;
    sim.add(
        aao(Method::PUT, "/things/a")
            .initial_status(StatusCode::CREATED)
            .initial_body(r#"{"properties":{"provisioningState":"Accepted"}}"#)
            .retry_after(RetryAfter::Seconds(5))
            .completes_after_polls(2),
    );
    let url = sim.url("/things/a?api-version=2024-01-01");
    let started = Instant::now();
    let response = send(
        LongRunningLayer::new(),
        request(Method::PUT, &url, r#"{"size":3}"#),
    )
    .await
    .unwrap();

    let info = info(&response);
    assert_eq!(info.monitor, "azure-async-operation");
    assert_eq!(
        info.monitor_url.to_string(),
        sim.url("/operations/1?api-version=2024-01-01")
    );
    assert_eq!(info.polls, 3);
    assert_eq!(info.elapsed, secs(15));
    assert_eq!(started.elapsed(), secs(15));
    assert_eq!(info.state.as_deref(), Some("Succeeded"));
    assert_eq!(info.last_http_status, Some(StatusCode::OK));
    assert_eq!(info.operation_id.as_deref(), Some("/operations/1"));
    assert_eq!(info.operation_name.as_deref(), Some("1"));
    assert_eq!(info.percent_complete, None);
    assert_eq!(info.final_uri.map(|u| u.to_string()), Some(url));
    let trail = sim_trail(&sim.requests());
    assert_sent_once(&trail, &Method::PUT, "/things/a?api-version=2024-01-01");
    assert_eq!(trail.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn operation_info_describes_a_location_monitor_operation() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::PUT, "/things/a", Monitor::Location)
            .retry_after(RetryAfter::Millis(1500))
            .completes_after_polls(2),
    );
    let response = send(
        LongRunningLayer::new(),
        request(Method::PUT, &sim.url("/things/a"), r#"{"size":3}"#),
    )
    .await
    .unwrap();

    let info = info(&response);
    assert_eq!(info.monitor, "location");
    assert_eq!(
        info.monitor_url.to_string(),
        sim.url("/operations/1?monitor=true")
    );
    assert_eq!(info.polls, 3);
    assert_eq!(info.elapsed, ms(4500));
    assert_eq!(info.state, None, "a Location monitor has no status string");
    assert_eq!(info.last_http_status, Some(StatusCode::OK));
    assert_eq!(info.final_uri, None);
    let trail = sim_trail(&sim.requests());
    assert_sent_once(&trail, &Method::PUT, "/things/a");
    assert_eq!(trail.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn operation_info_describes_a_resource_monitor_operation() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::PATCH, "/things/a", Monitor::Resource)
            .initial_status(StatusCode::OK)
            .running_status("Updating")
            .retry_after(RetryAfter::Seconds(2))
            .completes_after_polls(1),
    );
    let url = sim.url("/things/a");
    let response = send(
        LongRunningLayer::new(),
        request(Method::PATCH, &url, r#"{"size":3}"#),
    )
    .await
    .unwrap();

    let info = info(&response);
    assert_eq!(info.monitor, "resource");
    assert_eq!(info.monitor_url.to_string(), url);
    assert_eq!(info.polls, 2);
    assert_eq!(info.elapsed, secs(4));
    assert_eq!(info.state.as_deref(), Some("Succeeded"));
    assert_eq!(info.last_http_status, Some(StatusCode::OK));
    assert_eq!(info.final_uri, None, "the last resource GET is a poll");
    let trail = sim_trail(&sim.requests());
    assert_sent_once(&trail, &Method::PATCH, "/things/a");
    assert_eq!(trail.len(), 3);
}
/// The final response of a `Location` monitor is returned untouched (§3). Its own `Location`
/// header (a `201 Created` naming the new resource, here on a storage origin) names no next
/// poll: there is none. Only a poll response that is still running can move the monitor.
#[tokio::test(start_paused = true)]
async fn location_monitor_final_201_is_returned_untouched_whatever_its_own_location_says() {
    let created = "https://storage.example.net/accounts/a";
    let server = RawServer::start(move |n, _| match n {
        0 => json(202, &[("location", "/ops/1"), ("retry-after", "1")], ""),
        _ => json(201, &[("location", created)], r#"{"id":"a"}"#),
    })
    .await;
    let result = send(
        LongRunningLayer::new(),
        request(Method::PUT, &server.url("/accounts/a"), r#"{"size":3}"#),
    )
    .await;

    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::PUT, "/accounts/a");
    assert_eq!(
        trail,
        owned(&[(Method::PUT, "/accounts/a"), (Method::GET, "/ops/1")])
    );
    let response = result.expect("the final 201 is the operation's result");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], created);
    assert_eq!(
        info(&response).monitor_url.path(),
        "/ops/1",
        "the monitor polled last"
    );
    assert_eq!(text(response).await, r#"{"id":"a"}"#);
}

/// §3: "Poll bodies that are not needed are drained (bounded) so the connection can be reused."
/// With a wait, and with `Retry-After: 0` (the next poll is due at once, yet the 202's body, well
/// under the limit, must still be drained rather than dropped), one connection serves it all.
#[tokio::test(start_paused = true)]
async fn unneeded_poll_bodies_are_drained_so_one_connection_serves_the_operation() {
    for (size, hint) in [(16 * 1024, "1"), (256 * 1024, "0")] {
        let filler = format!(r#"{{"note":"{}"}}"#, "x".repeat(size));
        let server = RawServer::start(move |n, _| match n {
            0 => json(
                202,
                &[("location", "/ops/1"), ("retry-after", hint)],
                &filler,
            ),
            1..=3 => json(202, &[("retry-after", hint)], &filler),
            _ => json(200, &[], r#"{"id":"a"}"#),
        })
        .await;
        let response = send(
            LongRunningLayer::new(),
            request(Method::POST, &server.url("/things/a/run"), ""),
        )
        .await
        .unwrap();

        assert_eq!(text(response).await, r#"{"id":"a"}"#);
        let trail = trail(&server.seen());
        assert_sent_once(&trail, &Method::POST, "/things/a/run");
        assert_eq!(trail.len(), 5);
        assert_eq!(
            server.connections(),
            1,
            "Retry-After: {hint}: every request reused the connection"
        );
    }
}

/// §3/§6: unneeded poll bodies are drained *bounded*: the layer reads at most
/// `max_status_body` of one, then gives the connection up. Here a 4 MiB 202 body arrives in
/// 16 KiB pieces and the limit is 64 KiB: a bounded drain drops the body (so the next poll
/// needs a new connection); reading it all and reusing the connection means the bound was not
/// applied.
#[tokio::test(start_paused = true)]
async fn an_unneeded_poll_body_is_drained_only_up_to_the_status_body_limit() {
    let server = RawServer::start_with_body(move |n, _| {
        let response = match n {
            0 => channel_json(202, &[("location", "/ops/1"), ("retry-after", "1")], ""),
            1 => {
                let (tx, body) = ChannelBody::new();
                for _ in 0..256 {
                    tx.send(Bytes::from(vec![b'x'; 16 * 1024])).unwrap();
                }
                let mut response = Response::new(body);
                *response.status_mut() = StatusCode::ACCEPTED;
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static("1"),
                );
                response
            }
            _ => channel_json(200, &[], r#"{"id":"a"}"#),
        };
        async move { response }
    })
    .await;
    let response = send(
        LongRunningLayer::new().max_status_body(64 * 1024),
        request(Method::POST, &server.url("/things/a/run"), ""),
    )
    .await
    .unwrap();

    assert_eq!(text(response).await, r#"{"id":"a"}"#);
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::POST, "/things/a/run");
    assert_eq!(trail.len(), 3);
    assert_eq!(
        server.connections(),
        2,
        "the 4 MiB body was read to its end despite the 64 KiB bound"
    );
}
