//! Rows in the queue's table that the fleet cannot step (written by SQL into the very table
//! apalis uses, as a buggy or hostile writer would) are quarantined, and every real operation
//! still reaches its outcome, on SQLite and on PostgreSQL.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use tower_lro::LongRunningLayer;
use tower_lro_fleet::{Fleet, FleetBuilder, Started, Store};
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

use support::{client, Postgres, Recorder, TempDir};

type TestFleet = Fleet<support::HttpClient, HandlerOf, Full<Bytes>>;
type HandlerOf = tower::util::BoxCloneSyncService<
    tower_lro_fleet::Delivery<hyper::body::Incoming>,
    (),
    support::BoxError,
>;

const OPERATIONS: usize = 20;

/// One bad row: its id, payload and (PostgreSQL: hstore text; SQLite: JSON text) metadata.
struct Poison {
    name: &'static str,
    id: String,
    payload: Vec<u8>,
    metadata: Option<&'static str>,
}

/// A payload that is a well-formed fleet job: only its row's other columns are wrong.
fn job_payload(key: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": ulid::Ulid::generate().to_string(), "key": key,
        "token": {"version": 1, "monitor": "location"}, "step": 0
    }))
    .unwrap()
}

/// The kinds of poison both stores get; `extra` adds the store's own.
fn poisons(extra: Vec<Poison>) -> Vec<Poison> {
    let ulid = || ulid::Ulid::generate().to_string();
    let whole = job_payload("poison-truncated");
    let mut other_version: serde_json::Value =
        serde_json::from_slice(&job_payload("poison-version")).unwrap();
    other_version["version"] = 2.into();
    let mut all = vec![
        Poison {
            name: "id not a ULID",
            id: "not-a-ulid".into(),
            payload: job_payload("poison-id"),
            metadata: None,
        },
        Poison {
            name: "payload not JSON",
            id: ulid(),
            payload: b"\xff\xfe not json".to_vec(),
            metadata: None,
        },
        Poison {
            name: "foreign payload",
            id: ulid(),
            payload: br#"{"looks":"like json"}"#.to_vec(),
            metadata: None,
        },
        Poison {
            name: "payload of another version",
            id: ulid(),
            payload: serde_json::to_vec(&other_version).unwrap(),
            metadata: None,
        },
        Poison {
            name: "truncated payload",
            id: ulid(),
            payload: whole[..whole.len() / 2].to_vec(),
            metadata: None,
        },
    ];
    all.extend(extra);
    all
}

/// Writes the poison into apalis's PostgreSQL table, due now and ahead of every real step.
async fn poison_postgres(store: &Store, poisons: &[Poison]) {
    let pool = store.postgres_pool().unwrap();
    for poison in poisons {
        sqlx::query(
            "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata)
             VALUES ($1, 'tower-lro-fleet', $2, 'Pending', 0, 25, now() - interval '1 second', 10, $3::hstore)",
        )
        .bind(&poison.id)
        .bind(&poison.payload)
        .bind(poison.metadata.unwrap_or(""))
        .execute(pool)
        .await
        .unwrap();
    }
}

/// Writes the poison into apalis's SQLite table, due now and ahead of every real step.
async fn poison_sqlite(store: &Store, poisons: &[Poison]) {
    let pool = store.sqlite_pool().unwrap();
    for poison in poisons {
        sqlx::query(
            "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, priority, metadata)
             VALUES (?1, ?2, 'tower-lro-fleet', 'Pending', 0, 25, strftime('%s', 'now') - 1, 10, ?3)",
        )
        .bind(&poison.payload)
        .bind(&poison.id)
        .bind(poison.metadata)
        .execute(pool)
        .await
        .unwrap();
    }
}

fn request(url: String) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(url)
        .body(Full::from("{}"))
        .unwrap()
}

/// Twenty operations started beside the poison, stepped by two workers: all must finish, each
/// once, within a lease or two of their due time.
async fn real_operations_finish_beside(store: Store, poisons: &[Poison]) -> TestFleet {
    let sim = Simulator::start().await.unwrap();
    let recorder = Recorder::default();
    let handler = tower::util::BoxCloneSyncService::new(recorder.handler());
    let fleet: TestFleet = FleetBuilder::new(store)
        .heartbeat(Duration::from_secs(1))
        .missed_heartbeats(2)
        .fetch_interval(Duration::from_millis(50))
        // Small batches: every fetch meets poison until all of it is gone.
        .batch_size(2)
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(400))
        .restart_delay(Duration::from_millis(200))
        .build(LongRunningLayer::new(), client(), handler)
        .unwrap();
    for i in 0..OPERATIONS {
        let path = format!("/vms/{i}/start");
        sim.add(
            Scenario::new(Method::POST, &path, Monitor::AzureAsyncOperation)
                .retry_after(RetryAfter::Millis(20))
                .completes_after_polls(2),
        );
        let started = fleet
            .start(path.clone(), request(sim.url(&path)))
            .await
            .unwrap();
        assert!(matches!(started, Started::Tracked { .. }));
    }

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let fleet = fleet.clone();
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
    let records = recorder.wait_for(OPERATIONS, Duration::from_secs(30)).await;
    stop.send(true).unwrap();
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(15), worker)
            .await
            .expect("a worker did not stop within 15 s")
            .unwrap();
    }

    let by_key: HashMap<&str, usize> = records.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.key.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        records.len(),
        OPERATIONS,
        "{} of {OPERATIONS} delivered beside {} poisoned rows: {records:#?}",
        records.len(),
        poisons.len()
    );
    for i in 0..OPERATIONS {
        assert_eq!(by_key.get(format!("/vms/{i}/start").as_str()), Some(&1));
    }
    for record in &records {
        assert_eq!(record.result, Ok(200), "{record:?}");
    }
    assert_quarantined(&fleet, poisons).await;
    fleet
}

/// Every poisoned row was reported once and is kept, byte for byte, with its reason.
async fn assert_quarantined(fleet: &TestFleet, poisons: &[Poison]) {
    assert_eq!(fleet.quarantined(), poisons.len() as u64);
    let rows = fleet.quarantined_rows(100).await.unwrap();
    assert_eq!(rows.len(), poisons.len(), "{rows:#?}");
    for poison in poisons {
        let row = rows
            .iter()
            .find(|row| row.id == poison.id)
            .unwrap_or_else(|| panic!("{} was not quarantined: {rows:#?}", poison.name));
        assert_eq!(row.queue, "tower-lro-fleet");
        assert_eq!(
            row.payload.as_deref(),
            Some(&poison.payload[..]),
            "{}",
            poison.name
        );
        let expected = match poison.name {
            "id not a ULID" => "not a ULID",
            "payload of another version" => "version 2",
            "run_at -infinity" => "column run_at is NULL or not a finite time",
            name if name.starts_with("metadata") => "metadata",
            _ => "not a fleet job",
        };
        assert!(
            row.reason.contains(expected),
            "{}: {}",
            poison.name,
            row.reason
        );
        assert!(
            row.worker.starts_with('a') || row.worker.starts_with('b'),
            "{row:?}"
        );
        let columns: serde_json::Value = serde_json::from_str(&row.row).unwrap();
        assert_eq!(columns["id"], poison.id.as_str(), "{}", poison.name);
    }
}

/// Whether a job with `id` is still in apalis's table.
async fn in_jobs_table(store: &Store, id: &str) -> bool {
    let count: i64 = if let Some(pool) = store.postgres_pool() {
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap()
    } else {
        sqlx::query_scalar("SELECT count(*) FROM Jobs WHERE id = ?1")
            .bind(id)
            .fetch_one(store.sqlite_pool().unwrap())
            .await
            .unwrap()
    };
    count > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_poisoned_rows_are_quarantined_and_stop_nothing() {
    let pg = Postgres::start();
    let store = Store::postgres(&pg.url()).await.unwrap();
    let poisons = poisons(vec![
        Poison {
            name: "metadata holding a NULL value",
            id: ulid::Ulid::generate().to_string(),
            payload: job_payload("poison-metadata"),
            metadata: Some("trace => NULL"),
        },
        Poison {
            name: "run_at -infinity",
            id: ulid::Ulid::generate().to_string(),
            payload: job_payload("poison-run-at"),
            metadata: None,
        },
    ]);
    poison_postgres(&store, &poisons).await;
    let pool = store.postgres_pool().unwrap();
    // Due before anything else, with no seconds to read: the claim takes it.
    let infinite = poisons
        .iter()
        .find(|p| p.name == "run_at -infinity")
        .unwrap();
    sqlx::query("UPDATE apalis.jobs SET run_at = '-infinity' WHERE id = $1")
        .bind(&infinite.id)
        .execute(pool)
        .await
        .unwrap();
    // A step due at the end of time: never claimed, but listed and inspected.
    let forever = tower_lro_fleet::OperationId::generate();
    let payload = serde_json::to_vec(&serde_json::json!({
        "id": forever.as_str(), "key": "forever",
        "token": {"version": 1, "monitor": "location"}, "step": 0
    }))
    .unwrap();
    sqlx::query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, idempotency_key)
         VALUES ($1, 'tower-lro-fleet', $2, 'Pending', 0, 25, 'infinity', 0, $3)",
    )
    .bind(ulid::Ulid::generate().to_string())
    .bind(payload)
    .bind(format!("{forever}/0"))
    .execute(pool)
    .await
    .unwrap();
    let fleet = real_operations_finish_beside(store.clone(), &poisons).await;
    let status = fleet.status(&forever).await.unwrap();
    assert_eq!(
        (status.key.as_str(), status.phase, status.next_poll_at),
        ("forever", tower_lro_fleet::Phase::Waiting, None),
        "{status:?}"
    );
    let listed = fleet.in_flight(None, 100).await.unwrap();
    assert_eq!(listed.operations, vec![status]);
    for poison in &poisons {
        assert!(!in_jobs_table(&store, &poison.id).await, "{}", poison.name);
    }
    // The hstore's NULL is kept as the row held it.
    let rows = fleet.quarantined_rows(100).await.unwrap();
    let metadata = rows.iter().find(|r| r.reason.contains("metadata")).unwrap();
    let columns: serde_json::Value = serde_json::from_str(&metadata.row).unwrap();
    assert_eq!(columns["metadata"], serde_json::json!({"trace": null}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_poisoned_rows_are_quarantined_and_stop_nothing() {
    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();
    let poisons = poisons(vec![Poison {
        name: "metadata not JSON",
        id: ulid::Ulid::generate().to_string(),
        payload: job_payload("poison-metadata"),
        metadata: Some("{not json"),
    }]);
    poison_sqlite(&store, &poisons).await;
    let _fleet = real_operations_finish_beside(store.clone(), &poisons).await;
    for poison in &poisons {
        assert!(!in_jobs_table(&store, &poison.id).await, "{}", poison.name);
    }
}
