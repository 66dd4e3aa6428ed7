//! A hostile server, over real HTTP on the in-memory network, on tokio's paused clock: everything
//! it sends (URLs, headers, bodies, delays, silence) is untrusted input. Each test ends in the outcome the
//! protocol documents (PROTOCOL §2, §3, §6), and counts the initial request
//! server-side: it is sent exactly once whatever the server does.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use support::{
    client, free_port, full, info, reply, reply_raw, request, stack, text, Generated, RawServer,
    Seen,
};
use tokio::time::Instant;
use tower::retry::{Policy, RetryLayer};
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{CredentialsWithheld, Error, ErrorKind, LongRunningLayer, ResponseBody};

type Outcome = Result<Response<ResponseBody<Incoming>>, Error>;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn status(s: &str) -> String {
    format!(r#"{{"status":"{s}"}}"#)
}

/// The initial 202 naming an `Azure-AsyncOperation` monitor.
fn accepted(monitor: &str, extra: &[(&str, &str)]) -> Response<Full<Bytes>> {
    let mut headers = vec![("azure-asyncoperation", monitor)];
    headers.extend_from_slice(extra);
    reply(202, &headers, "")
}

/// A status-monitor answer.
fn running(extra: &[(&str, &str)]) -> Response<Full<Bytes>> {
    reply(200, extra, status("InProgress"))
}

const NOW: [(&str, &str); 1] = [("retry-after", "0")];

fn post(url: &str) -> Request<Full<Bytes>> {
    request(Method::POST, url, "")
}

async fn call(layer: LongRunningLayer, req: Request<Full<Bytes>>) -> Outcome {
    stack(layer).oneshot(req).await
}

#[track_caller]
fn expect_err(outcome: Outcome) -> Error {
    match outcome {
        Ok(response) => panic!("expected an error, got {response:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn expect_ok(outcome: Outcome) -> Response<ResponseBody<Incoming>> {
    match outcome {
        Ok(response) => response,
        Err(e) => panic!("expected a response, got {e:?}"),
    }
}

fn gets(server: &RawServer) -> Vec<Seen> {
    server
        .seen()
        .into_iter()
        .filter(|s| s.method == Method::GET)
        .collect()
}

/// Time between consecutive requests the server saw.
fn gaps(seen: &[Seen]) -> Vec<Duration> {
    seen.windows(2).map(|w| w[1].at - w[0].at).collect()
}

/// A server script: the initial request's `x-monitor` header names the monitor (so one server
/// can play many cases, its own address included); polls succeed.
fn echo_monitor(_: usize, seen: &Seen) -> Response<Full<Bytes>> {
    match seen.method {
        Method::GET => reply(200, &[], status("Succeeded")),
        _ => {
            let monitor = seen.headers["x-monitor"].to_str().unwrap().to_owned();
            accepted(&monitor, &NOW)
        }
    }
}

/// A POST to `/start` on `server` whose `x-monitor` asks for `monitor`.
fn monitored_post(server: &RawServer, monitor: &str) -> Request<Full<Bytes>> {
    let mut req = post(&server.url("/start"));
    req.headers_mut()
        .insert("x-monitor", http::HeaderValue::from_str(monitor).unwrap());
    req
}

#[track_caller]
fn assert_sent_once(server: &RawServer, method: &Method) {
    assert_eq!(
        server.count(method),
        1,
        "the initial {method} must reach the server exactly once"
    );
}

/// `operation`, failing the test (rather than hanging it) if it is still running after `limit` of
/// paused time: a wait that escaped its clamp would otherwise have tokio auto-advance towards a
/// deadline millions of years away.
async fn within<T>(limit: Duration, operation: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(limit, operation).await {
        Ok(out) => out,
        Err(_) => panic!("still running after {limit:?}"),
    }
}

/// Lets a lot of (paused) time pass, so a poll loop that outlived its future would show up.
async fn much_later() {
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
}

// ---------------------------------------------------------------------------------------------
// §2: waits, poll limit, deadline
// ---------------------------------------------------------------------------------------------

/// "202, Retry-After: 0" for ever, from a status monitor and from a Location monitor: stopped by
/// `max_polls` with `TooManyPolls`, the last status kept in `Error::operation()`.
#[tokio::test(start_paused = true)]
async fn infinite_running_with_retry_after_0_ends_in_too_many_polls() {
    let server = RawServer::start(|n, _| match n {
        0 => accepted("/op", &NOW),
        _ => running(&NOW),
    })
    .await;
    let started = Instant::now();
    let err = expect_err(
        call(
            LongRunningLayer::new().max_polls(5),
            post(&server.url("/start")),
        )
        .await,
    );
    assert_eq!(err.kind(), ErrorKind::TooManyPolls);
    let op = err.operation().expect("the operation so far");
    assert_eq!(op.polls, 5);
    assert_eq!(op.state.as_deref(), Some("InProgress"));
    assert_eq!(gets(&server).len(), 5);
    assert!(gaps(&server.seen()).iter().all(|g| g.is_zero()));
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_sent_once(&server, &Method::POST);

    // The same with a Location monitor that answers 202 for ever.
    let server = RawServer::start(|_, _| reply(202, &[("location", "/op"), NOW[0]], "")).await;
    let err = expect_err(
        call(
            LongRunningLayer::new().max_polls(3),
            request(Method::PUT, &server.url("/thing"), "{}"),
        )
        .await,
    );
    assert_eq!(err.kind(), ErrorKind::TooManyPolls);
    let op = err.operation().unwrap();
    assert_eq!((op.monitor, op.polls), ("location", 3));
    assert_eq!(op.last_http_status, Some(StatusCode::ACCEPTED));
    assert_eq!(gets(&server).len(), 3);
    assert_sent_once(&server, &Method::PUT);
}

/// `Retry-After` of a year, and hints too large for any integer type, wait `max_delay` and no
/// more.
#[tokio::test(start_paused = true)]
async fn retry_after_of_a_year_is_clamped_to_max_delay() {
    let server = RawServer::start(|n, _| match n {
        0 => accepted("/op", &[("retry-after", "31536000")]),
        1 => running(&[("retry-after-ms", "99999999999999999999999999999")]),
        2 => running(&[("retry-after", "18446744073709551616000")]),
        3 => running(&[("x-ms-retry-after-ms", "31536000000")]),
        _ => reply(200, &[], status("Succeeded")),
    })
    .await;
    let hour = Duration::from_secs(3600);
    let operation = call(LongRunningLayer::new(), post(&server.url("/start")));
    let response = expect_ok(within(hour, operation).await);
    assert_eq!(info(&response).polls, 4);
    assert_eq!(
        gaps(&server.seen()),
        [Duration::from_secs(60); 4],
        "every wait is clamped to the default max_delay"
    );

    // A configured ceiling wins the same way.
    let server = RawServer::start(|n, _| match n {
        0 => accepted("/op", &[("retry-after", "31536000")]),
        _ => reply(200, &[], status("Succeeded")),
    })
    .await;
    let layer = LongRunningLayer::new().max_delay(Duration::from_secs(7));
    expect_ok(within(hour, call(layer, post(&server.url("/start")))).await);
    assert_eq!(gaps(&server.seen()), [Duration::from_secs(7)]);
    assert_sent_once(&server, &Method::POST);
}

/// Unparseable hints (words, negatives, fractions, exponents, non-UTF-8 bytes) are ignored: the
/// default delay applies (1 s, doubling); a garbage `retry-after-ms` does not hide a good
/// `Retry-After`.
#[tokio::test(start_paused = true)]
async fn garbage_retry_after_falls_back_to_the_default_delay() {
    let server = RawServer::start_streaming(|n, _| {
        let response = match n {
            0 => reply_raw(
                202,
                &[("azure-asyncoperation", b"/op"), ("retry-after", b"soon")],
                full(""),
            ),
            1 => reply_raw(200, &[("retry-after", b"-5")], full(status("Running"))),
            2 => reply_raw(
                200,
                &[("retry-after", b"\xff\xfe1"), ("retry-after-ms", b"1e3")],
                full(status("Running")),
            ),
            3 => reply_raw(
                200,
                &[("retry-after-ms", b"fast"), ("retry-after", b"3")],
                full(status("Running")),
            ),
            4 => reply_raw(200, &[("retry-after", b"1.5")], full(status("Running"))),
            _ => reply_raw(200, &[], full(status("Succeeded"))),
        };
        async move { response }
    })
    .await;
    let response = expect_ok(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
    assert_eq!(info(&response).polls, 5);
    let secs = |s| Duration::from_secs(s);
    assert_eq!(
        gaps(&server.seen()),
        [secs(1), secs(2), secs(4), secs(3), secs(8)]
    );
    assert_sent_once(&server, &Method::POST);
}

/// An HTTP-date in the past, in each of RFC 9110's three formats, means "poll now"; one in the
/// future is obeyed.
#[tokio::test(start_paused = true)]
async fn http_date_in_the_past_means_poll_now() {
    let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(20));
    let server = RawServer::start(move |n, _| match n {
        0 => accepted("/op", &[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")]),
        1 => running(&[("retry-after", "Sunday, 06-Nov-94 08:49:37 GMT")]),
        2 => running(&[("retry-after", "Sun Nov  6 08:49:37 1994")]),
        3 => running(&[("retry-after", &future)]),
        _ => reply(200, &[], status("Succeeded")),
    })
    .await;
    let response = expect_ok(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
    assert_eq!(info(&response).polls, 4);
    let gaps = gaps(&server.seen());
    assert_eq!(gaps[..3], [Duration::ZERO; 3]);
    assert!(
        (Duration::from_secs(18)..=Duration::from_secs(20)).contains(&gaps[3]),
        "a date 20 s ahead waits about 20 s: {:?}",
        gaps[3]
    );
    assert_sent_once(&server, &Method::POST);
}

// ---------------------------------------------------------------------------------------------
// §6: bodies
// ---------------------------------------------------------------------------------------------

const HUNDRED_MB: u64 = 100 * 1024 * 1024;

/// A 100 MB chunked status body (generated lazily, never in memory) is cut off once it passes
/// `max_status_body`: `StatusBodyTooLarge`, not retried, and the server produced a small fraction
/// of it.
#[tokio::test(start_paused = true)]
async fn a_100_mb_chunked_status_body_is_refused_past_the_limit() {
    let produced = std::sync::Arc::new(std::sync::Mutex::new(None));
    let counter = produced.clone();
    let server = RawServer::start_streaming(move |n, _| {
        let response = match n {
            0 => reply_raw(202, &[("azure-asyncoperation", b"/op")], full("")),
            _ => {
                let body = Generated::new(HUNDRED_MB, b' ');
                *counter.lock().unwrap() = Some(body.counter());
                reply_raw(200, &[], body.boxed_body())
            }
        };
        async move { response }
    })
    .await;
    let err = expect_err(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
    assert_eq!(err.kind(), ErrorKind::StatusBodyTooLarge);
    assert_eq!(err.status(), Some(StatusCode::OK));
    assert_eq!(err.operation().unwrap().polls, 1);
    much_later().await;
    assert_eq!(gets(&server).len(), 1, "a body too large is not retried");
    let produced = produced
        .lock()
        .unwrap()
        .clone()
        .unwrap()
        .load(Ordering::Relaxed);
    assert!(
        produced < 32 * 1024 * 1024,
        "reading stopped near the limit; the server produced {produced} bytes"
    );
    assert_sent_once(&server, &Method::POST);
}

/// The same body declared with `Content-Length: 104857600` is refused before a byte is read:
/// the body stalls after 64 KiB, so a reader would hang until the poll timeout instead.
#[tokio::test(start_paused = true)]
async fn a_100_mb_content_length_status_body_is_refused_before_reading() {
    let server = RawServer::start_streaming(|n, _| {
        let response = match n {
            0 => reply_raw(
                202,
                &[("azure-asyncoperation", b"/op"), ("retry-after", b"0")],
                full(""),
            ),
            _ => {
                let body = Generated::new(HUNDRED_MB, b' ')
                    .with_length()
                    .stall_after(64 * 1024);
                reply_raw(200, &[], body.boxed_body())
            }
        };
        async move { response }
    })
    .await;
    let started = Instant::now();
    let err = expect_err(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
    assert_eq!(err.kind(), ErrorKind::StatusBodyTooLarge);
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "refused on the header alone"
    );
    let headers = err.headers().unwrap();
    assert_eq!(headers["content-length"], HUNDRED_MB.to_string().as_str());
    assert!(err.body().is_none());
    much_later().await;
    assert_eq!(gets(&server).len(), 1);
    assert_sent_once(&server, &Method::POST);
}

/// Final bodies are streamed and never limited: an 8 MiB final response passes a layer whose
/// status-body limit is 1 KiB.
#[tokio::test(start_paused = true)]
async fn final_bodies_are_streamed_not_limited() {
    const EIGHT_MB: u64 = 8 * 1024 * 1024;
    let server = RawServer::start_streaming(|n, _| {
        let response = match n {
            0 => reply_raw(
                202,
                &[("location", b"/result"), ("retry-after", b"1")],
                full(""),
            ),
            _ => reply_raw(200, &[], Generated::new(EIGHT_MB, b'x').boxed_body()),
        };
        async move { response }
    })
    .await;
    let response = expect_ok(
        call(
            LongRunningLayer::new().max_status_body(1024),
            request(Method::PUT, &server.url("/thing"), "{}"),
        )
        .await,
    );
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len() as u64, EIGHT_MB);
    assert_sent_once(&server, &Method::PUT);
}

fn nested(depth: usize, open: &str, close: &str) -> String {
    let mut s = String::with_capacity(depth * (open.len() + close.len()));
    for _ in 0..depth {
        s.push_str(open);
    }
    for _ in 0..depth {
        s.push_str(close);
    }
    s
}

/// JSON nested 100 000 deep, in every place a server could put it: no stack overflow, each a
/// typed outcome. Deep values in members the layer ignores do not hide the `status`; deep values
/// where a string is expected, or as the whole body, are malformed; an unreadable 201 body with no
/// monitor is passed through untouched.
#[tokio::test(start_paused = true)]
async fn json_nested_100k_deep_is_a_typed_outcome() {
    const DEEP: usize = 100_000;
    let arrays = nested(DEEP, "[", "]");
    let objects = nested(DEEP, r#"{"a":"#, "}").replace(r#"{"a":}"#, r#"{"a":1}"#);
    let ignored_then_status = format!(r#"{{"deep":{arrays},"status":"InProgress"}}"#);
    let status_then_ignored = format!(r#"{{"status":"Succeeded","properties":{objects}}}"#);
    let bodies = [ignored_then_status, status_then_ignored];
    let server = RawServer::start(move |n, _| match n {
        0 => accepted("/op", &NOW),
        n => reply(200, &NOW, bodies[(n - 1).min(1)].clone()),
    })
    .await;
    let response = expect_ok(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
    assert_eq!(info(&response).polls, 2);
    assert_eq!(info(&response).state.as_deref(), Some("Succeeded"));
    assert_sent_once(&server, &Method::POST);

    // Deep where a string is expected, as the whole body, or never closed.
    let status_deep = format!(r#"{{"status":{arrays}}}"#);
    let error_deep = format!(r#"{{"status":"Failed","error":{{"code":{arrays}}}}}"#);
    let unclosed = r#"{"a":"#.repeat(DEEP);
    for (body, kind) in [
        (status_deep, ErrorKind::MalformedStatus),
        (arrays.clone(), ErrorKind::MalformedStatus),
        (objects.clone(), ErrorKind::MalformedStatus),
        (unclosed, ErrorKind::MalformedStatus),
        (error_deep, ErrorKind::Failed),
    ] {
        let server = RawServer::start(move |n, _| match n {
            0 => accepted("/op", &NOW),
            _ => reply(200, &[], body.clone()),
        })
        .await;
        let err = expect_err(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
        assert_eq!(err.kind(), kind, "{err:?}");
        if kind == ErrorKind::Failed {
            assert_eq!(err.code(), None, "a non-string code is ignored");
        }
        assert_sent_once(&server, &Method::POST);
    }

    // A deep 201 to a PUT, with no monitor: sniffed, not a resource, returned untouched.
    let body = arrays.clone();
    let server = RawServer::start(move |_, _| reply(201, &[], body.clone())).await;
    let response = expect_ok(
        call(
            LongRunningLayer::new(),
            request(Method::PUT, &server.url("/thing"), "{}"),
        )
        .await,
    );
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(text(response).await, arrays);
    assert_sent_once(&server, &Method::PUT);
}

/// Non-UTF-8 bytes in header values and bodies: a monitor URL that is not UTF-8 is invalid (on
/// the initial response and on a poll), a status body that is not UTF-8 is malformed, an error
/// code header that is not UTF-8 is dropped, and a final body is passed through byte for byte.
#[tokio::test(start_paused = true)]
async fn non_utf8_in_headers_and_bodies() {
    // Monitor URL on the initial response.
    let server = RawServer::start_streaming(|_, _| async {
        reply_raw(202, &[("azure-asyncoperation", b"/op\xff\xfe")], full(""))
    })
    .await;
    let err = expect_err(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
    assert_eq!(err.kind(), ErrorKind::InvalidMonitorUrl);
    assert_eq!(gets(&server).len(), 0);
    assert_sent_once(&server, &Method::POST);

    // Monitor URL moved by a poll response.
    let server = RawServer::start_streaming(|n, _| async move {
        match n {
            0 => reply_raw(
                202,
                &[("azure-asyncoperation", b"/op"), ("retry-after", b"0")],
                full(""),
            ),
            _ => reply_raw(
                200,
                &[("azure-asyncoperation", b"/\xc3\x28")],
                full(status("InProgress")),
            ),
        }
    })
    .await;
    let err = expect_err(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
    assert_eq!(err.kind(), ErrorKind::InvalidMonitorUrl);
    assert_eq!(gets(&server).len(), 1);
    assert_sent_once(&server, &Method::POST);

    // Status bodies.
    for body in [
        &b"{\"status\":\"In\xffProgress\"}"[..],
        b"\xff\xfe\x00{",
        b"{\"status\":\"Succeeded\",\"id\":\"\xed\xa0\x80\"}",
    ] {
        let server = RawServer::start_streaming(move |n, _| async move {
            match n {
                0 => reply_raw(202, &[("azure-asyncoperation", b"/op")], full("")),
                _ => reply_raw(200, &[], full(body)),
            }
        })
        .await;
        let err = expect_err(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
        assert_eq!(err.kind(), ErrorKind::MalformedStatus, "{body:?}");
        assert_eq!(err.body().map(|b| &b[..]), Some(body));
        assert_sent_once(&server, &Method::POST);
    }

    // An error code header that is not UTF-8.
    let server = RawServer::start_streaming(|n, _| async move {
        match n {
            0 => reply_raw(202, &[("azure-asyncoperation", b"/op")], full("")),
            _ => reply_raw(
                200,
                &[("x-ms-error-code", b"Bad\xff")],
                full(status("Failed")),
            ),
        }
    })
    .await;
    let err = expect_err(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.code(), None);
    assert_eq!(
        err.headers().unwrap()["x-ms-error-code"].as_bytes(),
        b"Bad\xff"
    );
    assert_sent_once(&server, &Method::POST);

    // A final body of every byte value, and an obs-text header, untouched.
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let final_body = Bytes::from(every_byte.clone());
    let server = RawServer::start_streaming(move |n, _| {
        let final_body = final_body.clone();
        async move {
            match n {
                0 => reply_raw(
                    202,
                    &[("location", b"/result"), ("retry-after", b"0")],
                    full(""),
                ),
                _ => reply_raw(200, &[("x-note", b"caf\xe9")], full(final_body)),
            }
        }
    })
    .await;
    let response = expect_ok(
        call(
            LongRunningLayer::new(),
            request(Method::PUT, &server.url("/thing"), "{}"),
        )
        .await,
    );
    assert_eq!(response.headers()["x-note"].as_bytes(), b"caf\xe9");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, every_byte);
    assert_sent_once(&server, &Method::PUT);
}

// ---------------------------------------------------------------------------------------------
// §6: monitor URLs and origins
// ---------------------------------------------------------------------------------------------

/// Monitor URLs on another origin (absolute, network-path `//host`, another host name for the same
/// socket, another scheme) are `CrossOrigin`; non-http(s) schemes, userinfo and unresolvable
/// references are `InvalidMonitorUrl`. None of them is ever contacted. `allow_any_origin` widens
/// origins only: the invalid ones stay invalid.
#[tokio::test(start_paused = true)]
async fn forbidden_monitor_urls_are_refused_before_any_poll() {
    let elsewhere = RawServer::start(|_, _| reply(200, &[], status("Succeeded"))).await;
    let server = RawServer::start(echo_monitor).await;
    let (a, b) = (server.addr.port(), elsewhere.addr.port());
    // (reference, kind, still refused under allow_any_origin)
    let cases = [
        (
            format!("http://127.0.0.1:{b}/op"),
            ErrorKind::CrossOrigin,
            false,
        ),
        (format!("//127.0.0.1:{b}/op"), ErrorKind::CrossOrigin, false),
        // Same socket, another host name: another origin.
        (
            format!("http://localhost:{a}/op"),
            ErrorKind::CrossOrigin,
            false,
        ),
        // An upgrade is another origin too.
        (
            format!("https://127.0.0.1:{a}/op"),
            ErrorKind::CrossOrigin,
            false,
        ),
        (
            "file:///etc/passwd".into(),
            ErrorKind::InvalidMonitorUrl,
            true,
        ),
        (
            "ftp://127.0.0.1/op".into(),
            ErrorKind::InvalidMonitorUrl,
            true,
        ),
        (
            "javascript:alert(1)".into(),
            ErrorKind::InvalidMonitorUrl,
            true,
        ),
        (
            "data:text/plain,Succeeded".into(),
            ErrorKind::InvalidMonitorUrl,
            true,
        ),
        (
            format!("http://user:pass@127.0.0.1:{b}/op"),
            ErrorKind::InvalidMonitorUrl,
            true,
        ),
        (
            format!("http://u@127.0.0.1:{a}/op"),
            ErrorKind::InvalidMonitorUrl,
            true,
        ),
        ("http://[::1".into(), ErrorKind::InvalidMonitorUrl, true),
        ("http://".into(), ErrorKind::InvalidMonitorUrl, true),
        (
            "http://127.0.0.1:99999/op".into(),
            ErrorKind::InvalidMonitorUrl,
            true,
        ),
        ("".into(), ErrorKind::InvalidMonitorUrl, true),
    ];
    let mut sent = 0;
    for (reference, kind, still_refused) in &cases {
        let err =
            expect_err(call(LongRunningLayer::new(), monitored_post(&server, reference)).await);
        assert_eq!(err.kind(), *kind, "{reference:?}: {err:?}");
        assert!(err.operation().is_none(), "refused before following");
        sent += 1;
        if *still_refused {
            let layer = LongRunningLayer::new().allow_any_origin();
            let err = expect_err(call(layer, monitored_post(&server, reference)).await);
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidMonitorUrl,
                "{reference:?}: {err:?}"
            );
            sent += 1;
        }
    }
    assert_eq!(server.count(&Method::POST), sent, "one POST per operation");
    assert_eq!(server.count(&Method::GET), 0);
    assert!(elsewhere.seen().is_empty(), "another origin was contacted");

    // A poll response that moves the monitor to another origin is refused the same way.
    let url_b = elsewhere.url("/op");
    let server = RawServer::start(move |n, _| match n {
        0 => accepted("/op", &NOW),
        _ => running(&[("azure-asyncoperation", &url_b), NOW[0]]),
    })
    .await;
    let err = expect_err(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
    assert_eq!(err.kind(), ErrorKind::CrossOrigin);
    assert_eq!(err.operation().unwrap().polls, 1);
    assert!(elsewhere.seen().is_empty());
    assert_sent_once(&server, &Method::POST);
}

/// Below the layer, an https request is carried to the raw server in the clear (a stand-in
/// for TLS), so the layer sees an https operation. A monitor URL on http is a downgrade, refused
/// even when its origin is allowed or any origin is; a relative monitor URL stays https.
#[tokio::test(start_paused = true)]
async fn an_https_operation_never_follows_http() {
    fn plain(mut req: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
        let mut parts = req.uri().clone().into_parts();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        *req.uri_mut() = http::Uri::from_parts(parts).unwrap();
        req
    }
    let server = RawServer::start(echo_monitor).await;
    let https = format!("https://{}/start", server.addr);
    let http_monitor = server.url("/op");
    let layers = [
        LongRunningLayer::new(),
        LongRunningLayer::new().allow_origin(server.url("").parse().unwrap()),
        LongRunningLayer::new().allow_any_origin(),
    ];
    for layer in layers {
        let service = ServiceBuilder::new()
            .layer(layer.clone())
            .map_request(plain)
            .service(client());
        let mut req = post(&https);
        req.headers_mut()
            .insert("x-monitor", http_monitor.parse().unwrap());
        let err = expect_err(service.clone().oneshot(req).await);
        assert_eq!(err.kind(), ErrorKind::CrossOrigin, "{layer:?}: {err:?}");

        let mut req = post(&https);
        req.headers_mut()
            .insert("x-monitor", "/op".parse().unwrap());
        let response = expect_ok(service.oneshot(req).await);
        let monitor = info(&response).monitor_url;
        assert_eq!(monitor.scheme_str(), Some("https"), "{monitor}");
    }
    assert_eq!(server.count(&Method::POST), 6);
    assert_eq!(
        server.count(&Method::GET),
        3,
        "only the relative monitors were polled"
    );
}

#[derive(Clone, Debug)]
struct Marker;

/// A layer below `LongRunningLayer` that shows, as headers, whether a request still carries the
/// caller's extension, and whether the layer marked it as going without the original credentials.
fn mark_extension(mut req: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    if req.extensions().get::<Marker>().is_some() {
        req.headers_mut()
            .insert("x-extension", http::HeaderValue::from_static("present"));
    }
    if req.extensions().get::<CredentialsWithheld>().is_some() {
        req.headers_mut()
            .insert("x-withheld", http::HeaderValue::from_static("yes"));
    }
    req
}

const CREDENTIALS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

fn with_credentials(url: &str) -> Request<Full<Bytes>> {
    let mut req = post(url);
    let h = req.headers_mut();
    h.insert("authorization", "Bearer secret".parse().unwrap());
    h.insert("cookie", "session=secret".parse().unwrap());
    h.insert("proxy-authorization", "Basic c2VjcmV0".parse().unwrap());
    h.insert("x-ms-client-request-id", "req-1".parse().unwrap());
    req.extensions_mut().insert(Marker);
    req
}

/// With another origin allowed (by `allow_origin`, or `allow_any_origin`), A → B → A is followed,
/// but `Authorization`, `Cookie`, `Proxy-Authorization` and the request's extensions never reach
/// B, and do not come back on the later hop to A. Same-origin polls keep them.
#[tokio::test(start_paused = true)]
async fn credentials_never_reach_another_origin_and_never_come_back() {
    let a = RawServer::start(echo_monitor).await;
    let back_to_a = a.url("/op2");
    let b = RawServer::start(move |_, _| running(&[("azure-asyncoperation", &back_to_a), NOW[0]]))
        .await;

    let allow_b = LongRunningLayer::new().allow_origin(b.url("").parse().unwrap());
    for (round, layer) in [allow_b, LongRunningLayer::new().allow_any_origin()]
        .into_iter()
        .enumerate()
    {
        let service = ServiceBuilder::new()
            .layer(layer)
            .map_request(mark_extension)
            .service(client());
        let mut req = with_credentials(&a.url("/start"));
        req.headers_mut()
            .insert("x-monitor", b.url("/op").parse().unwrap());
        let response = expect_ok(service.oneshot(req).await);
        assert_eq!(info(&response).polls, 2);

        let at_a = a.seen();
        let at_b = b.seen();
        assert_eq!(at_b.len(), round + 1);
        assert_eq!(at_a.len(), 2 * (round + 1));
        let (initial, back) = (&at_a[2 * round], &at_a[2 * round + 1]);
        let on_b = &at_b[round];
        assert_eq!(initial.method, Method::POST);
        for name in CREDENTIALS {
            assert!(initial.headers.contains_key(name), "sanity: {name}");
            assert!(!on_b.headers.contains_key(name), "{name} leaked to B");
            assert!(!back.headers.contains_key(name), "{name} came back on A");
        }
        assert!(initial.headers.contains_key("x-extension"));
        assert!(
            !on_b.headers.contains_key("x-extension"),
            "extensions leaked to B"
        );
        assert!(
            !back.headers.contains_key("x-extension"),
            "extensions came back on A"
        );
        assert_eq!(on_b.headers["x-ms-client-request-id"], "req-1");
        assert_eq!(back.headers["x-ms-client-request-id"], "req-1");
        // Layers below are told, so their own credentials can stay home too.
        assert!(!initial.headers.contains_key("x-withheld"));
        assert_eq!(on_b.headers["x-withheld"], "yes");
        assert_eq!(back.headers["x-withheld"], "yes");
        assert_eq!(
            (back.method.clone(), back.uri.path()),
            (Method::GET, "/op2")
        );
    }
    assert_eq!(a.count(&Method::POST), 2);

    // Control: same-origin polls carry credentials and extensions.
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .map_request(mark_extension)
        .service(client());
    let mut req = with_credentials(&a.url("/start"));
    req.headers_mut()
        .insert("x-monitor", "/op".parse().unwrap());
    expect_ok(service.oneshot(req).await);
    let poll = a.seen().pop().unwrap();
    assert_eq!(poll.method, Method::GET);
    for name in CREDENTIALS {
        assert!(
            poll.headers.contains_key(name),
            "{name} dropped on same origin"
        );
    }
    assert!(poll.headers.contains_key("x-extension"));
    assert!(!poll.headers.contains_key("x-withheld"));
}

/// Relative monitor URLs resolve against the original request URI (RFC 3986): relative paths,
/// dot segments (clamped at the root), absolute paths, query-only references, network-path
/// references to the same origin; fragments are dropped and `api-version` is added when missing.
#[tokio::test(start_paused = true)]
async fn relative_monitor_urls_resolve_against_the_original_request() {
    const ORIGINAL: &str = "/subscriptions/s/rg/vm/start?api-version=2020-01-01";
    let server = RawServer::start(echo_monitor).await;
    let port = server.addr.port();
    let cases = [
        (
            "ops/1".to_owned(),
            "/subscriptions/s/rg/vm/ops/1?api-version=2020-01-01",
        ),
        ("/ops/2".to_owned(), "/ops/2?api-version=2020-01-01"),
        (
            "../ops/3".to_owned(),
            "/subscriptions/s/rg/ops/3?api-version=2020-01-01",
        ),
        (
            "../../../../../../../ops/4".to_owned(),
            "/ops/4?api-version=2020-01-01",
        ),
        (
            "?page=5".to_owned(),
            "/subscriptions/s/rg/vm/start?page=5&api-version=2020-01-01",
        ),
        (
            "ops/6?api-version=1999-01-01".to_owned(),
            "/subscriptions/s/rg/vm/ops/6?api-version=1999-01-01",
        ),
        (
            "ops/7#fragment".to_owned(),
            "/subscriptions/s/rg/vm/ops/7?api-version=2020-01-01",
        ),
        (
            "./a/./b/../ops/8".to_owned(),
            "/subscriptions/s/rg/vm/a/ops/8?api-version=2020-01-01",
        ),
        (
            format!("//127.0.0.1:{port}/ops/9"),
            "/ops/9?api-version=2020-01-01",
        ),
        (
            format!("HTTP://127.0.0.1:{port}/ops/10"),
            "/ops/10?api-version=2020-01-01",
        ),
    ];
    for (reference, expected) in &cases {
        let mut req = post(&server.url(ORIGINAL));
        req.headers_mut()
            .insert("x-monitor", reference.parse().unwrap());
        let response = expect_ok(call(LongRunningLayer::new(), req).await);
        let poll = server.seen().pop().unwrap();
        assert_eq!(poll.method, Method::GET);
        assert_eq!(poll.uri.to_string(), *expected, "{reference:?}");
        assert_eq!(
            info(&response)
                .monitor_url
                .path_and_query()
                .unwrap()
                .as_str(),
            *expected
        );
    }
    assert_eq!(server.count(&Method::POST), cases.len());
    assert_eq!(server.count(&Method::GET), cases.len());
}

/// A monitor that keeps pointing at itself, or two that point at each other (A → B → A, across
/// two allowed origins), is bounded by `max_polls`.
#[tokio::test(start_paused = true)]
async fn location_loops_are_bounded_by_max_polls() {
    let server = RawServer::start(|_, seen| {
        let here = seen.uri.path().to_owned();
        match seen.method {
            Method::PUT => reply(202, &[("location", "/loop"), NOW[0]], ""),
            _ => reply(202, &[("location", &here), NOW[0]], ""),
        }
    })
    .await;
    let err = expect_err(
        call(
            LongRunningLayer::new().max_polls(6),
            request(Method::PUT, &server.url("/thing"), "{}"),
        )
        .await,
    );
    assert_eq!(err.kind(), ErrorKind::TooManyPolls);
    assert_eq!(gets(&server).len(), 6);
    assert!(gets(&server).iter().all(|s| s.uri.path() == "/loop"));
    assert_sent_once(&server, &Method::PUT);

    // A → B → A → …, a status monitor moved by every poll response.
    let to_b = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let a = RawServer::start({
        let to_b = to_b.clone();
        move |n, _| match n {
            0 => accepted("/a", &NOW),
            _ => running(&[("azure-asyncoperation", to_b.get().unwrap()), NOW[0]]),
        }
    })
    .await;
    let to_a = a.url("/a");
    let b = RawServer::start(move |_, _| running(&[("azure-asyncoperation", &to_a), NOW[0]])).await;
    to_b.set(b.url("/b")).unwrap();
    let layer = LongRunningLayer::new()
        .max_polls(7)
        .allow_origin(b.url("").parse().unwrap());
    let err = expect_err(call(layer, post(&a.url("/start"))).await);
    assert_eq!(err.kind(), ErrorKind::TooManyPolls);
    assert_eq!(err.operation().unwrap().polls, 7);
    assert_eq!(gets(&a).len(), 4, "A: polls 1, 3, 5, 7");
    assert_eq!(gets(&b).len(), 3, "B: polls 2, 4, 6");
    assert_sent_once(&a, &Method::POST);
}

// ---------------------------------------------------------------------------------------------
// §3: status flapping, transient failures
// ---------------------------------------------------------------------------------------------

/// The first `Succeeded` is final: a monitor that flaps back to `Running` or `Failed` afterwards is
/// never asked again (for a POST, nor for a PUT whose final GET follows).
#[tokio::test(start_paused = true)]
async fn the_first_succeeded_is_final() {
    let script = |n: usize, seen: &Seen| match (seen.method.clone(), seen.uri.path()) {
        (Method::POST | Method::PUT, _) => accepted("/op", &[("retry-after", "1")]),
        (Method::GET, "/op") => match n {
            1 => running(&[("retry-after", "1")]),
            2 => reply(200, &[("retry-after", "1")], status("Succeeded")),
            3 => running(&[("retry-after", "1")]),
            _ => reply(200, &[], status("Failed")),
        },
        _ => reply(
            200,
            &[],
            r#"{"id":"thing","properties":{"provisioningState":"Succeeded"}}"#,
        ),
    };
    let server = RawServer::start(script).await;
    let response = expect_ok(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
    assert_eq!(info(&response).polls, 2);
    assert_eq!(text(response).await, status("Succeeded"));
    much_later().await;
    assert_eq!(gets(&server).len(), 2);
    assert_sent_once(&server, &Method::POST);

    let server = RawServer::start(script).await;
    let response = expect_ok(
        call(
            LongRunningLayer::new(),
            request(Method::PUT, &server.url("/thing"), "{}"),
        )
        .await,
    );
    assert!(text(response).await.contains("\"id\":\"thing\""));
    much_later().await;
    let trail: Vec<_> = gets(&server)
        .iter()
        .map(|s| s.uri.path().to_owned())
        .collect();
    assert_eq!(trail, ["/op", "/op", "/thing"]);
    assert_sent_once(&server, &Method::PUT);
}

/// A connection cut mid-body (with `Content-Length`, and chunked: `Body` errors) or closed before
/// any answer (a `Service` error) is transient: within `max_transient_retries` the operation
/// succeeds; past it, the operation ends with the last failure.
#[tokio::test(start_paused = true)]
async fn a_connection_cut_mid_body_is_retried() {
    let script = |n: usize| {
        let cut = Generated::new(1000, b' ');
        let response = match n {
            0 => reply_raw(202, &[("azure-asyncoperation", b"/op")], full("")),
            1 => reply_raw(200, &[], cut.with_length().fail_after(10).boxed_body()),
            2 => reply_raw(200, &[], cut.fail_after(10).boxed_body()),
            3 => reply_raw(200, &[], cut.fail_before_head().boxed_body()),
            _ => reply_raw(200, &[], full(status("Succeeded"))),
        };
        async move { response }
    };
    let server = RawServer::start_streaming(move |n, _| script(n)).await;
    let response = expect_ok(
        call(
            LongRunningLayer::new().max_transient_retries(3),
            post(&server.url("/start")),
        )
        .await,
    );
    assert_eq!(info(&response).polls, 4);
    assert_sent_once(&server, &Method::POST);

    for (retries, kind) in [(1, ErrorKind::Body), (2, ErrorKind::Service)] {
        let server = RawServer::start_streaming(move |n, _| script(n)).await;
        let err = expect_err(
            call(
                LongRunningLayer::new().max_transient_retries(retries),
                post(&server.url("/start")),
            )
            .await,
        );
        assert_eq!(err.kind(), kind, "{err:?}");
        assert_eq!(err.operation().unwrap().polls, retries + 1);
        much_later().await;
        assert_eq!(gets(&server).len(), retries as usize + 1);
        assert_sent_once(&server, &Method::POST);
    }
}

/// A server that accepts polls and never answers: with `timeout`, the operation ends with
/// `TimedOut` at the deadline; without it, each poll times out after `poll_timeout`, is retried,
/// and after `max_transient_retries` the operation ends with `TimedOut`. An initial request that
/// never answers is bounded by `timeout` too.
#[tokio::test(start_paused = true)]
async fn a_server_that_never_answers() {
    let silent_polls = || {
        RawServer::start_with(|n, _| async move {
            match n {
                0 => accepted("/op", &[("retry-after", "1")]),
                _ => std::future::pending().await,
            }
        })
    };

    let server = silent_polls().await;
    let started = Instant::now();
    let err = expect_err(
        call(
            LongRunningLayer::new().timeout(Duration::from_secs(30)),
            post(&server.url("/start")),
        )
        .await,
    );
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(err.operation().unwrap().polls, 1);
    assert_eq!(gets(&server).len(), 1);
    assert_sent_once(&server, &Method::POST);

    let server = silent_polls().await;
    let started = Instant::now();
    let err = expect_err(
        call(
            LongRunningLayer::new()
                .poll_timeout(Some(Duration::from_secs(5)))
                .max_transient_retries(2),
            post(&server.url("/start")),
        )
        .await,
    );
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(err.operation().unwrap().polls, 3);
    assert_eq!(gets(&server).len(), 3);
    // 1 s, then three 5 s poll timeouts and two jittered backoffs of 0.5–1 s and 1–2 s.
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_millis(17_500)..=Duration::from_secs(19)).contains(&elapsed),
        "{elapsed:?}"
    );
    much_later().await;
    assert_eq!(gets(&server).len(), 3);
    assert_sent_once(&server, &Method::POST);

    // A status body that starts and then stalls is bounded the same way.
    let server = RawServer::start_streaming(|n, _| {
        let response = match n {
            0 => reply_raw(202, &[("azure-asyncoperation", b"/op")], full("")),
            1 => reply_raw(
                200,
                &[],
                Generated::new(1000, b' ').stall_after(5).boxed_body(),
            ),
            _ => reply_raw(200, &[], full(status("Succeeded"))),
        };
        async move { response }
    })
    .await;
    let response = expect_ok(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
    assert_eq!(info(&response).polls, 2);
    assert_sent_once(&server, &Method::POST);

    // The initial request itself never answered.
    let server = RawServer::start_with(|_, _| std::future::pending()).await;
    let err = expect_err(
        call(
            LongRunningLayer::new().timeout(Duration::from_secs(10)),
            post(&server.url("/start")),
        )
        .await,
    );
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(err.operation().is_none());
    much_later().await;
    assert_sent_once(&server, &Method::POST);
}

fn bursts(burst: usize, codes: &'static [u16]) -> impl Fn(usize, &Seen) -> Response<Full<Bytes>> {
    move |n, _| match n {
        0 => accepted("/op", &NOW),
        n if n <= burst => reply(
            codes[(n - 1) % codes.len()],
            &[("retry-after", "2")],
            "busy",
        ),
        _ => reply(200, &[], status("Succeeded")),
    }
}

/// Transient statuses (408, 429, 500, 502, 503, 504) are retried after their `Retry-After`: a
/// burst as long as `max_transient_retries` is ridden out; one longer ends with
/// `UnexpectedStatus` carrying the last status.
#[tokio::test(start_paused = true)]
async fn bursts_of_503_shorter_and_longer_than_the_retry_budget() {
    let layer = LongRunningLayer::new().max_transient_retries(3);
    let server = RawServer::start(bursts(3, &[503])).await;
    let response = expect_ok(call(layer.clone(), post(&server.url("/start"))).await);
    assert_eq!(info(&response).polls, 4);
    let gets = gets(&server);
    assert_eq!(
        gaps(&gets),
        [Duration::from_secs(2); 3],
        "Retry-After of a 503 is obeyed"
    );
    assert_sent_once(&server, &Method::POST);

    let server = RawServer::start(bursts(4, &[503])).await;
    let err = expect_err(call(layer.clone(), post(&server.url("/start"))).await);
    assert_eq!(err.kind(), ErrorKind::UnexpectedStatus);
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(err.operation().unwrap().polls, 4);
    much_later().await;
    assert_eq!(server.count(&Method::GET), 4);
    assert_sent_once(&server, &Method::POST);

    // Every transient status counts the same.
    let server = RawServer::start(bursts(6, &[408, 429, 500, 502, 504, 503])).await;
    let response = expect_ok(
        call(
            LongRunningLayer::new().max_transient_retries(6),
            post(&server.url("/start")),
        )
        .await,
    );
    assert_eq!(info(&response).polls, 7);
    assert_sent_once(&server, &Method::POST);
}

/// A monitor on a port nobody listens on (an allowed origin): connection refused is transient,
/// retried `max_transient_retries` times, then the operation ends with `Service`.
#[tokio::test(start_paused = true)]
async fn connection_refused_on_a_poll_is_retried_then_a_service_error() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let monitor = format!("{dead}/op");
    let server = RawServer::start(move |_, _| accepted(&monitor, &NOW)).await;
    let layer = LongRunningLayer::new()
        .allow_origin(dead.parse().unwrap())
        .max_transient_retries(2);
    let started = Instant::now();
    let err = expect_err(call(layer, post(&server.url("/start"))).await);
    assert_eq!(err.kind(), ErrorKind::Service);
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(err.operation().unwrap().polls, 3);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "backed off between tries"
    );
    assert_eq!(server.count(&Method::GET), 0);
    assert_sent_once(&server, &Method::POST);
}

/// A poll answering a non-transient 4xx (or 501) is final at once: `UnexpectedStatus` with that
/// status and its body, and no retry however long one waits.
#[tokio::test(start_paused = true)]
async fn a_poll_answering_400_is_final_at_once() {
    for code in [400u16, 401, 403, 404, 410, 501] {
        let server = RawServer::start(move |n, _| match n {
            0 => accepted("/op", &NOW),
            _ => reply(code, &[], r#"{"error":{"code":"BadRequest"}}"#),
        })
        .await;
        let err = expect_err(call(LongRunningLayer::new(), post(&server.url("/start"))).await);
        assert_eq!(err.kind(), ErrorKind::UnexpectedStatus);
        assert_eq!(err.status().map(|s| s.as_u16()), Some(code));
        assert_eq!(err.body().unwrap(), r#"{"error":{"code":"BadRequest"}}"#);
        much_later().await;
        assert_eq!(server.count(&Method::GET), 1, "{code} is not retried");
        assert_sent_once(&server, &Method::POST);
    }
}

// ---------------------------------------------------------------------------------------------
// §6: dropping the future; composition with tower layers
// ---------------------------------------------------------------------------------------------

/// Dropping the response future after two polls stops polling at once: however much time
/// passes, the server sees no other request. The same when dropped with a poll in flight.
#[tokio::test(start_paused = true)]
async fn dropping_the_future_stops_polling() {
    let server = RawServer::start(|n, _| match n {
        0 => accepted("/op", &[("retry-after", "1")]),
        _ => running(&[("retry-after", "1")]),
    })
    .await;
    let operation = call(LongRunningLayer::new(), post(&server.url("/start")));
    let cut = tokio::time::timeout(Duration::from_millis(2500), operation).await;
    assert!(cut.is_err(), "the operation was still running");
    assert_eq!(gets(&server).len(), 2);
    much_later().await;
    assert_eq!(
        gets(&server).len(),
        2,
        "polled after the future was dropped"
    );
    assert_sent_once(&server, &Method::POST);

    // Dropped while poll 2 is in flight (the server never answers it).
    let server = RawServer::start_with(|n, _| async move {
        match n {
            0 => accepted("/op", &[("retry-after", "1")]),
            1 => running(&[("retry-after", "1")]),
            _ => std::future::pending().await,
        }
    })
    .await;
    let operation = call(LongRunningLayer::new(), post(&server.url("/start")));
    tokio::select! {
        _ = operation => panic!("the operation cannot finish"),
        _ = tokio::time::sleep(Duration::from_millis(2500)) => {}
    }
    assert_eq!(gets(&server).len(), 2);
    much_later().await;
    assert_eq!(
        gets(&server).len(),
        2,
        "retried after the future was dropped"
    );
    assert_sent_once(&server, &Method::POST);
}

/// `tower::timeout` above the layer bounds the whole operation (and stops its polling).
#[tokio::test(start_paused = true)]
async fn a_timeout_layer_above_bounds_the_whole_operation() {
    let server = RawServer::start(|n, _| match n {
        0 => accepted("/op", &[("retry-after", "1")]),
        _ => running(&[("retry-after", "1")]),
    })
    .await;
    let service = ServiceBuilder::new()
        .timeout(Duration::from_millis(10_500))
        .layer(LongRunningLayer::new())
        .service(client());
    let started = Instant::now();
    let err = service
        .oneshot(post(&server.url("/start")))
        .await
        .unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_millis(10_500));
    assert_eq!(gets(&server).len(), 10);
    much_later().await;
    assert_eq!(gets(&server).len(), 10);
    assert_sent_once(&server, &Method::POST);
}

/// `tower::timeout` below the layer bounds each request: a poll that never answers fails as an
/// inner service error, which is transient, and the next poll succeeds.
#[tokio::test(start_paused = true)]
async fn a_timeout_layer_below_makes_a_stuck_poll_transient() {
    let server = RawServer::start_with(|n, _| async move {
        match n {
            0 => accepted("/op", &NOW),
            1 => std::future::pending().await,
            _ => reply(200, &[], status("Succeeded")),
        }
    })
    .await;
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new().poll_timeout(None))
        .timeout(Duration::from_secs(5))
        .service(client());
    let response = expect_ok(service.oneshot(post(&server.url("/start"))).await);
    assert_eq!(info(&response).polls, 2);
    assert_sent_once(&server, &Method::POST);
}

/// A `tower::retry` policy that only clones GETs and retries 503s.
#[derive(Clone)]
struct RetryGets {
    left: usize,
}

impl<E> Policy<Request<Full<Bytes>>, Response<Incoming>, E> for RetryGets {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<Full<Bytes>>,
        result: &mut Result<Response<Incoming>, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(response)
                if response.status() == StatusCode::SERVICE_UNAVAILABLE && self.left > 0 =>
            {
                self.left -= 1;
                Some(std::future::ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        if req.method() != Method::GET {
            return None;
        }
        let mut clone = Request::new(req.body().clone());
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.version_mut() = req.version();
        *clone.headers_mut() = req.headers().clone();
        *clone.extensions_mut() = req.extensions().clone();
        Some(clone)
    }
}

/// `tower::retry` below the layer retries individual polls (the layer itself is allowed no
/// transient retry, so the retries seen are the policy's) and never re-sends the initial request:
/// a 503 to the POST comes back untouched.
#[tokio::test(start_paused = true)]
async fn a_retry_layer_below_retries_polls_never_the_initial_request() {
    let server = RawServer::start(|n, _| match n {
        0 => accepted("/op", &NOW),
        1 | 2 => reply(503, &[], "busy"),
        _ => reply(200, &[], status("Succeeded")),
    })
    .await;
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new().max_transient_retries(0))
        .layer(RetryLayer::new(RetryGets { left: 5 }))
        .service(client());
    let response = expect_ok(service.oneshot(post(&server.url("/start"))).await);
    assert_eq!(info(&response).polls, 1, "the layer saw one poll");
    assert_eq!(gets(&server).len(), 3, "the policy sent it three times");
    assert_sent_once(&server, &Method::POST);

    let server = RawServer::start(|_, _| reply(503, &[], "busy")).await;
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .layer(RetryLayer::new(RetryGets { left: 5 }))
        .service(client());
    let response = expect_ok(service.oneshot(post(&server.url("/start"))).await);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(text(response).await, "busy");
    much_later().await;
    assert_sent_once(&server, &Method::POST);
    assert_eq!(server.seen().len(), 1);
}

/// A `tower::retry` policy above the layer: it sees whole operations and `tower_lro::Error`, and
/// retries an operation that failed (a PUT is idempotent) once.
#[derive(Clone)]
struct RetryFailedOperations {
    left: usize,
}

impl Policy<Request<Full<Bytes>>, Response<ResponseBody<Incoming>>, Error>
    for RetryFailedOperations
{
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _: &mut Request<Full<Bytes>>,
        result: &mut Outcome,
    ) -> Option<Self::Future> {
        match result {
            Err(e) if e.kind() == ErrorKind::Failed && self.left > 0 => {
                self.left -= 1;
                Some(std::future::ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut clone = Request::new(req.body().clone());
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.headers_mut() = req.headers().clone();
        Some(clone)
    }
}

/// `tower::retry` above the layer retries whole operations: each attempt is one operation that
/// sends its PUT once and follows its own monitor; the second attempt succeeds.
#[tokio::test(start_paused = true)]
async fn a_retry_layer_above_retries_whole_operations() {
    let server = RawServer::start(|n, seen| match (seen.method.clone(), seen.uri.path()) {
        (Method::PUT, _) => accepted("/op", &NOW),
        (_, "/op") if n == 1 => reply(200, &[], status("Failed")),
        (_, "/op") => reply(200, &[], status("Succeeded")),
        _ => reply(
            200,
            &[],
            r#"{"properties":{"provisioningState":"Succeeded"}}"#,
        ),
    })
    .await;
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryFailedOperations { left: 1 }))
        .layer(LongRunningLayer::new())
        .service(client());
    let response = expect_ok(
        service
            .oneshot(request(Method::PUT, &server.url("/thing"), "{}"))
            .await,
    );
    assert_eq!(info(&response).final_uri.unwrap().path(), "/thing");
    let trail: Vec<_> = server
        .seen()
        .iter()
        .map(|s| (s.method.clone(), s.uri.path().to_owned()))
        .collect();
    let (put, poll) = (
        (Method::PUT, "/thing".to_owned()),
        (Method::GET, "/op".to_owned()),
    );
    let final_get = (Method::GET, "/thing".to_owned());
    assert_eq!(trail, [put.clone(), poll.clone(), put, poll, final_get]);
}

/// `min_delay` protects a server asking for `Retry-After: 0`; a `min_delay` above `max_delay`
/// yields `max_delay` (the ceiling is the safety bound).
#[tokio::test(start_paused = true)]
async fn min_delay_floors_every_wait_and_max_delay_wins_a_conflict() {
    let script = |n: usize, _: &Seen| match n {
        0 => accepted("/op", &NOW),
        1 | 2 => running(&[("retry-after-ms", "1")]),
        _ => reply(200, &[], status("Succeeded")),
    };
    let server = RawServer::start(script).await;
    let layer = LongRunningLayer::new().min_delay(Duration::from_secs(5));
    expect_ok(call(layer, post(&server.url("/start"))).await);
    assert_eq!(gaps(&server.seen()), [Duration::from_secs(5); 3]);
    assert_sent_once(&server, &Method::POST);

    let server = RawServer::start(script).await;
    let layer = LongRunningLayer::new()
        .min_delay(Duration::from_secs(50))
        .max_delay(Duration::from_secs(2));
    expect_ok(call(layer, post(&server.url("/start"))).await);
    assert_eq!(gaps(&server.seen()), [Duration::from_secs(2); 3]);
    assert_sent_once(&server, &Method::POST);
}

/// `max_transient_retries` counts consecutive failures: a budget of 1 rides out any number of
/// single 503s separated by good answers.
#[tokio::test(start_paused = true)]
async fn transient_retries_count_consecutive_failures_only() {
    let server = RawServer::start(|n, _| match n {
        0 => accepted("/op", &NOW),
        1 | 3 | 5 | 7 => reply(503, &NOW, "busy"),
        2 | 4 | 6 => running(&NOW),
        _ => reply(200, &[], status("Succeeded")),
    })
    .await;
    let layer = LongRunningLayer::new().max_transient_retries(1);
    let response = expect_ok(call(layer, post(&server.url("/start"))).await);
    assert_eq!(info(&response).polls, 8);
    assert_sent_once(&server, &Method::POST);
}

/// The final GET follows the same transient rules: 503s within the budget are retried (the
/// original PUT is never re-sent), a 404 is final at once.
#[tokio::test(start_paused = true)]
async fn the_final_get_is_retried_on_transient_statuses_only() {
    let script = |final_status: u16| {
        move |_: usize, seen: &Seen| match (seen.method.clone(), seen.uri.path()) {
            (Method::PUT, _) => accepted("/op", &NOW),
            (_, "/op") => reply(200, &[], status("Succeeded")),
            _ => reply(final_status, &NOW, r#"{"id":"thing"}"#),
        }
    };
    let fails_twice = {
        let then_ok = script(200);
        let busy = script(503);
        move |n: usize, seen: &Seen| {
            if n < 4 {
                busy(n, seen)
            } else {
                then_ok(n, seen)
            }
        }
    };
    let server = RawServer::start(fails_twice).await;
    let layer = LongRunningLayer::new().max_transient_retries(2);
    let put = || request(Method::PUT, &server.url("/thing"), "{}");
    let response = expect_ok(call(layer.clone(), put()).await);
    assert_eq!(text(response).await, r#"{"id":"thing"}"#);
    let finals = gets(&server)
        .iter()
        .filter(|s| s.uri.path() == "/thing")
        .count();
    assert_eq!(finals, 3);
    assert_sent_once(&server, &Method::PUT);

    let server = RawServer::start(script(404)).await;
    let put = request(Method::PUT, &server.url("/thing"), "{}");
    let err = expect_err(call(layer, put).await);
    assert_eq!(err.kind(), ErrorKind::UnexpectedStatus);
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    much_later().await;
    assert_eq!(gets(&server).len(), 2, "one poll, one final GET");
    assert_sent_once(&server, &Method::PUT);
}

/// A wait that would end past the deadline fails at once (`TimedOut`, with the last status)
/// instead of sleeping into it.
#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_fails_at_once() {
    let server = RawServer::start(|n, _| match n {
        0 => accepted("/op", &NOW),
        _ => running(&[("retry-after", "3600")]),
    })
    .await;
    let started = Instant::now();
    let layer = LongRunningLayer::new().timeout(Duration::from_secs(30));
    let err = expect_err(call(layer, post(&server.url("/start"))).await);
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert_eq!(started.elapsed(), Duration::ZERO);
    let op = err.operation().unwrap();
    assert_eq!((op.polls, op.state.as_deref()), (1, Some("InProgress")));
    much_later().await;
    assert_eq!(gets(&server).len(), 1);
    assert_sent_once(&server, &Method::POST);
}

// ---------------------------------------------------------------------------------------------
// Bodies that stall or break, and settings at the edge
// ---------------------------------------------------------------------------------------------

/// A `timeout` too large for the clock to add means no deadline, not a panic in `call`.
#[tokio::test(start_paused = true)]
async fn a_timeout_too_large_for_the_clock_is_no_deadline() {
    let server = RawServer::start(|n, _| match n {
        0 => accepted("/op", &NOW),
        _ => reply(200, &[], status("Succeeded")),
    })
    .await;
    let layer = LongRunningLayer::new().timeout(Duration::MAX);
    let response = expect_ok(call(layer, post(&server.url("/start"))).await);
    assert_eq!(info(&response).polls, 1);
}

/// A "still running" answer whose body stalls is drained while the wait lasts and for a second
/// after it at most: the next poll is not held up by the stall, with no poll timeout and no
/// deadline to fall back on.
#[tokio::test(start_paused = true)]
async fn a_stalled_unneeded_body_delays_the_next_poll_by_a_second_at_most() {
    for (hint, gap) in [("0", 1), ("5", 5)] {
        let server = RawServer::start_streaming(move |n, _| async move {
            let running = [("location", "/op"), ("retry-after", hint)];
            match n {
                0 => reply_raw(202, &[("location", b"/op".as_slice())], full("")),
                1 => {
                    let headers: Vec<(&str, &[u8])> =
                        running.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
                    let stalled = Generated::new(4096, b'x').stall_after(10).boxed_body();
                    reply_raw(202, &headers, stalled)
                }
                _ => reply_raw(200, &[], full("done")),
            }
        })
        .await;
        let layer = LongRunningLayer::new().poll_timeout(None);
        let put = request(Method::PUT, &server.url("/account"), "{}");
        let response = expect_ok(within(Duration::from_secs(60), call(layer, put)).await);
        assert_eq!(text(response).await, "done");
        let polls = gets(&server);
        assert_eq!(polls.len(), 2);
        assert_eq!(
            polls[1].at - polls[0].at,
            Duration::from_secs(gap),
            "Retry-After: {hint}"
        );
        assert_sent_once(&server, &Method::PUT);
    }
}

/// An error answer ends the operation whatever happens to its body: cut or stalled part-way, a
/// 404 is still `UnexpectedStatus` with what arrived, and is not retried.
#[tokio::test(start_paused = true)]
async fn an_error_answer_whose_body_breaks_is_still_unexpected_status() {
    for stall in [false, true] {
        let server = RawServer::start_streaming(move |n, _| async move {
            match n {
                0 => reply_raw(
                    202,
                    &[("azure-asyncoperation", b"/op".as_slice())],
                    full(""),
                ),
                _ => {
                    let body = Generated::new(100, b'e').with_length();
                    let body = if stall {
                        body.stall_after(10)
                    } else {
                        body.fail_after(10)
                    };
                    reply_raw(404, &[], body.boxed_body())
                }
            }
        })
        .await;
        let layer = LongRunningLayer::new().poll_timeout(Some(Duration::from_secs(5)));
        let err = expect_err(call(layer, post(&server.url("/start"))).await);
        assert_eq!(
            err.kind(),
            ErrorKind::UnexpectedStatus,
            "stall: {stall}: {err}"
        );
        assert_eq!(err.status(), Some(http::StatusCode::NOT_FOUND));
        assert!(err
            .body()
            .is_some_and(|b| b.len() <= 10 && b.iter().all(|&c| c == b'e')));
        assert_eq!(gets(&server).len(), 1, "an error answer is not retried");
        assert_sent_once(&server, &Method::POST);
    }
}

/// An initial 200 whose body stalls while the layer reads it for a `provisioningState` is handed
/// back after the poll timeout, what was read first: the layer never hangs on it.
#[tokio::test(start_paused = true)]
async fn a_stalled_initial_body_is_handed_back_after_the_poll_timeout() {
    let server = RawServer::start_streaming(|_, _| async {
        let body = Generated::new(500, b'{').with_length().stall_after(100);
        reply_raw(
            200,
            &[("content-type", b"application/json".as_slice())],
            body.boxed_body(),
        )
    })
    .await;
    let layer = LongRunningLayer::new().poll_timeout(Some(Duration::from_secs(5)));
    let started = Instant::now();
    let put = request(Method::PUT, &server.url("/resource"), "{}");
    let response = expect_ok(within(Duration::from_secs(60), call(layer, put)).await);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!(response.status(), http::StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, Bytes::from(vec![b'{'; 100]), "nothing read is lost");
    assert_eq!(server.count(&Method::PUT), 1);
    assert!(gets(&server).is_empty());
}
