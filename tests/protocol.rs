//! PROTOCOL.md end to end: each rule of §1–§5 and §7, through the real hyper-util client, against
//! the simulator or a scripted raw loopback server, on tokio's paused clock (waits take no real
//! time and are asserted exactly from server-side arrival times).
//!
//! Every test checks server-side that the original request arrived exactly once and that only
//! GETs followed it.

mod support;

use std::sync::Mutex;
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
use tower_lro::sim::{RetryAfter, Scenario, Simulator};
use tower_lro::{Error, ErrorKind, LongRunningLayer, MonitorKind, OperationInfo, ResponseBody};

type Reply = Response<ResponseBody<Incoming>>;

const RUNNING: &str = r#"{"status":"InProgress"}"#;
const SUCCEEDED: &str = r#"{"status":"Succeeded"}"#;

/// A JSON response with extra headers.
fn json(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Full<Bytes>> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    reply(status, &all, body.to_owned())
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

    assert_eq!(*err.kind(), ErrorKind::Failed);
    assert!(err.is_operation_error());
    assert_eq!(err.code(), Some("QuotaExceeded"));
    assert_eq!(err.message(), Some("out of cores"));
    assert_eq!(err.status(), Some(StatusCode::CREATED));
    assert_eq!(err.body().map(|b| &b[..]), Some(body.as_bytes()));
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::PUT, "/things/a");
    assert_eq!(trail.len(), 1);
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

    assert_eq!(*err.kind(), ErrorKind::Canceled);
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
    assert_eq!(info(&response).monitor, MonitorKind::AsyncOperation);
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

    assert_eq!(info(&response).monitor, MonitorKind::OperationLocation);
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::DELETE, "/things/a");
    assert_eq!(
        trail,
        owned(&[(Method::DELETE, "/things/a"), (Method::GET, "/ol/1")])
    );
}

#[tokio::test(start_paused = true)]
async fn accepted_with_location_polls_the_location_until_it_answers_200() {
    let sim = Simulator::start().await.unwrap();
    let result = r#"{"id":"r","value":42}"#;
    sim.add(
        Scenario::new(Method::POST, "/things/a/export", MonitorKind::Location)
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
    assert_eq!(info(&response).monitor, MonitorKind::Location);
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
        LongRunningLayer::new().follow_created_location(true),
        request(Method::POST, &server.url("/things/a/items"), r#"{"n":1}"#),
    )
    .await
    .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let info = info(&response);
    assert_eq!(info.monitor, MonitorKind::Location);
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
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(Method::PUT, "/things/a", MonitorKind::Resource)
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
    assert_eq!(info.monitor, MonitorKind::Resource);
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
    assert_eq!(info.monitor, MonitorKind::Resource);
    assert_eq!(info.status.as_deref(), Some("Succeeded"));
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
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(Method::DELETE, "/things/a", MonitorKind::AsyncOperation)
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

    assert_eq!(*err.kind(), ErrorKind::TooManyPolls);
    let op = err.operation().unwrap();
    assert_eq!(op.polls, 5);
    assert_eq!(op.status.as_deref(), Some("InProgress"));
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

    assert_eq!(*err.kind(), ErrorKind::TimedOut);
    // Polls at 17, 34 and 51 s; the next one (68 s) would be past the deadline, so it ends at 51 s.
    assert_eq!(started.elapsed(), secs(51));
    assert_eq!(err.operation().unwrap().polls, 3);
    let trail = trail(&server.seen());
    assert_sent_once(&trail, &Method::DELETE, "/things/a");
    assert_eq!(trail.len(), 4);
}
