use http::{Method, Request, Uri};

use super::{expand, segment, JsonJob, JsonJobMonitor};
use crate::dialect::table;
use crate::dialect::testing::{self, Recorder};
use crate::dialect::Dialect;

/// The initial body's verdict for a `POST` to `uri`, and what it recorded.
fn initial(dialect: &JsonJob, uri: &str, body: &str) -> (String, Recorder) {
    let request = Request::post(uri).body(()).unwrap();
    let response = testing::response_head(200, &[("content-type", "application/json")]).unwrap();
    let mut seen = Recorder::new();
    let verdict = dialect.initial_body(
        &testing::request_head(&request),
        &response,
        body.as_bytes(),
        None,
        &mut seen.observer(),
    );
    (table::initial_body(&verdict), seen)
}

/// A poll's verdict, and what it recorded.
fn poll(dialect: &JsonJob, body: &str) -> (String, Recorder) {
    let request = Request::post("https://api.example/v1/jobs")
        .body(())
        .unwrap();
    let response = testing::response_head(200, &[("content-type", "application/json")]).unwrap();
    let mut seen = Recorder::new();
    let mut monitor = JsonJobMonitor {
        id: "j1".into(),
        cancel: None,
    };
    let verdict = dialect.status_body(
        &mut monitor,
        &testing::request_head(&request),
        &response,
        body.as_bytes(),
        &mut seen.observer(),
    );
    (table::verdict(&verdict), seen)
}

fn polls(dialect: &JsonJob, rows: &[(&str, &str)]) {
    for (body, expected) in rows {
        assert_eq!(
            poll(dialect, body).0,
            *expected,
            "{} {body}",
            dialect.name()
        );
    }
}

type Headers = &'static [(&'static str, &'static str)];

#[test]
fn initial_heads() {
    let job = JsonJob::new();
    // A body that may be a job object is judged, or refused when it cannot be read whole; one
    // declared to be something else cannot be a job and is never read.
    #[rustfmt::skip]
    let rows: [(Method, u16, Headers, &str); 12] = [
        (Method::POST, 200, &[("content-type", "application/json")], "read, else refuse"),
        (Method::POST, 200, &[("content-type", "application/json; charset=utf-8")], "read, else refuse"),
        (Method::POST, 201, &[("content-type", "application/vnd.acme+json")], "read, else refuse"),
        (Method::POST, 201, &[], "read, else refuse"),
        (Method::POST, 202, &[], "read, else refuse"),
        (Method::PUT, 200, &[], "read, else refuse"),
        (Method::GET, 200, &[], "pass"),
        (Method::HEAD, 200, &[], "pass"),
        (Method::POST, 204, &[], "pass"),
        (Method::POST, 400, &[("content-type", "application/json")], "pass"),
        (Method::POST, 200, &[("content-type", "text/event-stream")], "pass"),
        (Method::POST, 200, &[("content-type", "text/plain")], "pass"),
    ];
    for (method, status, headers, expected) in rows {
        let request = Request::builder()
            .method(method.clone())
            .uri("https://api.example/v1/jobs")
            .body(())
            .unwrap();
        let response = testing::response_head(status, headers).unwrap();
        let verdict = job.initial_head(&testing::request_head(&request), &response);
        assert_eq!(table::initial_head(&verdict), expected, "{method} {status}");
    }
}

#[test]
fn openai() {
    let openai = JsonJob::openai();
    let batches = "https://api.openai.com/v1/batches";
    let (verdict, seen) = initial(
        &openai,
        batches,
        r#"{"id":"batch_abc","object":"batch","status":"validating","request_counts":{"total":0,"completed":0,"failed":0},"metadata":{}}"#,
    );
    assert_eq!(
        verdict,
        r#"follow JsonJobMonitor { id: "batch_abc", cancel: None } from-original /v1/batches/batch_abc"#
    );
    assert_eq!(seen.operation_id(), Some("batch_abc"));
    assert_eq!(seen.state(), Some("validating"));
    assert_eq!(seen.percent_complete(), None, "no requests counted yet");
    for (uri, body, expected) in [
        // Fine-tuning and background responses, polled at their own collections.
        (
            "https://api.openai.com/v1/fine_tuning/jobs",
            r#"{"object":"fine_tuning.job","id":"ftjob-1","status":"validating_files","error":null}"#,
            r#"follow JsonJobMonitor { id: "ftjob-1", cancel: None } from-original /v1/fine_tuning/jobs/ftjob-1"#,
        ),
        (
            "https://api.openai.com/v1/responses/",
            r#"{"id":"resp_1","object":"response","status":"queued","background":true}"#,
            r#"follow JsonJobMonitor { id: "resp_1", cancel: None } from-original /v1/responses/resp_1"#,
        ),
        // Azure OpenAI's api-version travels with the polls.
        (
            "https://r.openai.azure.com/openai/batches?api-version=2024-10-21",
            r#"{"id":"batch_1","object":"batch","status":"validating"}"#,
            r#"follow JsonJobMonitor { id: "batch_1", cancel: None } from-original /openai/batches/batch_1?api-version=2024-10-21"#,
        ),
        // A synchronous response is its own result; a cut-short one is not success.
        (
            "https://api.openai.com/v1/responses",
            r#"{"id":"resp_2","object":"response","status":"completed","output":[]}"#,
            "final",
        ),
        (
            "https://api.openai.com/v1/responses",
            r#"{"id":"resp_3","object":"response","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"}}"#,
            "failed incomplete/max_output_tokens/-",
        ),
        // Other objects are not jobs, whatever their status.
        (
            "https://api.openai.com/v1/files",
            r#"{"id":"file-1","object":"file","status":"uploaded"}"#,
            "final",
        ),
        (
            "https://api.openai.com/v1/chat/completions",
            r#"{"id":"chatcmpl-1","object":"chat.completion","choices":[]}"#,
            "final",
        ),
        ("https://api.openai.com/v1/batches", "not json", "final"),
        // A batch object without an id, or with a state nobody described.
        (
            batches,
            r#"{"object":"batch","status":"validating"}"#,
            "malformed",
        ),
        (
            batches,
            r#"{"id":"batch_1","object":"batch","status":"paused"}"#,
            "malformed",
        ),
    ] {
        assert_eq!(initial(&openai, uri, body).0, expected, "{body}");
    }
    polls(
        &openai,
        &[
            (
                r#"{"id":"batch_1","object":"batch","status":"in_progress"}"#,
                "running",
            ),
            (
                r#"{"id":"batch_1","object":"batch","status":"finalizing","extra":{"new":[1]}}"#,
                "running",
            ),
            (
                r#"{"id":"batch_1","object":"batch","status":"cancelling"}"#,
                "running",
            ),
            (
                r#"{"id":"ftjob-1","object":"fine_tuning.job","status":"running"}"#,
                "running",
            ),
            (
                r#"{"id":"batch_1","object":"batch","status":"completed","output_file_id":"file-2"}"#,
                "done",
            ),
            (
                r#"{"id":"ftjob-1","object":"fine_tuning.job","status":"succeeded"}"#,
                "done",
            ),
            (
                r#"{"id":"batch_1","object":"batch","status":"failed","errors":{"object":"list","data":[{"code":"invalid_json_line","message":"line 3 is not JSON","param":null,"line":3}]}}"#,
                "failed failed/invalid_json_line/line 3 is not JSON",
            ),
            (
                r#"{"id":"ftjob-1","object":"fine_tuning.job","status":"failed","error":{"code":"invalid_training_file","message":"too short","param":"training_file"}}"#,
                "failed failed/invalid_training_file/too short",
            ),
            (
                r#"{"id":"resp_1","object":"response","status":"failed","error":{"code":"server_error","message":"boom"}}"#,
                "failed failed/server_error/boom",
            ),
            (
                r#"{"id":"batch_1","object":"batch","status":"expired","errors":null}"#,
                "failed expired/-/-",
            ),
            (
                r#"{"id":"batch_1","object":"batch","status":"cancelled"}"#,
                "canceled cancelled/-/-",
            ),
            (
                r#"{"id":"batch_1","object":"batch","status":"canceled"}"#,
                "malformed",
            ),
            (
                r#"{"id":"batch_1","object":"batch","status":"Completed"}"#,
                "malformed",
            ),
            (r#"{"id":"batch_1","object":"batch"}"#, "malformed"),
            (
                r#"{"id":"batch_1","object":"batch","status":null}"#,
                "malformed",
            ),
            (
                r#"{"id":"batch_1","object":"batch","status":3}"#,
                "malformed",
            ),
            ("", "malformed"),
            ("[]", "malformed"),
        ],
    );
    let (_, seen) = poll(&openai, r#"{"object":"batch","status":"in_progress"}"#);
    assert_eq!(seen.operation_id(), Some("j1"), "the monitor's id");
    let (_, seen) = poll(
        &openai,
        r#"{"id":"batch_1","object":"batch","status":"in_progress","request_counts":{"total":40,"completed":10,"failed":1}}"#,
    );
    assert_eq!(seen.percent_complete(), Some(25.0));
    // A progress of the wrong type is absent, not an error.
    let (verdict, seen) = poll(
        &openai,
        r#"{"id":"batch_1","object":"batch","status":"in_progress","request_counts":{"total":"40","completed":10}}"#,
    );
    assert_eq!(
        (verdict.as_str(), seen.percent_complete()),
        ("running", None)
    );
}

#[test]
fn anthropic() {
    let anthropic = JsonJob::anthropic();
    let batches = "https://api.anthropic.com/v1/messages/batches";
    let running = r#"{"id":"msgbatch_01","type":"message_batch","processing_status":"in_progress","request_counts":{"processing":2,"succeeded":0,"errored":0,"canceled":0,"expired":0},"ended_at":null,"cancel_initiated_at":null,"results_url":null}"#;
    let (verdict, seen) = initial(&anthropic, batches, running);
    assert_eq!(
        verdict,
        r#"follow JsonJobMonitor { id: "msgbatch_01", cancel: None } from-original /v1/messages/batches/msgbatch_01"#
    );
    assert_eq!(seen.state(), Some("in_progress"));
    for (body, expected) in [
        // A message is not a batch.
        (r#"{"id":"msg_1","type":"message","content":[]}"#, "final"),
        (
            r#"{"type":"message_batch","processing_status":"in_progress"}"#,
            "malformed",
        ),
        (
            r#"{"id":"msgbatch_01","type":"message_batch","processing_status":"failed"}"#,
            "malformed",
        ),
        // Already ended: canceled, or the result.
        (
            r#"{"id":"msgbatch_01","type":"message_batch","processing_status":"ended","cancel_initiated_at":"2024-08-20T18:37:24Z"}"#,
            "canceled ended/-/-",
        ),
        (
            r#"{"id":"msgbatch_01","type":"message_batch","processing_status":"ended","cancel_initiated_at":null}"#,
            "final",
        ),
    ] {
        assert_eq!(initial(&anthropic, batches, body).0, expected, "{body}");
    }
    polls(
        &anthropic,
        &[
            (running, "running"),
            (
                r#"{"id":"msgbatch_01","type":"message_batch","processing_status":"canceling","cancel_initiated_at":"2024-08-20T18:37:24Z"}"#,
                "running",
            ),
            // Ended, whatever each request did: the batch object is the result.
            (
                r#"{"id":"msgbatch_01","type":"message_batch","processing_status":"ended","request_counts":{"processing":0,"succeeded":1,"errored":1,"canceled":0,"expired":0},"results_url":"https://api.anthropic.com/v1/messages/batches/msgbatch_01/results"}"#,
                "done",
            ),
            (
                r#"{"id":"msgbatch_01","type":"message_batch","processing_status":"ended","cancel_initiated_at":null,"ended_at":"2024-08-21T18:37:24Z"}"#,
                "done",
            ),
            // Ended after a cancel: canceled, whatever its requests did.
            (
                r#"{"id":"msgbatch_01","type":"message_batch","processing_status":"ended","request_counts":{"processing":0,"succeeded":1,"errored":0,"canceled":1,"expired":0},"cancel_initiated_at":"2024-08-20T18:37:24Z"}"#,
                "canceled ended/-/-",
            ),
            // Set is set: whatever the API puts there but `null`.
            (
                r#"{"id":"msgbatch_01","type":"message_batch","processing_status":"ended","cancel_initiated_at":""}"#,
                "canceled ended/-/-",
            ),
            (
                r#"{"id":"msgbatch_01","type":"message_batch","processing_status":"failed"}"#,
                "malformed",
            ),
            (
                r#"{"id":"msgbatch_01","type":"message_batch","status":"ended"}"#,
                "malformed",
            ),
        ],
    );
}

#[test]
fn replicate() {
    let replicate = JsonJob::replicate();
    let starting = r#"{"id":"gm3q","model":"m","version":"v","input":{"prompt":"p"},"logs":"","output":null,"error":null,"status":"starting","urls":{"get":"https://api.replicate.com/v1/predictions/gm3q","cancel":"https://api.replicate.com/v1/predictions/gm3q/cancel","stream":"https://stream.replicate.com/v1/files/x"}}"#;
    let (verdict, seen) = initial(
        &replicate,
        "https://api.replicate.com/v1/models/o/m/predictions",
        starting,
    );
    assert_eq!(
        verdict,
        r#"follow JsonJobMonitor { id: "gm3q", cancel: Some("https://api.replicate.com/v1/predictions/gm3q/cancel") } ref https://api.replicate.com/v1/predictions/gm3q"#
    );
    assert_eq!(seen.operation_id(), Some("gm3q"));
    let predictions = "https://api.replicate.com/v1/predictions";
    for (body, expected) in [
        // `Prefer: wait` may answer with the finished prediction.
        (
            r#"{"id":"p1","status":"succeeded","output":["https://replicate.delivery/x.png"],"urls":{"get":"g"}}"#,
            "final",
        ),
        (
            r#"{"id":"p1","status":"failed","error":"CUDA out of memory","urls":{"get":"g"}}"#,
            "failed failed/-/CUDA out of memory",
        ),
        (
            r#"{"id":"p1","status":"canceled","error":null,"urls":{"get":"g"}}"#,
            "canceled canceled/-/-",
        ),
        // No URL to poll where the description says it is, no id, an unknown state.
        (r#"{"id":"p1","status":"starting","urls":{}}"#, "malformed"),
        (
            r#"{"id":"p1","status":"starting","urls":{"get":""}}"#,
            "malformed",
        ),
        (r#"{"status":"starting","urls":{"get":"g"}}"#, "malformed"),
        (
            r#"{"id":"","status":"starting","urls":{"get":"g"}}"#,
            "malformed",
        ),
        (
            r#"{"id":{"x":1},"status":"starting","urls":{"get":"g"}}"#,
            "malformed",
        ),
        // Interrupted before completion (a `Cancel-After` deadline).
        (
            r#"{"id":"p1","status":"aborted","error":null,"urls":{"get":"g"}}"#,
            "canceled aborted/-/-",
        ),
        (
            r#"{"id":"p1","status":"timed_out","urls":{"get":"g"}}"#,
            "malformed",
        ),
        // A model, not a prediction: no state.
        (r#"{"owner":"o","name":"m","visibility":"public"}"#, "final"),
    ] {
        assert_eq!(initial(&replicate, predictions, body).0, expected, "{body}");
    }
    // Without a cancel URL, the job cannot be canceled; it is still followed.
    let (verdict, _) = initial(
        &replicate,
        predictions,
        r#"{"id":7,"status":"processing","urls":{"get":"/v1/predictions/7"}}"#,
    );
    assert_eq!(
        verdict,
        r#"follow JsonJobMonitor { id: "7", cancel: None } ref /v1/predictions/7"#
    );
    polls(
        &replicate,
        &[
            (
                r#"{"id":"p1","status":"processing","logs":"step 1"}"#,
                "running",
            ),
            (r#"{"id":"p1","status":"succeeded","output":"x"}"#, "done"),
            (
                r#"{"id":"p1","status":"failed","error":"bad input"}"#,
                "failed failed/-/bad input",
            ),
            (
                r#"{"id":"p1","status":"failed","error":{"detail":"structured"}}"#,
                "failed failed/-/-",
            ),
            (
                r#"{"id":"p1","status":"canceled"}"#,
                "canceled canceled/-/-",
            ),
            (r#"{"id":"p1","status":"aborted"}"#, "canceled aborted/-/-"),
            (r#"{"id":"p1","status":"cancelled"}"#, "malformed"),
        ],
    );
}

#[test]
fn a_succeeded_state_with_its_cancel_member_set_is_canceled() {
    let batches = JsonJob::builder("acme-batch")
        .running(["running"])
        .succeeded(["ended"])
        .failed(["broken"])
        .canceled_when_set("/canceled/at")
        .result_at("/result")
        .build()
        .unwrap();
    polls(
        &batches,
        &[
            // Canceled before its result is fetched: no result to fetch.
            (
                r#"{"status":"ended","canceled":{"at":1724178000},"result":"/r","error":{"code":"by_user","message":"asked"}}"#,
                "canceled ended/by_user/asked",
            ),
            (
                r#"{"status":"ended","canceled":{"at":false}}"#,
                "canceled ended/-/-",
            ),
            (
                r#"{"status":"ended","canceled":{"at":null},"result":"/r"}"#,
                "fetch ref /r",
            ),
            (
                r#"{"status":"ended","canceled":{},"result":"/r"}"#,
                "fetch ref /r",
            ),
            (
                r#"{"status":"ended","canceled":"yes","result":"/r"}"#,
                "fetch ref /r",
            ),
            // Only a succeeded state is read that way.
            (r#"{"status":"running","canceled":{"at":1}}"#, "running"),
            (
                r#"{"status":"broken","canceled":{"at":1}}"#,
                "failed broken/-/-",
            ),
        ],
    );
    // Without the rule, a set member changes nothing.
    polls(
        &JsonJob::new(),
        &[(
            r#"{"status":"completed","cancel_initiated_at":"2024-08-20T18:37:24Z"}"#,
            "done",
        )],
    );
}

#[test]
fn generic_and_configured() {
    let job = JsonJob::new();
    assert_eq!(job.name(), "json-job");
    assert_eq!(
        initial(
            &job,
            "https://jobs.example/jobs",
            r#"{"id":"a b/c","status":"queued"}"#
        )
        .0,
        r#"follow JsonJobMonitor { id: "a b/c", cancel: None } from-original /jobs/a%20b%2Fc"#,
        "the id is one segment"
    );
    for id in [r#"".""#, r#""..""#] {
        let body = format!(r#"{{"id":{id},"status":"queued"}}"#);
        assert_eq!(
            initial(&job, "https://jobs.example/jobs", &body).0,
            "malformed",
            "{id}"
        );
    }
    polls(
        &job,
        &[
            (r#"{"status":"running","progress":5}"#, "running"),
            (r#"{"status":"completed"}"#, "done"),
            (
                r#"{"status":"failed","error":{"code":42,"message":"no"}}"#,
                "failed failed/42/no",
            ),
            (
                r#"{"status":"failed","error":"plain"}"#,
                "failed failed/-/plain",
            ),
            (
                r#"{"status":"failed","error":{"code":" ","message":""}}"#,
                "failed failed/-/-",
            ),
            (r#"{"status":"weird"}"#, "malformed"),
        ],
    );

    let exports = JsonJob::builder("acme-export")
        .kind("/kind", ["export"])
        .id("/job/ref")
        .state("/job/phase")
        .running(["queued", "working"])
        .succeeded(["done"])
        .failed(["error"])
        .canceled(["aborted"])
        .error_code(["/job/problem/kind"])
        .error_message(["/job/problem/detail"])
        .progress("/job/percent")
        .poll_path("/v2/export-jobs/{id}")
        .cancel_path("{poll}:abort")
        .result_at("/links/result")
        .build()
        .unwrap();
    let (verdict, seen) = initial(
        &exports,
        "https://acme.example/v2/exports?region=eu",
        r#"{"kind":"export","job":{"ref":"e-1","phase":"working","percent":12.5}}"#,
    );
    assert_eq!(
        verdict,
        r#"follow JsonJobMonitor { id: "e-1", cancel: None } from-original /v2/export-jobs/e-1?region=eu"#
    );
    assert_eq!(seen.percent_complete(), Some(12.5));
    // Succeeded at once, with a result to fetch: polled once, so the result is fetched as it is
    // for any job.
    assert_eq!(
        initial(
            &exports,
            "https://acme.example/v2/exports",
            r#"{"kind":"export","job":{"ref":"e-1","phase":"done"},"links":{"result":"/r/1"}}"#,
        )
        .0,
        r#"follow JsonJobMonitor { id: "e-1", cancel: None } from-original /v2/export-jobs/e-1"#
    );
    assert_eq!(
        initial(
            &exports,
            "https://acme.example/v2/exports",
            r#"{"kind":"import","job":{"ref":"e-1","phase":"working"}}"#
        )
        .0,
        "final",
        "another kind"
    );
    polls(
        &exports,
        &[
            (r#"{"job":{"phase":"working"}}"#, "running"),
            (
                r#"{"job":{"phase":"done"},"links":{"result":"/results/e-1"}}"#,
                "fetch ref /results/e-1",
            ),
            (r#"{"job":{"phase":"done"},"links":{}}"#, "malformed"),
            (
                r#"{"job":{"phase":"error","problem":{"kind":"quota","detail":"over quota"}}}"#,
                "failed error/quota/over quota",
            ),
            (r#"{"job":{"phase":"aborted"}}"#, "canceled aborted/-/-"),
            (r#"{"job":{"phase":"done"}"#, "malformed"),
        ],
    );
    let monitor = JsonJobMonitor {
        id: "e-1".into(),
        cancel: None,
    };
    let polled: Uri = "https://acme.example/v2/export-jobs/e-1?region=eu"
        .parse()
        .unwrap();
    let cancel = exports.cancel(&monitor, &polled).unwrap();
    assert_eq!(
        (cancel.method(), cancel.url(), cancel.body()),
        (&Method::POST, "/v2/export-jobs/e-1:abort?region=eu", "")
    );
}

#[test]
fn cancels() {
    let polled: Uri = "https://api.openai.com/v1/batches/batch_1".parse().unwrap();
    let monitor = JsonJobMonitor {
        id: "batch_1".into(),
        cancel: None,
    };
    for dialect in [JsonJob::openai(), JsonJob::anthropic(), JsonJob::new()] {
        let cancel = dialect.cancel(&monitor, &polled).unwrap();
        assert_eq!(cancel.method(), Method::POST);
        assert_eq!(cancel.url(), "/v1/batches/batch_1/cancel");
        assert_eq!(cancel.body(), "");
    }
    let replicate = JsonJob::replicate();
    assert!(replicate.cancel(&monitor, &polled).is_none(), "none named");
    let named = JsonJobMonitor {
        id: "p".into(),
        cancel: Some("https://api.replicate.com/v1/predictions/p/cancel".into()),
    };
    assert_eq!(
        replicate.cancel(&named, &polled).unwrap().url(),
        "https://api.replicate.com/v1/predictions/p/cancel"
    );
    let none = JsonJob::builder("x")
        .running(["r"])
        .succeeded(["s"])
        .no_cancel()
        .build()
        .unwrap();
    assert!(none.cancel(&monitor, &polled).is_none());
    // A token edited to a dot-segment id never becomes a cancel of the collection.
    let edited = JsonJobMonitor {
        id: "..".into(),
        cancel: None,
    };
    assert!(JsonJob::openai().cancel(&edited, &polled).is_none());
}

#[test]
fn monitors_round_trip_through_json() {
    let named = JsonJobMonitor {
        id: "p".into(),
        cancel: Some("https://api.replicate.com/v1/predictions/p/cancel".into()),
    };
    let json = serde_json::to_string(&named).unwrap();
    assert_eq!(
        serde_json::from_str::<JsonJobMonitor>(&json).unwrap(),
        named
    );
    assert_eq!(
        serde_json::to_string(&JsonJobMonitor {
            id: "b".into(),
            cancel: None
        })
        .unwrap(),
        r#"{"id":"b"}"#
    );
}

#[test]
fn presets_are_valid_descriptions() {
    for preset in [
        JsonJob::new(),
        JsonJob::openai(),
        JsonJob::anthropic(),
        JsonJob::replicate(),
    ] {
        assert_eq!(preset.rules.check(preset.name), Ok(()), "{}", preset.name);
    }
}

#[test]
fn templates_and_segments() {
    assert_eq!(expand("{path}/{id}", "/v1/b", "x"), "/v1/b/x");
    assert_eq!(expand("{poll}/cancel", "/v1/b/x", "x"), "/v1/b/x/cancel");
    assert_eq!(expand("/a/{id}/{other}", "/p", "x"), "/a/x/{other}");
    assert_eq!(
        expand("{path}/{id}", "/odd{id}", "x"),
        "/odd{id}/x",
        "one pass"
    );
    assert_eq!(segment("AZaz09-._~").unwrap(), "AZaz09-._~");
    assert_eq!(segment("a?b#c/d%é").unwrap(), "a%3Fb%23c%2Fd%25%C3%A9");
    assert!(segment("..").is_err());
}

#[test]
fn error_details() {
    let detail = |headers: &http::HeaderMap, body: Option<&str>| {
        let detail = JsonJob::new().error_detail(headers, body.map(str::as_bytes));
        format!(
            "{}/{}",
            detail.code.as_deref().unwrap_or("-"),
            detail.message.as_deref().unwrap_or("-")
        )
    };
    let none = http::HeaderMap::new();
    #[rustfmt::skip]
    let rows: &[(&str, &str)] = &[
        // The default envelope first, whole.
        (r#"{"error":{"code":"Conflict","message":"taken"}}"#, "Conflict/taken"),
        (r#"{"code":"Conflict","message":"taken"}"#, "Conflict/taken"),
        (r#"{"error":{"code":"Conflict","type":"other","message":"m"},"title":"T"}"#, "Conflict/m"),
        // Anthropic: the error's type is the code.
        (r#"{"type":"error","error":{"type":"not_found_error","message":"no such batch"}}"#, "not_found_error/no such batch"),
        // OpenAI: a null code leaves the type to speak.
        (r#"{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}"#, "invalid_request_error/bad"),
        // Replicate's problem details: title and detail.
        (r#"{"title":"Invalid version or not permitted","detail":"The specified version does not exist","status":422}"#, "Invalid version or not permitted/The specified version does not exist"),
        (r#"{"detail":"Not found."}"#, "-/Not found."),
        (r#"{"title":"Unauthenticated"}"#, "Unauthenticated/-"),
        // The envelope's message kept, the code filled from the problem's title.
        (r#"{"message":"m","title":"T"}"#, "T/m"),
        // Of the wrong type, blank, or not JSON: nothing.
        (r#"{"detail":[{"loc":["body"],"msg":"field required"}]}"#, "-/-"),
        (r#"{"type":"error","error":{"type":" ","message":""}}"#, "-/-"),
        (r#"{"title":7,"detail":null}"#, "-/-"),
        (r#"{"error":"plain"}"#, "-/-"),
        ("<html>502</html>", "-/-"),
        ("", "-/-"),
    ];
    for (body, expected) in rows {
        assert_eq!(detail(&none, Some(body)), *expected, "{body}");
    }
    assert_eq!(detail(&none, None), "-/-");
    // The header speaks last, as by default.
    let mut headers = http::HeaderMap::new();
    headers.insert("x-ms-error-code", "FromHeader".parse().unwrap());
    assert_eq!(detail(&headers, Some(r#"{"detail":"d"}"#)), "FromHeader/d");
    assert_eq!(
        detail(&headers, Some(r#"{"title":"T","detail":"d"}"#)),
        "T/d"
    );
}

#[test]
fn a_call_about_a_job_the_api_has_is_its_answer_not_a_new_job() {
    let cancelling = r#"{"id":"batch_1","object":"batch","status":"cancelling"}"#;
    let openai = JsonJob::openai();
    for (uri, expected) in [
        ("https://api.example/v1/batches", "follow"),
        ("https://api.example/v1/batches/batch_1/cancel", "final"),
        ("https://api.example/v1/batches/batch_1", "final"),
    ] {
        let (verdict, _) = initial(&openai, uri, cancelling);
        assert!(verdict.starts_with(expected), "{uri}: {verdict}");
    }
    let anthropic = JsonJob::anthropic();
    let canceling = r#"{"id":"msgbatch_1","type":"message_batch","processing_status":"canceling"}"#;
    let (verdict, _) = initial(
        &anthropic,
        "https://api.example/v1/messages/batches/msgbatch_1/cancel",
        canceling,
    );
    assert_eq!(verdict, "final");
    // An id that needs encoding is recognised encoded too.
    let job = JsonJob::new();
    let (verdict, _) = initial(
        &job,
        "https://api.example/v1/jobs/a%20b/retry",
        r#"{"id":"a b","status":"queued"}"#,
    );
    assert_eq!(verdict, "final");
}
