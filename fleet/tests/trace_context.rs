//! A job's token keeps the W3C trace context of the operation's start from step to step, so a
//! worker with tower-lro's `opentelemetry` feature can link its step spans to the request that
//! started the operation, whatever the workers before it had.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use tower_lro::{LongRunningLayer, Polling, ResumeToken};
use tower_lro_fleet::{FleetBuilder, Store};
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

use support::{client, Recorder, TempDir};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_a_job_keeps_the_trace_context_of_the_start() {
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(
            Method::POST,
            "/vms/traced/start",
            Monitor::AzureAsyncOperation,
        )
        .retry_after(RetryAfter::Millis(20))
        .completes_after_polls(2),
    );
    let accepted = {
        let mut req = Request::post(sim.url("/vms/traced/start"))
            .header("content-type", "application/json")
            .body(Full::<Bytes>::from("{}"))
            .unwrap();
        req.extensions_mut().insert(Polling::AcceptOnly);
        let service = tower::Layer::layer(&LongRunningLayer::new(), client());
        tower::ServiceExt::oneshot(service, req).await.unwrap()
    };
    let token = accepted.extensions().get::<ResumeToken>().unwrap();
    // The context a process with the feature would have captured when it started the operation.
    let mut json: serde_json::Value = serde_json::from_str(&token.to_json()).unwrap();
    json["traceparent"] = TRACEPARENT.into();
    json["tracestate"] = TRACESTATE.into();
    let token = ResumeToken::from_json(&json.to_string()).unwrap();

    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();
    let recorder = Recorder::default();
    let handler = tower::util::BoxCloneSyncService::new(recorder.handler());
    let fleet = FleetBuilder::new(store.clone())
        .fetch_interval(Duration::from_millis(50))
        .build(LongRunningLayer::new(), client(), handler)
        .unwrap();
    fleet.track("traced", token).await.unwrap();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = {
        let fleet = fleet.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            fleet
                .run_worker("a", async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        })
    };
    let records = recorder.wait_for(1, Duration::from_secs(30)).await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(15), worker)
        .await
        .expect("the worker stops")
        .unwrap();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].result, Ok(200), "{:?}", records[0]);

    // Every step's row (apalis keeps the finished ones) holds the same trace context.
    let pool = store.sqlite_pool().unwrap();
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT job FROM Jobs WHERE job_type = ?")
        .bind("tower-lro-fleet")
        .fetch_all(pool)
        .await
        .unwrap();
    let mut steps = Vec::new();
    for (job,) in rows {
        let job: serde_json::Value = serde_json::from_slice(&job).unwrap();
        let token = ResumeToken::from_json(&job["token"].to_string()).unwrap();
        assert_eq!(
            token.traceparent(),
            Some(TRACEPARENT),
            "step {}",
            job["step"]
        );
        assert_eq!(token.tracestate(), Some(TRACESTATE), "step {}", job["step"]);
        steps.push(job["step"].as_u64().unwrap());
    }
    steps.sort_unstable();
    assert!(
        steps.len() >= 2 && steps[0] == 0 && steps[steps.len() - 1] >= 1,
        "the operation went through several steps: {steps:?}"
    );
    assert_eq!(sim.count(&Method::POST, "/vms/traced/start"), 1);
}
