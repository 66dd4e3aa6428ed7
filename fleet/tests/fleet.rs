//! The fleet on its real engines: SQLite in a temporary file and PostgreSQL 15 started from the
//! machine's binaries, stepping operations against the simulator over loopback, on the real
//! clock.

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use tower_lro::{Azure, Dialect, ErrorKind, Google, LongRunningLayer, ResumeToken};
use tower_lro_fleet::{Fleet, FleetBuilder, Started, Store};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

use support::{client, Postgres, Record, Recorder, TempDir};

/// Settings for tests: a two-second lease, quick fetches and retries.
fn quick(store: Store) -> FleetBuilder {
    FleetBuilder::new(store)
        .heartbeat(Duration::from_secs(1))
        .missed_heartbeats(2)
        .fetch_interval(Duration::from_millis(50))
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(400))
        .restart_delay(Duration::from_millis(200))
}

type TestFleet<D = Azure> = Fleet<support::HttpClient, HandlerOf, Full<Bytes>, D>;
type HandlerOf = tower::util::BoxCloneSyncService<
    tower_lro_fleet::Delivery<hyper::body::Incoming>,
    (),
    support::BoxError,
>;

fn fleet<D: Dialect>(
    builder: FleetBuilder,
    layer: LongRunningLayer<D>,
    recorder: &Recorder,
) -> TestFleet<D> {
    let handler = tower::util::BoxCloneSyncService::new(recorder.handler());
    builder.build(layer, client(), handler).unwrap()
}

/// Workers `names` of `fleet`, stopped gracefully when the returned sender is dropped or sent to.
fn spawn_workers<D: Dialect>(
    fleet: &TestFleet<D>,
    names: &[&str],
) -> (
    tokio::sync::watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handles = names
        .iter()
        .map(|name| {
            let fleet = fleet.clone();
            let name = name.to_string();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                fleet
                    .run_worker(name, async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            })
        })
        .collect();
    (stop, handles)
}

async fn stop_workers(
    stop: tokio::sync::watch::Sender<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
) {
    stop.send(true).unwrap();
    for handle in handles {
        tokio::time::timeout(Duration::from_secs(15), handle)
            .await
            .expect("a worker did not stop within 15 s")
            .unwrap();
    }
}

fn request(method: Method, url: String) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::from("{}"))
        .unwrap()
}

/// Four kinds of operations, two of each, on paths of their own; the failing ones fail.
fn register(sim: &Simulator) -> Vec<(Method, String)> {
    let mut started = Vec::new();
    for i in 0..2 {
        let path = format!("/vms/{i}/start");
        sim.add(
            Scenario::new(Method::POST, &path, Monitor::AzureAsyncOperation)
                .retry_after(RetryAfter::Millis(20))
                .completes_after_polls(2),
        );
        started.push((Method::POST, path));
        let path = format!("/accounts/{i}");
        sim.add(
            Scenario::new(Method::PUT, &path, Monitor::Location)
                .retry_after(RetryAfter::Millis(20))
                .completes_after_polls(1),
        );
        started.push((Method::PUT, path));
        let path = format!("/sites/{i}");
        sim.add(
            Scenario::new(Method::PUT, &path, Monitor::Resource)
                .retry_after(RetryAfter::Millis(20))
                .completes_after_polls(1),
        );
        started.push((Method::PUT, path));
        let path = format!("/taken/{i}");
        sim.add(
            Scenario::new(Method::PUT, &path, Monitor::AzureAsyncOperation)
                .retry_after(RetryAfter::Millis(20))
                .completes_after_polls(1)
                .ending(Ending::Failed {
                    code: "NameTaken".into(),
                    message: "the name is taken".into(),
                }),
        );
        started.push((Method::PUT, path));
    }
    started
}

async fn operations_reach_their_outcomes(store: Store) {
    let sim = Simulator::start().await.unwrap();
    let operations = register(&sim);
    let recorder = Recorder::default();
    let fleet = fleet(quick(store), LongRunningLayer::new(), &recorder);

    let mut ids = HashMap::new();
    for (method, path) in &operations {
        match fleet
            .start(path.clone(), request(method.clone(), sim.url(path)))
            .await
            .unwrap()
        {
            Started::Tracked { id, response } => {
                assert!(
                    response.status().is_success(),
                    "{path}: {}",
                    response.status()
                );
                ids.insert(path.clone(), id.to_string());
            }
            other => panic!("{path} was not tracked: {other:?}"),
        }
    }
    // A response that starts nothing is handed back and never reaches the handler.
    let plain = fleet
        .start("plain", request(Method::GET, sim.url("/nothing")))
        .await
        .unwrap();
    assert!(
        matches!(plain, Started::NotLongRunning(ref r) if r.status() == 404),
        "{plain:?}"
    );

    let (stop, workers) = spawn_workers(&fleet, &["a", "b"]);
    let records = recorder
        .wait_for(operations.len(), Duration::from_secs(40))
        .await;
    stop_workers(stop, workers).await;

    assert_eq!(records.len(), operations.len(), "{records:#?}");
    let by_key: HashMap<&str, &Record> = records.iter().map(|r| (r.key.as_str(), r)).collect();
    assert_eq!(
        by_key.len(),
        operations.len(),
        "an outcome was delivered twice: {records:#?}"
    );
    for (method, path) in &operations {
        let record = by_key[path.as_str()];
        assert_eq!(record.id, ids[path], "{path}");
        if path.starts_with("/taken/") {
            assert_eq!(record.result, Err(ErrorKind::Failed), "{record:?}");
            assert!(record.body.contains("NameTaken"), "{record:?}");
        } else {
            assert_eq!(record.result, Ok(200), "{record:?}");
            assert!(record.body.contains("Succeeded"), "{record:?}");
        }
        // The initial request reached the server once: workers only ever send GETs.
        assert_eq!(sim.count(method, path), 1, "{method} {path}");
    }
    assert_eq!(sim.count(&Method::GET, "/nothing"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_operations_reach_their_outcomes_once() {
    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();
    operations_reach_their_outcomes(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_operations_reach_their_outcomes_once() {
    let pg = Postgres::start();
    let store = Store::postgres(&pg.url()).await.unwrap();
    operations_reach_their_outcomes(store).await;
}

/// The collection the Google operations are created in, for project `project`.
fn instances(project: &str) -> String {
    format!("/v1/projects/{project}/locations/l/instances")
}

/// A token of an operation the Azure layer accepted (sent with `Polling::AcceptOnly`).
async fn azure_token(sim: &Simulator, path: &str) -> ResumeToken {
    let mut req = request(Method::POST, sim.url(path));
    req.extensions_mut().insert(tower_lro::Polling::AcceptOnly);
    let layer = LongRunningLayer::new();
    let accepted = tower::ServiceExt::oneshot(tower::Layer::layer(&layer, client()), req)
        .await
        .unwrap();
    accepted.extensions().get::<ResumeToken>().unwrap().clone()
}

/// Google AIP-151 operations (two that succeed, one that fails) tracked by a fleet built from a
/// Google layer, to their outcomes; an Azure operation's token given to that fleet is refused.
async fn google_operations_reach_their_outcomes(store: Store) {
    let sim = Simulator::start().await.unwrap();
    let projects = ["p0", "p1", "bad"];
    for project in projects {
        let scenario = Scenario::new(Method::POST, instances(project), Monitor::GoogleOperation)
            .retry_after(RetryAfter::Millis(20))
            .completes_after_polls(2)
            .resource_body(r#"{"name":"instance","state":"READY"}"#);
        sim.add(if project == "bad" {
            scenario.ending(Ending::Failed {
                code: "3".into(),
                message: "instance name is invalid".into(),
            })
        } else {
            scenario
        });
    }
    sim.add(
        Scenario::new(
            Method::POST,
            "/vms/azure/start",
            Monitor::AzureAsyncOperation,
        )
        .completes_after_polls(1),
    );
    let recorder = Recorder::default();
    let fleet = fleet(
        quick(store),
        LongRunningLayer::with_dialect(Google::new()),
        &recorder,
    );

    let mut ids = HashMap::new();
    for project in projects {
        let url = sim.url(&format!("{}?instanceId=i", instances(project)));
        match fleet
            .start(project, request(Method::POST, url))
            .await
            .unwrap()
        {
            Started::Tracked { id, response } => {
                // Google answers 200 with an Operation that is not done.
                assert_eq!(response.status(), 200, "{project}");
                ids.insert(project, id.to_string());
            }
            other => panic!("{project} was not tracked: {other:?}"),
        }
    }
    // A token of another dialect: the Google layer refuses it, and it is delivered at once.
    let token = azure_token(&sim, "/vms/azure/start").await;
    let azure_monitor = token
        .monitor_url()
        .parse::<http::Uri>()
        .unwrap()
        .path()
        .to_owned();
    let foreign = fleet.track("azure", token).await.unwrap();

    let (stop, workers) = spawn_workers(&fleet, &["a", "b"]);
    let records = recorder.wait_for(4, Duration::from_secs(40)).await;
    stop_workers(stop, workers).await;

    assert_eq!(records.len(), 4, "{records:#?}");
    let by_key: HashMap<&str, &Record> = records.iter().map(|r| (r.key.as_str(), r)).collect();
    assert_eq!(
        by_key.len(),
        4,
        "an outcome was delivered twice: {records:#?}"
    );
    for project in projects {
        let record = by_key[project];
        assert_eq!(record.id, ids[project], "{project}");
        if project == "bad" {
            assert_eq!(record.result, Err(ErrorKind::Failed), "{record:?}");
            assert_eq!(record.code.as_deref(), Some("3"), "{record:?}");
            assert!(!record.token, "the operation has ended: {record:?}");
        } else {
            assert_eq!(record.result, Ok(200), "{record:?}");
            // The final response is the last Operation, done, with the resource.
            assert!(record.body.contains(r#""done":true"#), "{record:?}");
            assert!(record.body.contains(r#""state":"READY""#), "{record:?}");
            assert_eq!(record.polls, Some(3), "two running answers, then done");
        }
        // The initial request reached the server once: workers only ever send GETs.
        assert_eq!(
            sim.count(&Method::POST, &instances(project)),
            1,
            "{project}"
        );
    }
    let refused = by_key["azure"];
    assert_eq!(refused.id, foreign.to_string());
    assert_eq!(
        refused.result,
        Err(ErrorKind::InvalidResumeToken),
        "{refused:?}"
    );
    assert_eq!(sim.count(&Method::POST, "/vms/azure/start"), 1);
    assert_eq!(
        sim.count(&Method::GET, &azure_monitor),
        0,
        "the foreign token was never polled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_google_operations_reach_their_outcomes_once() {
    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();
    google_operations_reach_their_outcomes(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_google_operations_reach_their_outcomes_once() {
    let pg = Postgres::start();
    let store = Store::postgres(&pg.url()).await.unwrap();
    google_operations_reach_their_outcomes(store).await;
}

/// Pushes a raw payload into the fleet's queue, as a buggy or hostile writer of the table would.
async fn push_raw(store: &Store, payload: Vec<u8>) {
    let pool = store.sqlite_pool().unwrap();
    let mut conn = pool.acquire().await.unwrap();
    let task = apalis_core::task::builder::TaskBuilder::new(payload).build();
    apalis_sqlite::queries::push_tasks(&mut *conn, "tower-lro-fleet", &[task])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_and_foreign_tokens_are_typed_outcomes_and_junk_rows_stop_nothing() {
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(Method::POST, "/vms/ok/start", Monitor::AzureAsyncOperation)
            .completes_after_polls(1),
    );
    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();
    let recorder = Recorder::default();
    let fleet = fleet(quick(store.clone()), LongRunningLayer::new(), &recorder);

    // A real token, to make foreign ones from.
    let layer = LongRunningLayer::new();
    let accepted = {
        let mut req = request(Method::POST, sim.url("/vms/ok/start"));
        req.extensions_mut().insert(tower_lro::Polling::AcceptOnly);
        tower::ServiceExt::oneshot(tower::Layer::layer(&layer, client()), req)
            .await
            .unwrap()
    };
    let token = accepted
        .extensions()
        .get::<tower_lro::ResumeToken>()
        .unwrap()
        .clone();
    let mut newer: serde_json::Value = serde_json::from_str(&token.to_json()).unwrap();
    newer["version"] = 99.into();
    let mut elsewhere: serde_json::Value = serde_json::from_str(&token.to_json()).unwrap();
    elsewhere["monitor_url"] = "http://203.0.113.7/operations/1".into();

    // Not a job at all: apalis cannot decode it, and the workers must go on regardless.
    push_raw(&store, b"\xff\xfe not json".to_vec()).await;
    push_raw(&store, br#"{"looks":"like json"}"#.to_vec()).await;
    for (key, value) in [
        ("corrupt", serde_json::json!("not a token")),
        (
            "truncated",
            serde_json::json!({"version": 1, "monitor": "location"}),
        ),
        ("newer", newer),
        ("elsewhere", elsewhere),
    ] {
        let job = serde_json::json!({"id": format!("id-{key}"), "key": key, "token": value});
        push_raw(&store, serde_json::to_vec(&job).unwrap()).await;
    }
    let good = fleet.track("good", token).await.unwrap();

    let (stop, workers) = spawn_workers(&fleet, &["a"]);
    let records = recorder.wait_for(5, Duration::from_secs(30)).await;
    stop_workers(stop, workers).await;

    let by_key: HashMap<&str, &Record> = records.iter().map(|r| (r.key.as_str(), r)).collect();
    assert_eq!(records.len(), 5, "{records:#?}");
    for key in ["corrupt", "truncated", "newer", "elsewhere"] {
        let record = by_key[key];
        assert_eq!(record.id, format!("id-{key}"));
        assert_eq!(
            record.result,
            Err(ErrorKind::InvalidResumeToken),
            "{record:?}"
        );
    }
    assert_eq!(by_key["good"].id, good.to_string());
    assert_eq!(by_key["good"].result, Ok(200));
    // The foreign token's URL was never contacted (it is not on this machine anyway), and the
    // operation was started once.
    assert_eq!(sim.count(&Method::POST, "/vms/ok/start"), 1);
    // The two rows that are not fleet jobs were quarantined, once each, and kept.
    assert_eq!(fleet.quarantined(), 2);
    let kept = fleet.quarantined_rows(10).await.unwrap();
    assert_eq!(kept.len(), 2, "{kept:#?}");
    assert!(
        kept.iter()
            .all(|row| row.reason.contains("not a fleet job")),
        "{kept:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_handler_is_retried_by_the_engine_and_its_token_kept() {
    let sim = Simulator::start().await.unwrap();
    for path in ["/vms/flaky/start", "/vms/broken/start"] {
        sim.add(
            Scenario::new(Method::POST, path, Monitor::AzureAsyncOperation)
                .completes_after_polls(1),
        );
    }
    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();

    // Fails twice, then takes the outcome: delivered on the third run, recorded once.
    let flaky = Recorder::failing_first(2);
    let fleet_a = fleet(
        quick(store.clone()).job_attempts(5),
        LongRunningLayer::new(),
        &flaky,
    );
    fleet_a
        .start("flaky", request(Method::POST, sim.url("/vms/flaky/start")))
        .await
        .unwrap();
    // Always fails: after its two runs the job stays in the store, failed, token and all.
    let broken = Recorder::failing_first(usize::MAX);
    let fleet_b = fleet(
        quick(store.clone()).queue("broken").job_attempts(2),
        LongRunningLayer::new(),
        &broken,
    );
    fleet_b
        .start(
            "broken",
            request(Method::POST, sim.url("/vms/broken/start")),
        )
        .await
        .unwrap();

    let (stop_a, workers_a) = spawn_workers(&fleet_a, &["a"]);
    let (stop_b, workers_b) = spawn_workers(&fleet_b, &["b"]);
    let records = flaky.wait_for(1, Duration::from_secs(30)).await;
    let pool = store.sqlite_pool().unwrap().clone();
    let failed = async {
        for _ in 0..300 {
            let rows: Vec<(String, i64, Vec<u8>)> = sqlx::query_as(
                "SELECT status, attempts, job FROM Jobs WHERE job_type = 'broken' AND status = 'Failed'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            if let Some(row) = rows.into_iter().find(|(_, attempts, _)| *attempts >= 2) {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the broken handler's job never ended failed");
    }
    .await;
    stop_workers(stop_a, workers_a).await;
    stop_workers(stop_b, workers_b).await;

    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].result, Ok(200));
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        broken.calls.load(Ordering::SeqCst),
        2,
        "runs per job_attempts"
    );
    assert!(broken.snapshot().is_empty());
    let (_, attempts, job) = failed;
    assert_eq!(attempts, 2);
    let job: serde_json::Value = serde_json::from_slice(&job).unwrap();
    assert_eq!(job["key"], "broken");
    let token = tower_lro::ResumeToken::from_json(&job["token"].to_string()).unwrap();
    assert!(token.monitor_url().contains("/operations/"), "{token:?}");
    // Each run took the step again from the kept token: GETs only, the POST once.
    assert_eq!(sim.count(&Method::POST, "/vms/broken/start"), 1);
    assert_eq!(sim.count(&Method::POST, "/vms/flaky/start"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stays_away_is_retried_then_its_error_delivered_with_a_token() {
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(
            Method::POST,
            "/vms/gone/start",
            Monitor::AzureAsyncOperation,
        )
        .completes_after_polls(1),
    );
    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();
    let recorder = Recorder::default();
    let fleet = fleet(
        quick(store)
            .step_retries(2)
            .step_retry_delay(Duration::from_millis(100)),
        LongRunningLayer::new().max_transient_retries(0),
        &recorder,
    );
    let started = fleet
        .start("gone", request(Method::POST, sim.url("/vms/gone/start")))
        .await
        .unwrap();
    assert!(matches!(started, Started::Tracked { .. }));
    drop(sim); // every poll from now on is refused

    let begun = std::time::Instant::now();
    let (stop, workers) = spawn_workers(&fleet, &["a"]);
    let records = recorder.wait_for(1, Duration::from_secs(30)).await;
    stop_workers(stop, workers).await;

    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(
        records[0].result,
        Err(ErrorKind::Service),
        "{:?}",
        records[0]
    );
    assert!(records[0].token, "the delivered error keeps its token");
    // Three steps, the two retries each waiting at least until the next whole second.
    assert!(
        begun.elapsed() >= Duration::from_secs(1),
        "{:?}",
        begun.elapsed()
    );
}

/// A server that asked for `Retry-After: 3` and then went away: the retried step waits the
/// hint again, not the fleet's 100 ms retry delay (its error's token holds no hint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_step_waits_no_less_than_the_servers_last_hint() {
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(
            Method::POST,
            "/vms/gone/start",
            Monitor::AzureAsyncOperation,
        )
        .retry_after(RetryAfter::Seconds(3))
        .completes_after_polls(1),
    );
    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();
    let recorder = Recorder::default();
    let fleet = fleet(
        quick(store)
            .step_retries(1)
            .step_retry_delay(Duration::from_millis(100)),
        LongRunningLayer::new().max_transient_retries(0),
        &recorder,
    );
    let begun = std::time::Instant::now();
    let started = fleet
        .start("gone", request(Method::POST, sim.url("/vms/gone/start")))
        .await
        .unwrap();
    assert!(matches!(started, Started::Tracked { .. }));
    drop(sim);

    let (stop, workers) = spawn_workers(&fleet, &["a"]);
    let records = recorder.wait_for(1, Duration::from_secs(30)).await;
    stop_workers(stop, workers).await;

    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].result, Err(ErrorKind::Service), "{records:?}");
    // The first step after the hint, its retry after the hint again.
    assert!(
        begun.elapsed() >= Duration::from_secs(6),
        "{:?}",
        begun.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_and_coming_back_loses_nothing() {
    let pg = Postgres::start();
    let store = Store::postgres(&pg.url()).await.unwrap();
    let sim = Simulator::start().await.unwrap();
    let paths: Vec<String> = (0..6).map(|i| format!("/vms/{i}/start")).collect();
    for path in &paths {
        sim.add(
            Scenario::new(Method::POST, path, Monitor::AzureAsyncOperation)
                .completes_after_polls(4),
        );
    }
    let recorder = Recorder::default();
    let fleet = fleet(quick(store), LongRunningLayer::new(), &recorder);
    for path in &paths {
        fleet
            .start(path.clone(), request(Method::POST, sim.url(path)))
            .await
            .unwrap();
    }
    let (stop, workers) = spawn_workers(&fleet, &["a", "b"]);

    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.stop();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pg.start_again();

    let records = recorder
        .wait_for(paths.len(), Duration::from_secs(60))
        .await;
    stop_workers(stop, workers).await;
    let mut keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), paths.len(), "{records:#?}");
    for record in &records {
        assert_eq!(record.result, Ok(200), "{record:?}");
    }
    for path in &paths {
        assert_eq!(sim.count(&Method::POST, path), 1, "{path}");
    }
}
