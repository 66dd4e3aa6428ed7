//! Job APIs: `POST` answers with a job object `{id, status}` and no monitor header; the job is
//! polled at a URL built from its id (OpenAI, Anthropic) or named in the object (Replicate).
//! Written from the OpenAI API reference (Batch, fine-tuning, background responses), Anthropic's
//! Message Batches documentation and Replicate's predictions HTTP API.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Map, Value};

use crate::instance::{insert, json, Instance};
use crate::scenario::{Completion, Ending, Monitor};
use crate::server::Route;

pub(crate) fn is_job(monitor: Monitor) -> bool {
    matches!(
        monitor,
        Monitor::OpenAiJob | Monitor::AnthropicBatch | Monitor::ReplicatePrediction
    )
}

/// The state a job API reports while running, for a job monitor.
pub(crate) fn running_status(monitor: Monitor) -> Option<&'static str> {
    match monitor {
        Monitor::OpenAiJob | Monitor::AnthropicBatch => Some("in_progress"),
        Monitor::ReplicatePrediction => Some("processing"),
        _ => None,
    }
}

/// Which OpenAI object a collection path creates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OpenAi {
    Batch,
    FineTuning,
    Response,
}

fn openai(instance: &Instance) -> OpenAi {
    let path = instance.scenario.path.trim_end_matches('/');
    if path.ends_with("/fine_tuning/jobs") {
        OpenAi::FineTuning
    } else if path.ends_with("/responses") {
        OpenAi::Response
    } else {
        OpenAi::Batch
    }
}

fn id(instance: &Instance) -> String {
    let n = instance.id;
    match instance.scenario.monitor {
        Monitor::AnthropicBatch => format!("msgbatch_{n:04}"),
        Monitor::ReplicatePrediction => format!("pred{n:04}"),
        _ => match openai(instance) {
            OpenAi::Batch => format!("batch_{n:04}"),
            OpenAi::FineTuning => format!("ftjob-{n:04}"),
            OpenAi::Response => format!("resp_{n:04}"),
        },
    }
}

/// The job's own path: where it is polled.
fn job_path(instance: &Instance) -> String {
    match instance.scenario.monitor {
        Monitor::ReplicatePrediction => format!("/v1/predictions/{}", id(instance)),
        _ => format!(
            "{}/{}",
            instance.scenario.path.trim_end_matches('/'),
            id(instance)
        ),
    }
}

/// The paths the job answers on besides the collection: the job, its cancel, its results.
pub(crate) fn routes(instance: &Instance) -> Vec<(String, Route)> {
    let job = job_path(instance);
    let mut routes = vec![
        (format!("{job}/cancel"), Route::Cancel),
        (job.clone(), Route::Monitor),
    ];
    if instance.scenario.monitor == Monitor::AnthropicBatch {
        routes.push((format!("{job}/results"), Route::Result));
    }
    routes
}

pub(crate) fn initial(instance: &Instance) -> Response<Full<Bytes>> {
    let scenario = &instance.scenario;
    let default_status = match scenario.monitor {
        Monitor::ReplicatePrediction => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    let status = scenario.initial_status.unwrap_or(default_status);
    let body = match &scenario.initial_body {
        Some(body) => body.clone(),
        None => {
            let first = match scenario.monitor {
                Monitor::AnthropicBatch => "in_progress",
                Monitor::ReplicatePrediction => "starting",
                _ => match openai(instance) {
                    OpenAi::Batch => "validating",
                    OpenAi::FineTuning => "validating_files",
                    OpenAi::Response => "queued",
                },
            };
            object(instance, Phase::Running(first)).to_string()
        }
    };
    let mut response = json(status, body);
    instance.hint(&mut response);
    response
}

pub(crate) fn answer(instance: &mut Instance, route: Route) -> Response<Full<Bytes>> {
    match route {
        Route::Cancel => cancel(instance),
        Route::Result => {
            let mut response = json(StatusCode::OK, results(instance));
            insert(&mut response, CONTENT_TYPE, "application/x-jsonl");
            response
        }
        Route::Monitor | Route::Resource => {
            let running = instance.advance();
            let phase = if running {
                Phase::Running(&instance.scenario.running_status)
            } else {
                Phase::Ended
            };
            let mut response = json(StatusCode::OK, object(instance, phase).to_string());
            if running {
                instance.hint(&mut response);
            }
            response
        }
    }
}

/// Where a job is: running (in this state), canceling, or ended by its ending.
enum Phase<'a> {
    Running(&'a str),
    Canceling,
    Ended,
}

/// Whether the job has reached its ending (without counting a poll).
fn ended(instance: &Instance) -> bool {
    instance.canceled
        || match instance.scenario.completion {
            Completion::AfterPolls(polls) => instance.running_answers >= polls,
            Completion::AfterTime(duration) => instance.started.elapsed() >= duration,
        }
}

fn cancel(instance: &mut Instance) -> Response<Full<Bytes>> {
    let scenario = instance.scenario.clone();
    if !scenario.cancelable {
        return error(
            scenario.monitor,
            StatusCode::NOT_FOUND,
            "not_found_error",
            "this job cannot be canceled",
        );
    }
    if ended(instance) {
        return error(
            scenario.monitor,
            StatusCode::CONFLICT,
            "invalid_request_error",
            "the job has already ended",
        );
    }
    instance.canceled = !scenario.completes_when_canceled;
    // Each API answers a cancel with the job object, on its way to canceled.
    let phase = match scenario.monitor {
        Monitor::ReplicatePrediction if instance.canceled => Phase::Ended,
        _ if instance.canceled => Phase::Canceling,
        _ => Phase::Running(&scenario.running_status),
    };
    json(StatusCode::OK, object(instance, phase).to_string())
}

/// An error answer in the API's own shape: OpenAI's `{"error": {"message", "type", "param",
/// "code"}}`, Anthropic's `{"type": "error", "error": {"type", "message"}}`, Replicate's RFC 9457
/// problem details `{"title", "detail", "status"}` (the title is the status's reason phrase).
fn error(monitor: Monitor, status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    match monitor {
        Monitor::AnthropicBatch => json(
            status,
            json!({"type": "error", "error": {"type": kind, "message": message}}).to_string(),
        ),
        Monitor::ReplicatePrediction => {
            let title = status.canonical_reason().unwrap_or("Error");
            let mut response = json(
                status,
                json!({"title": title, "detail": message, "status": status.as_u16()}).to_string(),
            );
            insert(&mut response, CONTENT_TYPE, "application/problem+json");
            response
        }
        _ => json(
            status,
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
                .to_string(),
        ),
    }
}

/// The state an ended job reports: the scenario's spelling, else its API's word for the ending.
fn terminal_state(instance: &Instance) -> String {
    if let (Some(state), false) = (&instance.scenario.terminal_status, instance.canceled) {
        return state.clone();
    }
    let ending = instance.ending();
    match instance.scenario.monitor {
        Monitor::AnthropicBatch => "ended",
        Monitor::ReplicatePrediction => match ending {
            Ending::Succeeded => "succeeded",
            Ending::Failed { .. } => "failed",
            Ending::Canceled => "canceled",
        },
        _ => match (ending, openai(instance)) {
            (Ending::Succeeded, OpenAi::FineTuning) => "succeeded",
            (Ending::Succeeded, _) => "completed",
            (Ending::Failed { .. }, _) => "failed",
            (Ending::Canceled, _) => "cancelled",
        },
    }
    .into()
}

fn object(instance: &Instance, phase: Phase<'_>) -> Value {
    let mut job = match instance.scenario.monitor {
        Monitor::AnthropicBatch => anthropic(instance, &phase),
        Monitor::ReplicatePrediction => replicate(instance, &phase),
        _ => openai_object(instance, &phase),
    };
    let state_key = match instance.scenario.monitor {
        Monitor::AnthropicBatch => "processing_status",
        _ => "status",
    };
    let state = match phase {
        Phase::Running(state) => state.to_owned(),
        Phase::Canceling if instance.scenario.monitor == Monitor::AnthropicBatch => {
            "canceling".into()
        }
        Phase::Canceling => match openai(instance) {
            OpenAi::Batch => "cancelling".into(),
            _ => "cancelled".into(),
        },
        Phase::Ended => terminal_state(instance),
    };
    job.insert(state_key.into(), Value::from(state));
    Value::Object(job)
}

/// `done` of 100, rising with each poll.
fn done_of_100(instance: &Instance, phase: &Phase<'_>) -> u64 {
    match phase {
        Phase::Ended => 100,
        // Whole requests of 100: the fraction is at most 1.
        _ => instance.percent().clamp(0.0, 100.0) as u64,
    }
}

fn openai_object(instance: &Instance, phase: &Phase<'_>) -> Map<String, Value> {
    let kind = openai(instance);
    let object = match kind {
        OpenAi::Batch => "batch",
        OpenAi::FineTuning => "fine_tuning.job",
        OpenAi::Response => "response",
    };
    let mut job = Map::new();
    job.insert("id".into(), id(instance).into());
    job.insert("object".into(), object.into());
    job.insert("created_at".into(), 1_711_471_533.into());
    job.insert("metadata".into(), json!({}));
    if kind == OpenAi::Batch {
        job.insert("endpoint".into(), "/v1/chat/completions".into());
        job.insert("completion_window".into(), "24h".into());
        if instance.scenario.percent_complete {
            let done = done_of_100(instance, phase);
            job.insert(
                "request_counts".into(),
                json!({"total": 100, "completed": done, "failed": 0}),
            );
        }
    }
    let ended = matches!(phase, Phase::Ended);
    let ending = instance.ending();
    let mut error = Value::Null;
    if let (true, Ending::Failed { code, message }) = (ended, &ending) {
        let detail = json!({"code": code, "message": message, "param": null});
        if kind == OpenAi::Batch {
            job.insert(
                "errors".into(),
                json!({"object": "list", "data": [{"code": code, "message": message, "param": null, "line": null}]}),
            );
        } else {
            error = detail;
        }
    }
    if kind != OpenAi::Batch {
        job.insert("error".into(), error);
    }
    if ended && ending == Ending::Succeeded && instance.scenario.terminal_status.is_none() {
        match kind {
            OpenAi::Batch => {
                job.insert(
                    "output_file_id".into(),
                    format!("file-{}", instance.id).into(),
                );
            }
            OpenAi::FineTuning => {
                job.insert(
                    "fine_tuned_model".into(),
                    format!("ft:gpt-4o-mini:sim::{}", instance.id).into(),
                );
            }
            OpenAi::Response => {
                job.insert("output".into(), output(instance));
            }
        }
    }
    job
}

fn anthropic(instance: &Instance, phase: &Phase<'_>) -> Map<String, Value> {
    let ended = matches!(phase, Phase::Ended);
    let canceling = instance.canceled;
    let total = 100;
    let (processing, settled) = if ended {
        (0, total)
    } else if instance.scenario.percent_complete {
        let done = done_of_100(instance, phase);
        (total - done, done)
    } else {
        (total, 0)
    };
    let mut counts = json!({"processing": processing, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0});
    let bucket = match instance.ending() {
        _ if canceling && ended => "canceled",
        Ending::Failed { .. } if ended => "errored",
        _ => "succeeded",
    };
    counts[bucket] = settled.into();
    let job_url = instance.url(&job_path(instance), "");
    let mut job = Map::new();
    job.insert("id".into(), id(instance).into());
    job.insert("type".into(), "message_batch".into());
    job.insert("request_counts".into(), counts);
    job.insert("created_at".into(), "2024-08-20T18:37:24.100435Z".into());
    job.insert("expires_at".into(), "2024-08-21T18:37:24.100435Z".into());
    job.insert(
        "ended_at".into(),
        if ended {
            "2024-08-20T19:37:24.100435Z".into()
        } else {
            Value::Null
        },
    );
    job.insert(
        "cancel_initiated_at".into(),
        if canceling {
            "2024-08-20T18:40:00.000000Z".into()
        } else {
            Value::Null
        },
    );
    job.insert(
        "results_url".into(),
        if ended {
            format!("{job_url}/results").into()
        } else {
            Value::Null
        },
    );
    job
}

fn replicate(instance: &Instance, phase: &Phase<'_>) -> Map<String, Value> {
    let job_url = instance.url(&job_path(instance), "");
    let ended = matches!(phase, Phase::Ended);
    let ending = instance.ending();
    let mut job = Map::new();
    job.insert("id".into(), id(instance).into());
    job.insert("model".into(), "sim/model".into());
    job.insert(
        "version".into(),
        "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa".into(),
    );
    job.insert("input".into(), json!({"prompt": "a simulated prompt"}));
    job.insert("logs".into(), "".into());
    job.insert(
        "output".into(),
        if ended && ending == Ending::Succeeded {
            output(instance)
        } else {
            Value::Null
        },
    );
    job.insert(
        "error".into(),
        match (&ending, ended) {
            (Ending::Failed { message, .. }, true) => message.as_str().into(),
            _ => Value::Null,
        },
    );
    job.insert("created_at".into(), "2024-08-20T18:37:24.100435Z".into());
    job.insert(
        "urls".into(),
        json!({"get": job_url, "cancel": format!("{job_url}/cancel"), "web": format!("https://replicate.example/p/{}", id(instance))}),
    );
    job
}

/// What a succeeded job produced: the scenario's resource body when it is JSON, else a default.
fn output(instance: &Instance) -> Value {
    instance
        .scenario
        .resource_body
        .as_deref()
        .and_then(|body| serde_json::from_str(body).ok())
        .unwrap_or_else(|| {
            json!(format!(
                "https://replicate.example/output/{}.png",
                id(instance)
            ))
        })
}

/// An Anthropic batch's results: one JSON line per request.
fn results(instance: &Instance) -> String {
    let id = id(instance);
    (1..=2)
        .map(|n| {
            json!({"custom_id": format!("{id}-request-{n}"), "result": {"type": "succeeded", "message": {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "simulated"}]}}})
                .to_string()
                + "\n"
        })
        .collect()
}
