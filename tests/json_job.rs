//! Job APIs by configuration (`JsonJob`, PROTOCOL §17), end to end against the simulator's
//! OpenAI-, Anthropic- and Replicate-style job APIs and scripted servers, over HTTP on the
//! in-memory network, on tokio's paused clock.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::Full;
use support::{request, text, ChannelBody, HttpClient, RawServer};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_http::set_header::{SetRequestHeader, SetRequestHeaderLayer};
use tower_lro::{
    Dialect, ErrorKind, JsonJob, LongRunning, LongRunningLayer, OperationInfo, Polling,
    ResumeToken, Step,
};
use tower_lro_sim::{Ending, Monitor, Scenario, Simulator};

const BATCHES: &str = "/v1/batches";
const FINE_TUNING: &str = "/v1/fine_tuning/jobs";
const MESSAGE_BATCHES: &str = "/v1/messages/batches";
const PREDICTIONS: &str = "/v1/models/sim/model/predictions";

/// The layer of `dialect` over the in-memory client, with an API key set below it.
type Jobs<D = JsonJob> = LongRunning<SetRequestHeader<HttpClient, HeaderValue>, D>;

fn jobs<D: Dialect>(dialect: D) -> Jobs<D> {
    jobs_under(LongRunningLayer::with_dialect(dialect))
}

fn jobs_under<D: Dialect>(layer: LongRunningLayer<D>) -> Jobs<D> {
    ServiceBuilder::new()
        .layer(layer)
        .layer(SetRequestHeaderLayer::overriding(
            HeaderName::from_static("x-api-key"),
            HeaderValue::from_static("sk-test"),
        ))
        .service(support::client())
}

fn create(sim: &Simulator, path: &str) -> http::Request<Full<Bytes>> {
    request(
        Method::POST,
        &sim.url(path),
        r#"{"input_file_id":"file-1"}"#,
    )
}

fn info<B>(response: &http::Response<B>) -> OperationInfo {
    support::info(response)
}

/// The token of an operation started with `Polling::AcceptOnly`.
async fn accepted<D: Dialect>(service: &Jobs<D>, req: http::Request<Full<Bytes>>) -> ResumeToken {
    let mut req = req;
    req.extensions_mut().insert(Polling::AcceptOnly);
    let response = service.clone().oneshot(req).await.unwrap();
    let token = response.extensions().get::<ResumeToken>().cloned().unwrap();
    // Through its JSON, as a token that crossed a process boundary.
    ResumeToken::from_json(&token.to_json()).unwrap()
}

/// Every request the simulator saw carried the key the stack sets below the layer.
fn every_request_has_the_key(sim: &Simulator) {
    for seen in sim.requests() {
        assert_eq!(
            seen.headers.get("x-api-key").map(HeaderValue::as_bytes),
            Some(&b"sk-test"[..]),
            "{} {}",
            seen.method,
            seen.uri
        );
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI

#[tokio::test(start_paused = true)]
async fn an_openai_batch_is_polled_at_its_collection_until_completed() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, BATCHES, Monitor::OpenAiJob)
            .completes_after_polls(2)
            .percent_complete(true),
    );
    let response = jobs(JsonJob::openai())
        .oneshot(create(&sim, BATCHES))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let operation = info(&response);
    assert_eq!(operation.monitor, Monitor::OpenAiJob.as_str());
    assert_eq!(operation.polls, 3, "two running answers, then completed");
    assert_eq!(operation.operation_id.as_deref(), Some("batch_0001"));
    assert_eq!(operation.state.as_deref(), Some("completed"));
    assert_eq!(operation.percent_complete, Some(100.0));
    assert_eq!(operation.monitor_url.path(), "/v1/batches/batch_0001");
    let body = text(response).await;
    assert!(body.contains(r#""output_file_id":"file-1""#), "{body}");
    assert_eq!(
        support::sim_trail(&sim.requests()),
        [
            (Method::POST, BATCHES.into()),
            (Method::GET, "/v1/batches/batch_0001".into()),
            (Method::GET, "/v1/batches/batch_0001".into()),
            (Method::GET, "/v1/batches/batch_0001".into()),
        ]
    );
    every_request_has_the_key(&sim);
}

#[tokio::test(start_paused = true)]
async fn without_a_hint_polls_follow_the_layers_delays() {
    let sim = support::simulator().await;
    sim.add(Scenario::new(Method::POST, BATCHES, Monitor::OpenAiJob).completes_after_polls(2));
    jobs(JsonJob::openai())
        .oneshot(create(&sim, BATCHES))
        .await
        .unwrap();
    let at: Vec<_> = sim.requests().iter().map(|r| r.at).collect();
    let waits: Vec<_> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(waits, [1, 2, 4].map(Duration::from_secs));
}

#[tokio::test(start_paused = true)]
async fn a_failed_openai_job_is_failed_with_its_code_and_message() {
    let sim = support::simulator().await;
    let failing = |path: &str| {
        Scenario::new(Method::POST, path, Monitor::OpenAiJob).ending(Ending::Failed {
            code: "invalid_training_file".into(),
            message: "the file has too few examples".into(),
        })
    };
    sim.add(failing(BATCHES));
    sim.add(failing(FINE_TUNING));
    for path in [BATCHES, FINE_TUNING] {
        let error = jobs(JsonJob::openai())
            .oneshot(create(&sim, path))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Failed, "{path}");
        assert_eq!(error.code(), Some("invalid_training_file"), "{path}");
        assert_eq!(error.message(), Some("the file has too few examples"));
        assert_eq!(error.status(), Some(StatusCode::OK));
        assert_eq!(error.operation().unwrap().state.as_deref(), Some("failed"));
        assert!(error.resume_token().is_none(), "the job has ended");
    }
}

#[tokio::test(start_paused = true)]
async fn an_expired_batch_and_an_incomplete_response_are_failed() {
    let sim = support::simulator().await;
    sim.add(Scenario::new(Method::POST, BATCHES, Monitor::OpenAiJob).terminal_status("expired"));
    sim.add(
        Scenario::new(Method::POST, "/v1/responses", Monitor::OpenAiJob)
            .terminal_status("incomplete"),
    );
    for (path, state) in [(BATCHES, "expired"), ("/v1/responses", "incomplete")] {
        let error = jobs(JsonJob::openai())
            .oneshot(create(&sim, path))
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Failed, "{path}");
        assert_eq!(error.operation().unwrap().state.as_deref(), Some(state));
    }
}

#[tokio::test(start_paused = true)]
async fn an_openai_job_is_canceled_by_a_post_to_its_cancel() {
    let sim = support::simulator().await;
    sim.add(Scenario::new(Method::POST, BATCHES, Monitor::OpenAiJob).completes_after_polls(100));
    let service = jobs(JsonJob::openai());
    let token = accepted(&service, create(&sim, BATCHES)).await;
    assert_eq!(token.dialect(), "openai-job");
    assert!(token.can_cancel());
    assert!(!token.to_json().contains("sk-test"), "no key in a token");
    let error = service.cancel(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled);
    assert_eq!(
        error.operation().unwrap().state.as_deref(),
        Some("cancelled")
    );
    assert_eq!(
        sim.count(&Method::POST, "/v1/batches/batch_0001/cancel"),
        1,
        "sent once"
    );
    assert_eq!(sim.count(&Method::POST, BATCHES), 1);
    every_request_has_the_key(&sim);
}

#[tokio::test(start_paused = true)]
async fn an_openai_job_resumes_from_a_token_and_steps() {
    let sim = support::simulator().await;
    sim.add(Scenario::new(Method::POST, FINE_TUNING, Monitor::OpenAiJob).completes_after_polls(2));
    let service = jobs(JsonJob::openai());
    let token = accepted(&service, create(&sim, FINE_TUNING)).await;
    // A layer of another dialect refuses it.
    let refused = jobs(JsonJob::anthropic())
        .resume(token.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidResumeToken);
    let mut token = token;
    let mut steps = 0;
    let response = loop {
        match service.step(token).await.unwrap() {
            Step::Running(next) => token = next.into_token(),
            Step::Done(response) => break response,
        }
        steps += 1;
        assert!(steps < 10, "bounded");
    };
    assert_eq!(steps, 2);
    let body = text(response).await;
    assert!(body.contains(r#""status":"succeeded""#), "{body}");
    assert!(body.contains("fine_tuned_model"), "{body}");

    let resumed = accepted(&service, create(&sim, FINE_TUNING)).await;
    let response = service.resume(resumed).await.unwrap();
    assert_eq!(info(&response).operation_id.as_deref(), Some("ftjob-0002"));
    every_request_has_the_key(&sim);
}

// ---------------------------------------------------------------------------------------------
// Anthropic

#[tokio::test(start_paused = true)]
async fn an_anthropic_batch_ends_with_the_ended_batch_object() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, MESSAGE_BATCHES, Monitor::AnthropicBatch)
            .completes_after_polls(2),
    );
    let response = jobs(JsonJob::anthropic())
        .oneshot(create(&sim, MESSAGE_BATCHES))
        .await
        .unwrap();
    let operation = info(&response);
    assert_eq!(operation.monitor, "anthropic-batch");
    assert_eq!(operation.state.as_deref(), Some("ended"));
    assert_eq!(operation.operation_id.as_deref(), Some("msgbatch_0001"));
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["request_counts"]["succeeded"], 100);
    let results = body["results_url"].as_str().unwrap();
    assert!(results.ends_with("/v1/messages/batches/msgbatch_0001/results"));
    assert_eq!(
        sim.count(&Method::GET, "/v1/messages/batches/msgbatch_0001/results"),
        0,
        "the results are the caller's to stream"
    );
}

#[tokio::test(start_paused = true)]
async fn an_anthropic_batch_whose_requests_failed_still_ends_ok_with_its_counts() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, MESSAGE_BATCHES, Monitor::AnthropicBatch).ending(
            Ending::Failed {
                code: "overloaded_error".into(),
                message: "overloaded".into(),
            },
        ),
    );
    let response = jobs(JsonJob::anthropic())
        .oneshot(create(&sim, MESSAGE_BATCHES))
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["processing_status"], "ended");
    assert_eq!(body["request_counts"]["errored"], 100);
}

/// A batch ends `ended` however it ended; one whose `cancel_initiated_at` is set was canceled,
/// and its object stays readable in the error (the requests that ended first keep their results).
#[tokio::test(start_paused = true)]
async fn a_canceled_anthropic_batch_is_canceled_with_its_batch_object() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, MESSAGE_BATCHES, Monitor::AnthropicBatch)
            .completes_after_polls(100),
    );
    let service = jobs(JsonJob::anthropic());
    let token = accepted(&service, create(&sim, MESSAGE_BATCHES)).await;
    assert_eq!(token.dialect(), "anthropic-batch");
    // Through a buffered stack, as the request `into_cancel_request` makes.
    let buffered = ServiceBuilder::new()
        .buffer(4)
        .service(jobs(JsonJob::anthropic()));
    let error = buffered
        .oneshot(token.into_cancel_request())
        .await
        .unwrap_err()
        .downcast::<tower_lro::Error>()
        .unwrap();
    assert_eq!(error.kind(), ErrorKind::Canceled);
    assert_eq!(error.operation().unwrap().state.as_deref(), Some("ended"));
    assert!(error.resume_token().is_none(), "the batch has ended");
    let body: serde_json::Value = serde_json::from_slice(error.body().unwrap()).unwrap();
    assert_eq!(body["processing_status"], "ended");
    assert!(body["cancel_initiated_at"].is_string(), "{body}");
    assert_eq!(body["request_counts"]["canceled"], 100);
    assert!(body["results_url"].is_string(), "{body}");
    assert_eq!(
        sim.count(&Method::POST, "/v1/messages/batches/msgbatch_0001/cancel"),
        1
    );
    every_request_has_the_key(&sim);
}

#[tokio::test(start_paused = true)]
async fn an_anthropic_batch_resumes_and_steps() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, MESSAGE_BATCHES, Monitor::AnthropicBatch)
            .completes_after_polls(1),
    );
    let service = jobs(JsonJob::anthropic());
    let token = accepted(&service, create(&sim, MESSAGE_BATCHES)).await;
    let Step::Running(next) = service.step(token).await.unwrap() else {
        panic!("one running answer first");
    };
    assert_eq!(next.operation().state.as_deref(), Some("in_progress"));
    let response = service.resume(next.into_token()).await.unwrap();
    assert_eq!(info(&response).state.as_deref(), Some("ended"));
    assert_eq!(
        sim.count(&Method::GET, "/v1/messages/batches/msgbatch_0001"),
        2
    );
}

// ---------------------------------------------------------------------------------------------
// Replicate

#[tokio::test(start_paused = true)]
async fn a_replicate_prediction_is_polled_at_the_url_it_names() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, PREDICTIONS, Monitor::ReplicatePrediction)
            .resource_body(r#"["https://replicate.example/out.png"]"#),
    );
    let response = jobs(JsonJob::replicate())
        .oneshot(create(&sim, PREDICTIONS))
        .await
        .unwrap();
    let operation = info(&response);
    assert_eq!(operation.monitor, "replicate-prediction");
    assert_eq!(operation.monitor_url.path(), "/v1/predictions/pred0001");
    assert_eq!(operation.state.as_deref(), Some("succeeded"));
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["output"][0], "https://replicate.example/out.png");
    assert_eq!(sim.count(&Method::GET, "/v1/predictions/pred0001"), 3);
}

#[tokio::test(start_paused = true)]
async fn a_failed_prediction_is_failed_with_its_error_as_the_message() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, PREDICTIONS, Monitor::ReplicatePrediction).ending(
            Ending::Failed {
                code: "E1".into(),
                message: "CUDA out of memory".into(),
            },
        ),
    );
    let error = jobs(JsonJob::replicate())
        .oneshot(create(&sim, PREDICTIONS))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Failed);
    assert_eq!(error.message(), Some("CUDA out of memory"));
    assert_eq!(error.code(), None, "a prediction's error has no code");
}

#[tokio::test(start_paused = true)]
async fn a_prediction_is_canceled_at_the_url_it_names_even_after_a_resume() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, PREDICTIONS, Monitor::ReplicatePrediction)
            .completes_after_polls(100),
    );
    let service = jobs(JsonJob::replicate());
    let token = accepted(&service, create(&sim, PREDICTIONS)).await;
    let Step::Running(next) = service.step(token).await.unwrap() else {
        panic!("still running");
    };
    let token = ResumeToken::from_json(&next.into_token().to_json()).unwrap();
    assert!(token.can_cancel());
    let error = service.cancel(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled);
    assert_eq!(
        error.operation().unwrap().state.as_deref(),
        Some("canceled")
    );
    assert_eq!(
        sim.count(&Method::POST, "/v1/predictions/pred0001/cancel"),
        1
    );
    every_request_has_the_key(&sim);
}

#[tokio::test(start_paused = true)]
async fn a_job_that_completes_anyway_gives_its_final_response() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, PREDICTIONS, Monitor::ReplicatePrediction)
            .completes_after_polls(1)
            .completes_when_canceled(true),
    );
    let service = jobs(JsonJob::replicate());
    let token = accepted(&service, create(&sim, PREDICTIONS)).await;
    let response = service.cancel(token).await.unwrap();
    assert_eq!(info(&response).state.as_deref(), Some("succeeded"));
}

#[tokio::test(start_paused = true)]
async fn a_job_api_without_cancel_for_this_job_is_cancel_unsupported_and_goes_on() {
    let sim = support::simulator().await;
    sim.add(Scenario::new(Method::POST, BATCHES, Monitor::OpenAiJob).cancelable(false));
    let service = jobs(JsonJob::openai());
    let token = accepted(&service, create(&sim, BATCHES)).await;
    let error = service.cancel(token).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CancelUnsupported);
    let token = error.resume_token().cloned().unwrap();
    let response = service.resume(token).await.unwrap();
    assert_eq!(info(&response).state.as_deref(), Some("completed"));
}

// ---------------------------------------------------------------------------------------------
// One layer for several job APIs

#[tokio::test(start_paused = true)]
async fn one_layer_follows_openai_and_anthropic_jobs() {
    let sim = support::simulator().await;
    sim.add(Scenario::new(Method::POST, BATCHES, Monitor::OpenAiJob));
    sim.add(Scenario::new(
        Method::POST,
        MESSAGE_BATCHES,
        Monitor::AnthropicBatch,
    ));
    let service = jobs(JsonJob::openai().or(JsonJob::anthropic()));
    let openai = service
        .clone()
        .oneshot(create(&sim, BATCHES))
        .await
        .unwrap();
    assert_eq!(info(&openai).monitor, "openai-job");
    let anthropic = service
        .oneshot(create(&sim, MESSAGE_BATCHES))
        .await
        .unwrap();
    assert_eq!(info(&anthropic).monitor, "anthropic-batch");
}

// ---------------------------------------------------------------------------------------------
// A job API of your own, and bad input

fn answer(status: u16, body: &str) -> http::Response<Full<Bytes>> {
    support::reply(
        status,
        &[("content-type", "application/json")],
        body.to_owned(),
    )
}

#[tokio::test(start_paused = true)]
async fn a_job_api_of_your_own_in_a_few_lines() {
    // `POST /v2/exports` → `{"job": {"ref", "phase"}}`; polled at `/v2/export-jobs/{ref}`; the
    // result is a GET of the URL the finished job names.
    let server = RawServer::start(|n, seen| match (n, seen.uri.path()) {
        (0, "/v2/exports") => answer(202, r#"{"job":{"ref":"e 1","phase":"queued"}}"#),
        (1, "/v2/export-jobs/e%201") => answer(200, r#"{"job":{"ref":"e 1","phase":"working","percent":50}}"#),
        (2, "/v2/export-jobs/e%201") => answer(
            200,
            r#"{"job":{"ref":"e 1","phase":"done","percent":100},"links":{"result":"/v2/files/e-1.csv"}}"#,
        ),
        (3, "/v2/files/e-1.csv") => support::reply(200, &[("content-type", "text/csv")], "a,b\n1,2\n"),
        _ => answer(404, r#"{"error":{"code":"NotFound","message":"no"}}"#),
    })
    .await;
    let exports = JsonJob::builder("acme-export")
        .id("/job/ref")
        .state("/job/phase")
        .running(["queued", "working"])
        .succeeded(["done"])
        .failed(["error"])
        .progress("/job/percent")
        .poll_path("/v2/export-jobs/{id}")
        .result_at("/links/result")
        .build()
        .unwrap();
    let req = request(Method::POST, &server.url("/v2/exports"), "{}");
    let response = jobs(exports).oneshot(req).await.unwrap();
    let operation = info(&response);
    assert_eq!(operation.monitor, "acme-export");
    assert_eq!(operation.percent_complete, Some(100.0));
    assert_eq!(
        operation.final_uri.map(|u| u.path().to_owned()).as_deref(),
        Some("/v2/files/e-1.csv")
    );
    assert_eq!(text(response).await, "a,b\n1,2\n");
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn an_unknown_state_is_malformed_never_a_guess() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, BATCHES, Monitor::OpenAiJob)
            .completes_after_polls(1)
            .terminal_status("exploded"),
    );
    sim.add(
        Scenario::new(Method::POST, PREDICTIONS, Monitor::ReplicatePrediction)
            .running_status("warming_up"),
    );
    let error = jobs(JsonJob::openai())
        .oneshot(create(&sim, BATCHES))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MalformedStatus);
    assert!(String::from_utf8_lossy(error.body().unwrap()).contains("exploded"));
    assert!(
        error.resume_token().is_some(),
        "the job may still be running"
    );
    let error = jobs(JsonJob::replicate())
        .oneshot(create(&sim, PREDICTIONS))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::MalformedStatus);
}

#[tokio::test(start_paused = true)]
async fn a_job_object_without_an_id_is_malformed_and_nothing_is_polled() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, BATCHES, Monitor::OpenAiJob)
            .initial_body(r#"{"object":"batch","status":"validating"}"#),
    );
    sim.add(
        Scenario::new(Method::POST, PREDICTIONS, Monitor::ReplicatePrediction)
            .initial_body(r#"{"id":"p1","status":"starting","urls":{}}"#),
    );
    for (dialect, path) in [
        (JsonJob::openai(), BATCHES),
        (JsonJob::replicate(), PREDICTIONS),
    ] {
        let error = jobs(dialect).oneshot(create(&sim, path)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::MalformedStatus, "{path}");
        assert!(error.body().is_some());
    }
    assert_eq!(
        sim.requests().len(),
        2,
        "the two POSTs, once each, and no poll"
    );
}

#[tokio::test(start_paused = true)]
async fn other_calls_of_the_api_pass_through_untouched() {
    let server = RawServer::start(|_, seen| match seen.uri.path() {
        "/v1/files" => answer(
            200,
            r#"{"id":"file-1","object":"file","status":"uploaded"}"#,
        ),
        _ => answer(
            200,
            r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[]}"#,
        ),
    })
    .await;
    let mut service = jobs(JsonJob::openai());
    for path in ["/v1/files", "/v1/chat/completions"] {
        let req = request(Method::POST, &server.url(path), "{}");
        let response = service.ready().await.unwrap().call(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.extensions().get::<OperationInfo>().is_none(),
            "{path}"
        );
    }
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_poll_url_on_another_origin_is_refused_before_anything_is_sent() {
    let server = RawServer::start(|_, _| {
        answer(
            201,
            r#"{"id":"p1","status":"starting","urls":{"get":"http://elsewhere.example/v1/predictions/p1"}}"#,
        )
    })
    .await;
    let req = request(Method::POST, &server.url("/v1/predictions"), "{}");
    let error = jobs(JsonJob::replicate()).oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::CrossOrigin);
    assert_eq!(server.seen().len(), 1, "the POST only");
}

// ---------------------------------------------------------------------------------------------
// A job object too large to judge

/// A Replicate prediction that echoes an `input` of `prompt` bytes, polled at `/v1/predictions/p1`.
fn large_prediction(prompt: usize) -> String {
    serde_json::json!({
        "id": "p1",
        "status": "starting",
        "input": {"prompt": "x".repeat(prompt)},
        "urls": {"get": "/v1/predictions/p1", "cancel": "/v1/predictions/p1/cancel"},
    })
    .to_string()
}

#[tokio::test(start_paused = true)]
async fn a_job_object_over_the_bound_is_refused_with_its_head_and_nothing_is_polled() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, PREDICTIONS, Monitor::ReplicatePrediction)
            .initial_body(large_prediction(4096)),
    );
    let layer = LongRunningLayer::with_dialect(JsonJob::replicate()).max_status_body(1024);
    let error = jobs_under(layer)
        .oneshot(create(&sim, PREDICTIONS))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StatusBodyTooLarge, "{error}");
    assert_eq!(error.status(), Some(StatusCode::CREATED));
    let headers = error.headers().unwrap();
    assert_eq!(headers["content-type"], "application/json");
    assert!(
        headers["content-length"]
            .to_str()
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 4096
    );
    assert!(
        error.body().is_none_or(Bytes::is_empty),
        "refused by its declared length, before reading"
    );
    assert!(error.resume_token().is_none(), "no job was recognised");
    assert_eq!(sim.requests().len(), 1, "the POST, once, and no poll");
}

/// A server whose `POST` answers a large prediction in 1 KiB chunks, without a length, and whose
/// poll says it succeeded.
async fn chunked_prediction_server() -> RawServer {
    RawServer::start_with_body(|_, seen| {
        let (sender, body) = ChannelBody::new();
        let job = match seen.method {
            Method::POST => large_prediction(8192),
            _ => r#"{"id":"p1","status":"succeeded","output":"done"}"#.to_owned(),
        };
        for chunk in Bytes::from(job).chunks(1024) {
            let _ = sender.send(Bytes::copy_from_slice(chunk));
        }
        drop(sender);
        let mut response = http::Response::new(body);
        *response.status_mut() = StatusCode::CREATED;
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        async move { response }
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_chunked_job_object_that_grows_past_the_bound_keeps_what_arrived() {
    let server = chunked_prediction_server().await;
    let layer = LongRunningLayer::with_dialect(JsonJob::replicate()).max_status_body(2048);
    let error = jobs_under(layer)
        .oneshot(request(Method::POST, &server.url("/v1/predictions"), "{}"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::StatusBodyTooLarge, "{error}");
    assert_eq!(error.status(), Some(StatusCode::CREATED));
    let headers = error.headers().unwrap();
    assert_eq!(headers["content-type"], "application/json");
    assert!(!headers.contains_key("content-length"), "chunked");
    let read = error.body().unwrap();
    assert!(read.len() >= 2048, "read up to the bound: {}", read.len());
    assert!(read.starts_with(br#"{"id":"p1""#), "{read:?}");
    assert!(error.resume_token().is_none());
    assert_eq!(server.seen().len(), 1, "the POST, once, and no poll");
}

#[tokio::test(start_paused = true)]
async fn a_large_answer_is_judged_under_a_raised_bound_or_passed_through_unpolled() {
    let server = chunked_prediction_server().await;
    // Raised for an API that echoes large inputs: the job is followed.
    let layer = LongRunningLayer::with_dialect(JsonJob::replicate()).max_status_body(64 * 1024);
    let response = jobs_under(layer)
        .oneshot(request(Method::POST, &server.url("/v1/predictions"), "{}"))
        .await
        .unwrap();
    assert_eq!(info(&response).state.as_deref(), Some("succeeded"));
    assert_eq!(server.seen().len(), 2, "the POST and one poll");
    // A call sent with `Polling::Disabled` is handed back whole and unread, under the bound.
    let layer = LongRunningLayer::with_dialect(JsonJob::replicate()).max_status_body(2048);
    let mut req = request(Method::POST, &server.url("/v1/predictions"), "{}");
    req.extensions_mut().insert(Polling::Disabled);
    let response = jobs_under(layer).oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.extensions().get::<OperationInfo>().is_none());
    assert_eq!(text(response).await, large_prediction(8192));
    assert_eq!(server.seen().len(), 3, "nothing polled");
}

// ---------------------------------------------------------------------------------------------
// Error answers in each API's own shape

#[tokio::test(start_paused = true)]
async fn a_refused_cancel_carries_each_apis_error_code_and_message() {
    let sim = support::simulator().await;
    for (path, monitor) in [
        (BATCHES, Monitor::OpenAiJob),
        (MESSAGE_BATCHES, Monitor::AnthropicBatch),
        (PREDICTIONS, Monitor::ReplicatePrediction),
    ] {
        sim.add(Scenario::new(Method::POST, path, monitor).cancelable(false));
    }
    for (dialect, path, code) in [
        // OpenAI's `code` is null: its `type` speaks.
        (JsonJob::openai(), BATCHES, "not_found_error"),
        (JsonJob::anthropic(), MESSAGE_BATCHES, "not_found_error"),
        // Replicate's problem details: the title is the code, the detail the message.
        (JsonJob::replicate(), PREDICTIONS, "Not Found"),
    ] {
        let service = jobs(dialect);
        let token = accepted(&service, create(&sim, path)).await;
        let error = service.cancel(token).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::CancelUnsupported, "{path}");
        assert_eq!(error.status(), Some(StatusCode::NOT_FOUND), "{path}");
        assert_eq!(error.code(), Some(code), "{path}");
        assert_eq!(
            error.message(),
            Some("this job cannot be canceled"),
            "{path}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_poll_answered_with_problem_details_is_unexpected_with_its_title_and_detail() {
    let server = RawServer::start(|n, _| match n {
        0 => answer(
            201,
            r#"{"id":"p1","status":"starting","urls":{"get":"/v1/predictions/p1"}}"#,
        ),
        _ => support::reply(
            401,
            &[("content-type", "application/problem+json")],
            r#"{"title":"Unauthenticated","detail":"You did not pass a valid authentication token","status":401}"#,
        ),
    })
    .await;
    let req = request(Method::POST, &server.url("/v1/predictions"), "{}");
    let error = jobs(JsonJob::replicate()).oneshot(req).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UnexpectedStatus, "{error}");
    assert_eq!(error.code(), Some("Unauthenticated"));
    assert_eq!(
        error.message(),
        Some("You did not pass a valid authentication token")
    );
    assert_eq!(server.seen().len(), 2);
}
