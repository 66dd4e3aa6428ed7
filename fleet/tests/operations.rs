//! What a fleet's operator and its callers see and steer, on real SQLite and PostgreSQL against
//! the simulator over loopback: the first step waits for the initial response's hint, retried
//! starts under one id never fork an operation, and operations can be listed, inspected and
//! canceled.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use tower_lro::{Dialect, ErrorKind, Google, LongRunningLayer, ResumeToken};
use tower_lro_fleet::{
    CancelState, Fleet, FleetBuilder, FleetErrorKind, OperationId, Phase, Started, Store,
};
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

use support::{client, Postgres, Recorder, TempDir};

type HandlerOf = tower::util::BoxCloneSyncService<
    tower_lro_fleet::Delivery<hyper::body::Incoming>,
    (),
    support::BoxError,
>;
type TestFleet<D> = Fleet<support::HttpClient, HandlerOf, Full<Bytes>, D>;

fn fleet<D: Dialect>(
    store: Store,
    layer: LongRunningLayer<D>,
    recorder: &Recorder,
) -> TestFleet<D> {
    let handler = tower::util::BoxCloneSyncService::new(recorder.handler());
    FleetBuilder::new(store)
        .heartbeat(Duration::from_secs(1))
        .missed_heartbeats(2)
        .fetch_interval(Duration::from_millis(50))
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(400))
        .restart_delay(Duration::from_millis(200))
        .build(layer, client(), handler)
        .unwrap()
}

/// Workers of `fleet`, stopped gracefully by the returned sender.
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
            let (fleet, name, mut stopped) = (fleet.clone(), name.to_string(), stopped.clone());
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

fn path_of(url: &str) -> String {
    url.parse::<http::Uri>().unwrap().path().to_owned()
}

/// Nine operations whose initial answers say `Retry-After: 1`, `Retry-After: 2` and
/// `retry-after-ms: 1500`, started while the workers run: none is polled before its hint passed
/// (measured at the server, from the initial request's arrival).
async fn the_first_poll_waits_for_the_initial_hint(store: Store) {
    let sim = Simulator::start().await.unwrap();
    let hints = [
        (RetryAfter::Seconds(1), Duration::from_secs(1)),
        (RetryAfter::Seconds(2), Duration::from_secs(2)),
        (RetryAfter::Millis(1_500), Duration::from_millis(1_500)),
    ];
    let mut paths = Vec::new();
    for (h, (retry_after, hint)) in hints.iter().enumerate() {
        for i in 0..3 {
            let path = format!("/vms/{h}-{i}/start");
            sim.add(
                Scenario::new(Method::POST, &path, Monitor::AzureAsyncOperation)
                    .retry_after(*retry_after)
                    .completes_after_polls(1),
            );
            paths.push((path, *hint));
        }
    }
    let recorder = Recorder::default();
    let fleet = fleet(store, LongRunningLayer::new(), &recorder);
    let (stop, workers) = spawn_workers(&fleet, &["a", "b"]);
    let mut monitors = HashMap::new();
    for (path, _) in &paths {
        let Started::Tracked { response, .. } = fleet
            .start(path.clone(), request(Method::POST, sim.url(path)))
            .await
            .unwrap()
        else {
            panic!("{path} was not tracked");
        };
        let token = response.extensions().get::<ResumeToken>().unwrap();
        monitors.insert(path.clone(), path_of(token.monitor_url()));
    }
    let records = recorder
        .wait_for(paths.len(), Duration::from_secs(40))
        .await;
    stop_workers(stop, workers).await;
    assert_eq!(records.len(), paths.len(), "{records:#?}");
    assert!(records.iter().all(|r| r.result == Ok(200)), "{records:#?}");

    let requests = sim.requests();
    for (path, hint) in &paths {
        let started = requests
            .iter()
            .find(|r| r.method == Method::POST && r.uri.path() == path)
            .unwrap()
            .at;
        let first_poll = requests
            .iter()
            .find(|r| r.method == Method::GET && r.uri.path() == monitors[path])
            .unwrap_or_else(|| panic!("{path} was never polled"))
            .at;
        let waited = first_poll.duration_since(started);
        assert!(
            waited >= *hint,
            "{path}: polled {waited:?} after a hint of {hint:?}"
        );
        // Rounded up to the store's whole second, plus the jitter, a fetch and a loaded
        // machine's durable commits: not much later.
        assert!(
            waited < *hint + Duration::from_secs(6),
            "{path}: {waited:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_the_first_poll_waits_for_the_initial_hint() {
    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();
    the_first_poll_waits_for_the_initial_hint(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_the_first_poll_waits_for_the_initial_hint() {
    let pg = Postgres::start();
    let store = Store::postgres(&pg.url()).await.unwrap();
    the_first_poll_waits_for_the_initial_hint(store).await;
}

/// A start whose enqueue committed but whose answer was lost, retried under the same id: the
/// request is not sent again, tracking the same token again adds nothing, and the operation has
/// one chain and one delivery.
async fn retried_starts_never_fork(store: Store) {
    let sim = Simulator::start().await.unwrap();
    for path in ["/vms/started/start", "/vms/tracked/start"] {
        sim.add(
            Scenario::new(Method::POST, path, Monitor::AzureAsyncOperation)
                .retry_after(RetryAfter::Millis(20))
                .completes_after_polls(2),
        );
    }
    let recorder = Recorder::default();
    let fleet = fleet(store, LongRunningLayer::new(), &recorder);
    let url = sim.url("/vms/started/start");

    let id = OperationId::generate();
    let Started::Tracked {
        id: tracked,
        response,
    } = fleet
        .start_as(id.clone(), "started", request(Method::POST, url.clone()))
        .await
        .unwrap()
    else {
        panic!("not tracked");
    };
    assert_eq!(tracked, id);
    let token = response.extensions().get::<ResumeToken>().unwrap().clone();
    // The answer is lost; the caller retries, with the same id.
    let again = fleet
        .start_as(id.clone(), "started", request(Method::POST, url))
        .await
        .unwrap();
    assert!(
        matches!(again, Started::AlreadyTracked { id: ref same } if *same == id),
        "{again:?}"
    );
    assert_eq!(
        fleet
            .track_as(id.clone(), "started", token.clone())
            .await
            .unwrap(),
        id
    );
    assert_eq!(
        sim.count(&Method::POST, "/vms/started/start"),
        1,
        "sent once"
    );

    // The same for `track_as`: a retried enqueue of the same token under the same id.
    let (other, other_token) = {
        let mut req = request(Method::POST, sim.url("/vms/tracked/start"));
        req.extensions_mut().insert(tower_lro::Polling::AcceptOnly);
        let layer = LongRunningLayer::new();
        let accepted = tower::ServiceExt::oneshot(tower::Layer::layer(&layer, client()), req)
            .await
            .unwrap();
        (
            OperationId::generate(),
            accepted.extensions().get::<ResumeToken>().unwrap().clone(),
        )
    };
    for _ in 0..3 {
        let id = fleet
            .track_as(other.clone(), "tracked", other_token.clone())
            .await
            .unwrap();
        assert_eq!(id, other);
    }

    let page = fleet.in_flight(None, 100).await.unwrap();
    let listed: Vec<(&str, u32)> = page
        .operations
        .iter()
        .map(|o| (o.id.as_str(), o.step))
        .collect();
    let mut expected = vec![(id.as_str(), 0), (other.as_str(), 0)];
    expected.sort_unstable();
    assert_eq!(listed, expected, "one chain each, at its first step");

    let (stop, workers) = spawn_workers(&fleet, &["a", "b"]);
    let records = recorder.wait_for(2, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_workers(stop, workers).await;
    let records = if records.len() == 2 {
        recorder.snapshot()
    } else {
        records
    };
    assert_eq!(records.len(), 2, "one delivery each: {records:#?}");
    let by_key: HashMap<&str, &support::Record> =
        records.iter().map(|r| (r.key.as_str(), r)).collect();
    assert_eq!(by_key["started"].id, id.to_string());
    assert_eq!(by_key["tracked"].id, other.to_string());
    assert!(
        records
            .iter()
            .all(|r| r.result == Ok(200) && r.polls == Some(3)),
        "{records:#?}"
    );
    assert_eq!(sim.count(&Method::POST, "/vms/started/start"), 1);
    assert_eq!(sim.count(&Method::POST, "/vms/tracked/start"), 1);
    assert_eq!(
        "not-an-id".parse::<OperationId>().unwrap_err().kind(),
        FleetErrorKind::InvalidId
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_retried_starts_never_fork() {
    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();
    retried_starts_never_fork(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_retried_starts_never_fork() {
    let pg = Postgres::start();
    let store = Store::postgres(&pg.url()).await.unwrap();
    retried_starts_never_fork(store).await;
}

fn instances(project: &str) -> String {
    format!("/v1/projects/{project}/locations/l/instances")
}

/// Google operations listed page by page and inspected; one canceled before any worker ran,
/// one while it is polled, one whose server refuses the cancel and which goes on to succeed.
/// Each cancel is sent once; the outcomes reach the handler as usual.
async fn operations_are_listed_inspected_and_canceled(store: Store) {
    let sim = Simulator::start().await.unwrap();
    for (project, polls, cancelable) in [
        ("early", 1_000, true),
        ("late", 1_000, true),
        ("refuses", 3, false),
    ] {
        sim.add(
            Scenario::new(Method::POST, instances(project), Monitor::GoogleOperation)
                .retry_after(RetryAfter::Seconds(1))
                .completes_after_polls(polls)
                .cancelable(cancelable)
                .resource_body(r#"{"name":"instance"}"#),
        );
    }
    let recorder = Recorder::default();
    let fleet = fleet(
        store,
        LongRunningLayer::with_dialect(Google::new()),
        &recorder,
    );
    let mut ids = HashMap::new();
    for project in ["early", "late", "refuses"] {
        let url = sim.url(&format!("{}?instanceId=i", instances(project)));
        let Started::Tracked { id, .. } = fleet
            .start(project, request(Method::POST, url))
            .await
            .unwrap()
        else {
            panic!("{project} was not tracked");
        };
        ids.insert(project, id);
    }

    // Before any worker: each waits for its first step, listed in id order, two per page.
    let first = fleet.in_flight(None, 2).await.unwrap();
    assert_eq!(first.operations.len(), 2, "{first:#?}");
    let rest = fleet.in_flight(first.next.as_ref(), 2).await.unwrap();
    assert_eq!(rest.next, None, "{rest:#?}");
    let listed: Vec<&OperationId> = first
        .operations
        .iter()
        .chain(&rest.operations)
        .map(|o| &o.id)
        .collect();
    let mut expected: Vec<&OperationId> = ids.values().collect();
    expected.sort();
    assert_eq!(listed, expected);
    let early = fleet.status(&ids["early"]).await.unwrap();
    assert_eq!(
        (early.key.as_str(), early.phase, early.polls, early.step),
        ("early", Phase::Waiting, 0, 0)
    );
    assert!(
        early.next_poll_at.is_some() && early.cancel.is_none(),
        "{early:?}"
    );
    assert_eq!(
        fleet
            .status(&OperationId::generate())
            .await
            .unwrap_err()
            .kind(),
        FleetErrorKind::NotFound
    );

    assert_eq!(
        fleet.cancel(&ids["early"]).await.unwrap(),
        CancelState::Requested
    );
    assert_eq!(
        fleet.cancel(&ids["early"]).await.unwrap(),
        CancelState::Requested,
        "asked once"
    );
    let (stop, workers) = spawn_workers(&fleet, &["a", "b"]);

    // The others are polled; then canceled while running.
    let polled = async {
        for _ in 0..200 {
            let late = fleet.status(&ids["late"]).await.unwrap();
            let refuses = fleet.status(&ids["refuses"]).await.unwrap();
            if late.polls >= 1 && refuses.polls >= 1 {
                return late;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("never polled");
    }
    .await;
    assert_eq!(
        polled.state.as_deref(),
        None,
        "a Google operation has no state word: {polled:?}"
    );
    assert!(matches!(
        fleet.cancel(&ids["late"]).await.unwrap(),
        CancelState::Requested | CancelState::Sent
    ));
    assert!(matches!(
        fleet.cancel(&ids["refuses"]).await.unwrap(),
        CancelState::Requested | CancelState::Sent
    ));

    let records = recorder.wait_for(3, Duration::from_secs(40)).await;
    let refused = fleet.status(&ids["refuses"]).await.unwrap();
    stop_workers(stop, workers).await;
    assert_eq!(records.len(), 3, "{records:#?}");
    let by_key: HashMap<&str, &support::Record> =
        records.iter().map(|r| (r.key.as_str(), r)).collect();
    for project in ["early", "late"] {
        assert_eq!(
            by_key[project].result,
            Err(ErrorKind::Canceled),
            "{:?}",
            by_key[project]
        );
        assert_eq!(by_key[project].id, ids[project].to_string());
        assert_eq!(
            fleet.status(&ids[project]).await.unwrap().phase,
            Phase::Ended
        );
        assert_eq!(
            fleet.cancel(&ids[project]).await.unwrap_err().kind(),
            FleetErrorKind::Ended
        );
    }
    // The refused cancel: seen by the operator, and the operation went on to its end.
    assert_eq!(by_key["refuses"].result, Ok(200), "{:?}", by_key["refuses"]);
    assert_eq!(refused.cancel, Some(CancelState::Refused), "{refused:?}");
    assert!(refused.last_error.is_some(), "{refused:?}");
    for project in ["early", "late", "refuses"] {
        let cancels = sim
            .requests()
            .iter()
            .filter(|r| {
                r.method == Method::POST
                    && r.uri.path().ends_with(":cancel")
                    && r.uri.path().contains(&format!("/projects/{project}/"))
            })
            .count();
        assert_eq!(cancels, 1, "{project}: the cancel is sent once");
        assert_eq!(
            sim.count(&Method::POST, &instances(project)),
            1,
            "{project}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_operations_are_listed_inspected_and_canceled() {
    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();
    operations_are_listed_inspected_and_canceled(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_operations_are_listed_inspected_and_canceled() {
    let pg = Postgres::start();
    let store = Store::postgres(&pg.url()).await.unwrap();
    operations_are_listed_inspected_and_canceled(store).await;
}

/// Steps due in an hour: a cancel makes one due now (its request goes out within seconds), and
/// reaches one waiting for the engine's retry of a failed run; a cancel the server refuses puts
/// its step back on the hour it was due, never polled before the server's hint.
async fn a_cancel_does_not_wait_for_a_step_due_in_an_hour(store: Store) {
    let hour = Duration::from_secs(3_600);
    let sim = Simulator::start().await.unwrap();
    for (project, cancelable) in [("soon", true), ("retried", true), ("refuses", false)] {
        sim.add(
            Scenario::new(Method::POST, instances(project), Monitor::GoogleOperation)
                .retry_after(RetryAfter::Seconds(3_600))
                .completes_after_polls(1_000)
                .cancelable(cancelable)
                .resource_body(r#"{"name":"instance"}"#),
        );
    }
    let recorder = Recorder::default();
    let fleet = fleet(
        store.clone(),
        LongRunningLayer::with_dialect(Google::new()).max_delay(hour),
        &recorder,
    );
    let mut ids = HashMap::new();
    for project in ["soon", "retried", "refuses"] {
        let url = sim.url(&format!("{}?instanceId=i", instances(project)));
        let Started::Tracked { id, .. } = fleet
            .start(project, request(Method::POST, url))
            .await
            .unwrap()
        else {
            panic!("{project} was not tracked");
        };
        ids.insert(project, id);
    }
    // A run of this step failed (the handler, say): the engine runs it again when it is due.
    let key = format!("{}/0", ids["retried"]);
    if let Some(pool) = store.postgres_pool() {
        sqlx::query(
            "UPDATE apalis.jobs SET status = 'Failed', attempts = 1 WHERE idempotency_key = $1",
        )
        .bind(&key)
        .execute(pool)
        .await
        .unwrap();
    } else {
        sqlx::query("UPDATE Jobs SET status = 'Failed', attempts = 1 WHERE idempotency_key = ?1")
            .bind(&key)
            .execute(store.sqlite_pool().unwrap())
            .await
            .unwrap();
    }
    let asked = tokio::time::Instant::now();
    for project in ["soon", "retried", "refuses"] {
        assert_eq!(
            fleet.cancel(&ids[project]).await.unwrap(),
            CancelState::Requested,
            "{project}"
        );
    }
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "no cancel waited for a lease"
    );
    let (stop, workers) = spawn_workers(&fleet, &["a", "b"]);

    let cancels = |project: &str| {
        sim.requests()
            .iter()
            .filter(|r| {
                r.method == Method::POST
                    && r.uri.path().ends_with(":cancel")
                    && r.uri.path().contains(&format!("/projects/{project}/"))
            })
            .count()
    };
    let refused = async {
        for _ in 0..200 {
            let refused = fleet.status(&ids["refuses"]).await.unwrap();
            if ["soon", "retried"].iter().all(|p| cancels(p) == 1)
                && refused.cancel == Some(CancelState::Refused)
            {
                return refused;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the cancels did not go out within 10 s");
    }
    .await;
    let records = recorder.wait_for(2, Duration::from_secs(10)).await;
    stop_workers(stop, workers).await;
    assert_eq!(records.len(), 2, "{records:#?}");
    for record in &records {
        assert_eq!(record.result, Err(ErrorKind::Canceled), "{record:?}");
    }
    // Back on the hour it was due, and not polled meanwhile.
    assert_eq!(cancels("refuses"), 1);
    assert_eq!(
        (refused.phase, refused.polls),
        (Phase::Waiting, 0),
        "{refused:?}"
    );
    let due = refused.next_poll_at.unwrap();
    assert!(
        due > std::time::SystemTime::now() + hour - Duration::from_secs(60),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_cancel_does_not_wait_for_a_step_due_in_an_hour() {
    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();
    a_cancel_does_not_wait_for_a_step_due_in_an_hour(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_cancel_does_not_wait_for_a_step_due_in_an_hour() {
    let pg = Postgres::start();
    let store = Store::postgres(&pg.url()).await.unwrap();
    a_cancel_does_not_wait_for_a_step_due_in_an_hour(store).await;
}
