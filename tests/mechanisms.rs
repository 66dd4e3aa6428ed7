//! The mechanisms any dialect may use, with the layer's guarantees kept: preparing the original
//! request, credentials withheld across origins and from tokens, a final response the dialect
//! builds from an answer, and several dialects behind one layer (`Dialect::or`).
//!
//! Servers are in memory (the raw scripted server and the simulator on the in-memory network),
//! on tokio's paused clock.

mod support;

use std::borrow::Cow;

use bytes::Bytes;
use http::header::HeaderName;
use http::{response, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use support::{request, text, RawServer};
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::dialect::{
    Dialect, Follow, InitialHead, Observer, PollAt, Replacement, RequestHead, StatusHead, Verdict,
};
use tower_lro::{Azure, ErrorKind, Google, LongRunningLayer, Polling, ResumeToken};
use tower_lro_sim::{Monitor, RetryAfter, Scenario};

fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

/// A toy protocol: `202` + `Location`; the monitor answers `202` while running, then `200` whose
/// body is `<status> <rest>`: the final response has that status and `rest` as its body (an
/// embedded response, the shape of OData's `application/http` completion, in miniature). A
/// `200` with `Async-Result: <status>` has that status and keeps its own body (judged by the
/// head). It asks for `Prefer: respond-async`, and its key travels in `x-toy-key`.
#[derive(Debug, Clone, Default)]
struct Embedding;

impl Dialect for Embedding {
    type Monitor = ();

    fn name(&self) -> &'static str {
        "embedding"
    }

    fn prepare(&self, _: &Method, headers: &mut HeaderMap) {
        headers.insert("prefer", HeaderValue::from_static("respond-async"));
    }

    fn credential_headers(&self) -> Cow<'static, [HeaderName]> {
        static TOY_KEY: [HeaderName; 1] = [HeaderName::from_static("x-toy-key")];
        Cow::Borrowed(&TOY_KEY)
    }

    fn initial_head<'a>(
        &self,
        _: &RequestHead<'_>,
        response: &'a response::Parts,
    ) -> InitialHead<'a, ()> {
        match response.headers.get("location") {
            Some(url) if response.status == StatusCode::ACCEPTED => {
                InitialHead::Follow(Follow::new((), PollAt::url(url)))
            }
            _ => InitialHead::NotLongRunning,
        }
    }

    fn status_head<'a>(&self, _: &(), response: &'a response::Parts) -> StatusHead<'a> {
        if response.status == StatusCode::ACCEPTED {
            return StatusHead::Judged(Verdict::Running { moved: None });
        }
        match response.headers.get("async-result").map(|v| v.to_str()) {
            Some(Ok(code)) => match code.parse::<u16>().map(StatusCode::from_u16) {
                Ok(Ok(status)) => StatusHead::Judged(Verdict::Replace(Replacement::new(status))),
                _ => StatusHead::Judged(Verdict::Malformed(format!("bad Async-Result {code:?}"))),
            },
            _ => StatusHead::ReadBody,
        }
    }

    fn status_body<'a>(
        &self,
        _: &mut (),
        _: &RequestHead<'_>,
        _: &'a response::Parts,
        body: &'a [u8],
        _: &mut Observer<'_>,
    ) -> Verdict<'a> {
        let Some(space) = body.iter().position(|b| *b == b' ') else {
            return Verdict::Malformed("no embedded status".into());
        };
        let status = std::str::from_utf8(&body[..space])
            .ok()
            .and_then(|code| code.parse::<u16>().ok())
            .and_then(|code| StatusCode::from_u16(code).ok());
        let Some(status) = status else {
            return Verdict::Malformed("not an embedded status".into());
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-embedded", HeaderValue::from_static("yes"));
        Verdict::Replace(
            Replacement::new(status)
                .headers(headers)
                .body(&body[space + 1..]),
        )
    }
}

fn embedding(
    layer: LongRunningLayer<Embedding>,
) -> tower_lro::LongRunning<support::HttpClient, Embedding> {
    ServiceBuilder::new()
        .layer(layer)
        .service(support::client())
}

#[tokio::test(start_paused = true)]
async fn prepare_asks_the_original_request_only_and_polls_do_not_repeat_it() {
    let server = RawServer::start(|n, _| match n {
        0 => answer(202, &[("location", "/monitor"), ("retry-after", "1")], ""),
        1 => answer(202, &[("retry-after", "1")], ""),
        _ => answer(200, &[], "201 made"),
    })
    .await;
    let response = embedding(LongRunningLayer::with_dialect(Embedding))
        .oneshot(request(Method::POST, &server.url("/things"), "{}"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].headers["prefer"], "respond-async");
    assert!(
        seen[1..].iter().all(|s| !s.headers.contains_key("prefer")),
        "a preference is the original request's"
    );
}

#[tokio::test(start_paused = true)]
async fn a_layer_with_polling_disabled_sends_the_request_as_it_is() {
    let server = RawServer::start(|_, _| answer(202, &[("location", "/monitor")], "")).await;
    let mut req = request(Method::POST, &server.url("/things"), "{}");
    req.extensions_mut().insert(Polling::Disabled);
    let response = embedding(LongRunningLayer::with_dialect(Embedding))
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(!server.seen()[0].headers.contains_key("prefer"));
}

#[tokio::test(start_paused = true)]
async fn an_embedded_response_is_the_final_one_with_its_status_headers_and_body() {
    let server = RawServer::start(|n, _| match n {
        0 => answer(202, &[("location", "/monitor"), ("retry-after", "1")], ""),
        _ => answer(200, &[("x-outer", "wrapper")], "201 the result itself"),
    })
    .await;
    let response = embedding(LongRunningLayer::with_dialect(Embedding))
        .oneshot(request(Method::POST, &server.url("/things"), "{}"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-embedded"], "yes");
    assert!(
        !response.headers().contains_key("x-outer"),
        "the wrapper's headers are replaced"
    );
    assert_eq!(text(response).await, "the result itself");
}

#[tokio::test(start_paused = true)]
async fn an_embedded_error_is_never_ok_and_carries_the_embedded_response() {
    for (code, kind) in [(500, "server"), (404, "client")] {
        let server = RawServer::start(move |n, _| match n {
            0 => answer(202, &[("location", "/monitor")], ""),
            _ => answer(
                200,
                &[],
                &format!(r#"{code} {{"error":{{"code":"Gone","message":"{kind} side"}}}}"#),
            ),
        })
        .await;
        let error = embedding(LongRunningLayer::with_dialect(Embedding))
            .oneshot(request(Method::POST, &server.url("/things"), "{}"))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Failed, "{code}");
        assert_eq!(error.status(), Some(StatusCode::from_u16(code).unwrap()));
        assert_eq!(error.headers().unwrap()["x-embedded"], "yes");
        assert_eq!(
            error.code(),
            Some("Gone"),
            "the dialect's error_detail of the embedded body"
        );
        assert_eq!(error.message(), Some(&*format!("{kind} side")));
        assert!(error.body().unwrap().starts_with(b"{\"error\""));
        assert!(error.resume_token().is_none(), "the operation has ended");
    }
}

#[tokio::test(start_paused = true)]
async fn a_status_replaced_by_the_head_keeps_the_answers_body() {
    let server = RawServer::start(|_, seen| match seen.uri.path() {
        "/a" => answer(202, &[("location", "/monitor-a")], ""),
        "/b" => answer(202, &[("location", "/monitor-b")], ""),
        "/monitor-a" => answer(200, &[("async-result", "204")], ""),
        _ => answer(
            200,
            &[("async-result", "409")],
            r#"{"error":{"code":"Conflict"}}"#,
        ),
    })
    .await;
    let stack = embedding(LongRunningLayer::with_dialect(Embedding));
    let response = stack
        .clone()
        .oneshot(request(Method::POST, &server.url("/a"), "{}"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let error = stack
        .oneshot(request(Method::POST, &server.url("/b"), "{}"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(error.status(), Some(StatusCode::CONFLICT));
    assert_eq!(error.code(), Some("Conflict"));
}

#[tokio::test(start_paused = true)]
async fn a_replacement_the_dialect_cannot_read_is_malformed() {
    let server = RawServer::start(|n, _| match n {
        0 => answer(202, &[("location", "/monitor")], ""),
        _ => answer(200, &[("async-result", "done")], "result"),
    })
    .await;
    let error = embedding(LongRunningLayer::with_dialect(Embedding))
        .oneshot(request(Method::POST, &server.url("/things"), "{}"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MalformedStatus);
    assert_eq!(error.status(), Some(StatusCode::OK));
}

// ---------------------------------------------------------------------------------------------
// Credentials.

#[tokio::test(start_paused = true)]
async fn every_credential_header_stays_on_its_origin_and_out_of_tokens() {
    let status = RawServer::start(|_, _| {
        answer(
            200,
            &[("content-type", "application/json")],
            r#"{"status":"InProgress"}"#,
        )
    })
    .await;
    let status_url = status.url("/operations/1");
    let server = RawServer::start(move |_, _| {
        answer(
            201,
            &[("azure-asyncoperation", &status_url), ("retry-after", "1")],
            r#"{"properties":{"provisioningState":"Creating"}}"#,
        )
    })
    .await;
    let credentials = [
        "authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "x-toy-key",
    ];
    let mut req = request(Method::PUT, &server.url("/things/a"), "{}");
    for name in credentials {
        req.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static("secret-value"),
        );
    }
    req.headers_mut()
        .insert("x-request-id", HeaderValue::from_static("kept"));
    let layer = LongRunningLayer::with_dialect(Azure::new().or(Embedding))
        .allow_origin(status.url("").trim_end_matches('/').parse().unwrap())
        .withhold_header(HeaderName::from_static("x-goog-api-key"))
        .max_polls(2);
    let error = ServiceBuilder::new()
        .layer(layer)
        .service(support::client())
        .oneshot(req)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TooManyPolls);
    let polls = status.seen();
    assert_eq!(polls.len(), 2);
    for poll in &polls {
        for name in credentials {
            assert!(
                !poll.headers.contains_key(name),
                "{name} reached another origin"
            );
        }
        assert_eq!(poll.headers["x-request-id"], "kept");
    }
    let token = error.resume_token().unwrap().to_json();
    assert!(!token.contains("secret-value"), "{token}");
    assert!(token.contains("x-request-id"), "{token}");
}

#[tokio::test(start_paused = true)]
async fn polls_on_the_same_origin_keep_the_callers_key() {
    let server = RawServer::start(|_, seen| match seen.method {
        Method::POST => answer(202, &[("location", "/monitor")], ""),
        _ => answer(200, &[], "200 done"),
    })
    .await;
    let mut req = request(Method::POST, &server.url("/things"), "{}");
    req.headers_mut()
        .insert("x-toy-key", HeaderValue::from_static("secret-value"));
    req.extensions_mut().insert(Polling::AcceptOnly);
    let response = embedding(LongRunningLayer::with_dialect(Embedding))
        .oneshot(req)
        .await
        .unwrap();
    let token = response
        .extensions()
        .get::<ResumeToken>()
        .unwrap()
        .to_json();
    assert!(!token.contains("secret-value"), "{token}");
    let mut req = request(Method::POST, &server.url("/again"), "{}");
    req.headers_mut()
        .insert("x-toy-key", HeaderValue::from_static("secret-value"));
    embedding(LongRunningLayer::with_dialect(Embedding))
        .oneshot(req)
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[2].headers["x-toy-key"], "secret-value",
        "the same origin"
    );
}

// ---------------------------------------------------------------------------------------------
// Several dialects behind one layer.

const INSTANCES: &str = "/v1/projects/p/locations/l/instances";

fn both() -> tower_lro::LongRunning<support::HttpClient, tower_lro::dialect::Or<Azure, Google>> {
    ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(
            Azure::new().or(Google::new()),
        ))
        .service(support::client())
}

#[tokio::test(start_paused = true)]
async fn one_layer_follows_azure_and_google_operations() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::PUT, "/accounts/a", Monitor::AzureAsyncOperation)
            .completes_after_polls(1),
    );
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation).completes_after_polls(1),
    );
    let azure = both()
        .oneshot(request(Method::PUT, &sim.url("/accounts/a"), "{}"))
        .await
        .unwrap();
    assert_eq!(azure.status(), StatusCode::OK);
    let info = azure
        .extensions()
        .get::<tower_lro::OperationInfo>()
        .unwrap();
    assert_eq!(info.monitor, "azure-async-operation");
    let google = both()
        .oneshot(request(Method::POST, &sim.url(INSTANCES), "{}"))
        .await
        .unwrap();
    let info = google
        .extensions()
        .get::<tower_lro::OperationInfo>()
        .unwrap()
        .clone();
    assert_eq!(info.monitor, "google-operation");
    assert!(text(google).await.contains(r#""done":true"#));
    assert_eq!(sim.count(&Method::PUT, "/accounts/a"), 1);
    assert_eq!(sim.count(&Method::POST, INSTANCES), 1);
}

#[tokio::test(start_paused = true)]
async fn tokens_name_the_dialect_that_followed_and_resume_with_it_alone_too() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation)
            .retry_after(RetryAfter::Millis(10))
            .completes_after_polls(1),
    );
    let accepted = || {
        let mut req = request(Method::POST, &sim.url(INSTANCES), "{}");
        req.extensions_mut().insert(Polling::AcceptOnly);
        req
    };
    let response = both().oneshot(accepted()).await.unwrap();
    let token = response.extensions().get::<ResumeToken>().cloned().unwrap();
    assert_eq!(token.dialect(), "google");
    let alone = ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(Google::new()))
        .service(support::client());
    let done = alone
        .resume(ResumeToken::from_json(&token.to_json()).unwrap())
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);

    // A token of Google alone resumes through the pair.
    let response = alone.oneshot(accepted()).await.unwrap();
    let token = response.extensions().get::<ResumeToken>().cloned().unwrap();
    let done = both().resume(token).await.unwrap();
    assert!(text(done).await.contains(r#""done":true"#));

    // ... and a dialect outside the pair refuses it, saying why.
    let response = both().oneshot(accepted()).await.unwrap();
    let token = response.extensions().get::<ResumeToken>().cloned().unwrap();
    let refused = ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(Embedding))
        .service(support::client())
        .resume(token)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidResumeToken);
    assert!(refused.to_string().contains("\"google\""), "{refused}");
}

#[tokio::test(start_paused = true)]
async fn cancel_and_step_go_to_the_dialect_that_followed() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation)
            .retry_after(RetryAfter::Millis(10))
            .completes_after_polls(100),
    );
    let mut req = request(Method::POST, &sim.url(INSTANCES), "{}");
    req.extensions_mut().insert(Polling::AcceptOnly);
    let response = both().oneshot(req).await.unwrap();
    let token = response.extensions().get::<ResumeToken>().cloned().unwrap();
    let step = both().step(token.clone()).await.unwrap();
    let tower_lro::Step::Running(next) = step else {
        panic!("still running after one poll");
    };
    assert_eq!(next.token().dialect(), "google");
    assert!(
        next.token().can_cancel(),
        "Google's cancel, through the pair"
    );
    let error = both().cancel(next.into_token()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled);
    let cancels = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == Method::POST && r.uri.path().ends_with(":cancel"))
        .count();
    assert_eq!(cancels, 1, "sent once");
}

// ---------------------------------------------------------------------------------------------
// A body the dialect must judge, and a cancel the dialect notes.

/// A toy job API: an initial `200` is a job when its body is `job <url>`, and only its body
/// says so (`RequireBody`); the job answers `running` or `done`; `DELETE` cancels it, after
/// which it answers `404`, which means canceled only once a cancel was accepted.
#[derive(Debug, Clone, Default)]
struct Jobs;

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct JobMonitor {
    #[serde(default)]
    canceling: bool,
}

impl Dialect for Jobs {
    type Monitor = JobMonitor;

    fn name(&self) -> &'static str {
        "jobs"
    }

    fn initial_head<'a>(
        &self,
        _: &RequestHead<'_>,
        response: &'a response::Parts,
    ) -> InitialHead<'a, JobMonitor> {
        if response.status == StatusCode::OK {
            InitialHead::RequireBody
        } else {
            InitialHead::NotLongRunning
        }
    }

    fn initial_body<'a>(
        &self,
        _: &RequestHead<'_>,
        _: &'a response::Parts,
        body: &'a [u8],
        _: Option<Follow<'a, JobMonitor>>,
        _: &mut Observer<'_>,
    ) -> tower_lro::dialect::InitialBody<'a, JobMonitor> {
        match body.strip_prefix(b"job ") {
            Some(url) => tower_lro::dialect::InitialBody::Follow(Follow::new(
                JobMonitor::default(),
                PollAt::Reference(Cow::Borrowed(url)),
            )),
            None => tower_lro::dialect::InitialBody::Final,
        }
    }

    fn status_head<'a>(
        &self,
        monitor: &JobMonitor,
        response: &'a response::Parts,
    ) -> StatusHead<'a> {
        match response.status {
            StatusCode::NOT_FOUND if monitor.canceling => StatusHead::Judged(Verdict::Canceled(
                tower_lro::dialect::ErrorDetail::reported("gone after a cancel"),
            )),
            status if status.is_success() => StatusHead::ReadBody,
            _ => StatusHead::Judged(Verdict::Unexpected),
        }
    }

    fn status_body<'a>(
        &self,
        _: &mut JobMonitor,
        _: &RequestHead<'_>,
        _: &'a response::Parts,
        body: &'a [u8],
        _: &mut Observer<'_>,
    ) -> Verdict<'a> {
        match body {
            b"running" => Verdict::Running { moved: None },
            b"done" => Verdict::Done,
            _ => Verdict::Malformed("not a job state".into()),
        }
    }

    fn cancel(
        &self,
        _: &JobMonitor,
        polled: &http::Uri,
    ) -> Option<tower_lro::dialect::CancelRequest> {
        Some(tower_lro::dialect::CancelRequest::new(
            Method::DELETE,
            polled.path().to_owned(),
        ))
    }

    fn cancel_accepted(&self, monitor: &mut JobMonitor) {
        monitor.canceling = true;
    }
}

fn jobs() -> tower_lro::LongRunning<support::HttpClient, Jobs> {
    ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(Jobs).max_status_body(64))
        .service(support::client())
}

#[tokio::test(start_paused = true)]
async fn a_body_the_dialect_must_judge_is_never_returned_unjudged() {
    let server = RawServer::start(|_, seen| match seen.uri.path() {
        "/small" => answer(200, &[], "job /jobs/1"),
        "/plain" => answer(200, &[], "an ordinary answer"),
        "/jobs/1" => answer(200, &[], "done"),
        _ => answer(200, &[("x-big", "yes")], &"x".repeat(100)),
    })
    .await;
    let done = jobs()
        .oneshot(request(Method::POST, &server.url("/small"), "{}"))
        .await
        .unwrap();
    assert_eq!(text(done).await, "done");
    let plain = jobs()
        .oneshot(request(Method::POST, &server.url("/plain"), "{}"))
        .await
        .unwrap();
    assert_eq!(text(plain).await, "an ordinary answer");
    // Its declared length is over the bound: refused before reading, with the head.
    let error = jobs()
        .oneshot(request(Method::POST, &server.url("/big"), "{}"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StatusBodyTooLarge);
    assert_eq!(error.status(), Some(StatusCode::OK));
    assert_eq!(error.headers().unwrap()["x-big"], "yes");
}

#[tokio::test(start_paused = true)]
async fn a_body_the_dialect_must_judge_that_grows_past_the_bound_keeps_what_arrived() {
    let server = RawServer::start_with_body(|_, _| async {
        let (sender, body) = support::ChannelBody::new();
        for _ in 0..10 {
            let _ = sender.send(Bytes::from_static(b"0123456789"));
        }
        drop(sender);
        Response::new(body)
    })
    .await;
    let error = jobs()
        .oneshot(request(Method::POST, &server.url("/chunked"), "{}"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StatusBodyTooLarge);
    let read = error.body().unwrap();
    assert!(
        !read.is_empty() && read.iter().all(u8::is_ascii_digit),
        "{read:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dialect_notes_an_accepted_cancel_in_its_monitor() {
    let canceled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = canceled.clone();
    let server = RawServer::start(move |_, seen| match (&seen.method, seen.uri.path()) {
        (&Method::POST, _) => answer(200, &[], "job /jobs/1"),
        (&Method::DELETE, _) => {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            answer(202, &[], "")
        }
        _ if flag.load(std::sync::atomic::Ordering::SeqCst) => answer(404, &[], ""),
        _ => answer(200, &[], "running"),
    })
    .await;
    let mut req = request(Method::POST, &server.url("/start"), "{}");
    req.extensions_mut().insert(Polling::AcceptOnly);
    let accepted = jobs().oneshot(req).await.unwrap();
    let token = accepted.extensions().get::<ResumeToken>().cloned().unwrap();
    assert!(!token.to_json().contains(r#""canceling":true"#));
    let error = jobs().cancel(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled, "{error}");
    assert!(canceled.load(std::sync::atomic::Ordering::SeqCst));
    let deletes = server.count(&Method::DELETE);
    assert_eq!(deletes, 1, "sent once");
}

#[tokio::test(start_paused = true)]
async fn a_refused_url_is_shown_without_its_query_values() {
    let server = RawServer::start(|_, _| {
        answer(
            202,
            &[(
                "azure-asyncoperation",
                "https://blob.example/ops/1?sv=2024&sig=s3cret-signature",
            )],
            "",
        )
    })
    .await;
    let error = support::stack(LongRunningLayer::new())
        .oneshot(request(Method::POST, &server.url("/things"), "{}"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CrossOrigin);
    let shown = error.to_string();
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(
        shown.contains("https://blob.example/ops/1?sv=REDACTED&sig=REDACTED"),
        "{shown}"
    );
}
