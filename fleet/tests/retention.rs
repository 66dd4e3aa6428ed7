//! Retention on the real engines (SQLite in a temporary file, PostgreSQL 15): the rows of
//! finished steps go once older than the fleet's retention age (here 0 s, so three leases: 6 s);
//! rows still waiting or running, jobs kept as failed, and the rows of a queue with a longer
//! retention stay.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use tower_lro::LongRunningLayer;
use tower_lro_fleet::{Fleet, FleetBuilder, Store};
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

use support::{client, Postgres, Recorder, TempDir};

type TestFleet = Fleet<
    support::HttpClient,
    tower::util::BoxCloneSyncService<
        tower_lro_fleet::Delivery<hyper::body::Incoming>,
        (),
        support::BoxError,
    >,
    Full<Bytes>,
>;

/// A fleet on `queue` with quick fetches and leases, pruning every 100 ms.
fn fleet(store: &Store, queue: &str, retention: Duration, recorder: &Recorder) -> TestFleet {
    FleetBuilder::new(store.clone())
        .queue(queue)
        .heartbeat(Duration::from_secs(1))
        .fetch_interval(Duration::from_millis(50))
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(400))
        .job_attempts(1)
        .retention(retention)
        .prune_interval(Duration::from_millis(100))
        .build(
            LongRunningLayer::new(),
            client(),
            tower::util::BoxCloneSyncService::new(recorder.handler()),
        )
        .unwrap()
}

fn post(url: String) -> Request<Full<Bytes>> {
    Request::post(url).body(Full::default()).unwrap()
}

/// The rows of `queue`: finished (`Done`), waiting or running, and failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rows {
    done: i64,
    live: i64,
    failed: i64,
}

async fn rows(store: &Store, queue: &str) -> Rows {
    // The same counts in both dialects of SQL; only the table and the placeholder differ.
    macro_rules! counts {
        ($table:literal, $placeholder:literal) => {
            concat!(
                "SELECT count(CASE WHEN status = 'Done' THEN 1 END), ",
                "count(CASE WHEN status IN ('Pending', 'Queued', 'Running') THEN 1 END), ",
                "count(CASE WHEN status = 'Failed' THEN 1 END) FROM ",
                $table,
                " WHERE job_type = ",
                $placeholder
            )
        };
    }
    let (done, live, failed): (i64, i64, i64) =
        match (store.sqlite_pool(), store.postgres_pool()) {
            (Some(pool), _) => {
                sqlx::query_as(counts!("Jobs", "?1"))
                    .bind(queue)
                    .fetch_one(pool)
                    .await
            }
            (_, Some(pool)) => {
                sqlx::query_as(counts!("apalis.jobs", "$1"))
                    .bind(queue)
                    .fetch_one(pool)
                    .await
            }
            _ => unreachable!("a store is SQLite or PostgreSQL"),
        }
        .unwrap();
    Rows { done, live, failed }
}

/// Waits (on the real clock, at most `limit`) until `rows` of `queue` satisfy `ok`.
async fn wait_rows(store: &Store, queue: &str, limit: Duration, ok: impl Fn(Rows) -> bool) -> Rows {
    let deadline = Instant::now() + limit;
    loop {
        let now = rows(store, queue).await;
        if ok(now) || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn finished_rows_are_pruned_and_the_rest_kept(store: Store) {
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(Method::POST, "/done", Monitor::AzureAsyncOperation)
            .retry_after(RetryAfter::Millis(10))
            .completes_after_polls(2),
    );
    // Polled once, then asked to wait an hour: its first step's row is finished, its next waits.
    sim.add(
        Scenario::new(Method::POST, "/forever", Monitor::AzureAsyncOperation)
            .retry_after(RetryAfter::Seconds(3600))
            .completes_after_polls(u32::MAX),
    );

    // Pruned at once: finished steps of operations that ended, and of two still running.
    let pruned = Recorder::default();
    let pruning = fleet(&store, "pruned", Duration::ZERO, &pruned);
    // Pruned at once too, but its handler always fails: the job is kept as failed.
    let broken = Recorder::failing_first(usize::MAX);
    let failing = fleet(&store, "broken", Duration::ZERO, &broken);
    // Kept an hour: its finished rows stay.
    let kept = Recorder::default();
    let keeping = fleet(&store, "kept", Duration::from_secs(3600), &kept);
    for i in 0..6 {
        pruning
            .start(format!("done-{i}"), post(sim.url("/done")))
            .await
            .unwrap();
    }
    for i in 0..2 {
        pruning
            .start(format!("forever-{i}"), post(sim.url("/forever")))
            .await
            .unwrap();
        keeping
            .start(format!("kept-{i}"), post(sim.url("/done")))
            .await
            .unwrap();
    }
    failing
        .start("broken", post(sim.url("/done")))
        .await
        .unwrap();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let workers: Vec<_> = [pruning, failing, keeping]
        .into_iter()
        .map(|fleet| {
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                fleet
                    .run_worker("w", async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    })
                    .await
            })
        })
        .collect();

    let delivered = pruned.wait_for(6, Duration::from_secs(30)).await;
    assert_eq!(delivered.len(), 6, "{delivered:#?}");
    assert_eq!(kept.wait_for(2, Duration::from_secs(30)).await.len(), 2);
    // Every finished step of the pruning queues goes.
    let after = wait_rows(&store, "pruned", Duration::from_secs(30), |r| {
        r.done == 0 && r.live == 2
    })
    .await;
    let broken_rows = wait_rows(&store, "broken", Duration::from_secs(30), |r| {
        r.done == 0 && r.failed == 1
    })
    .await;
    let kept_rows = rows(&store, "kept").await;
    stop.send(true).unwrap();
    for worker in workers {
        tokio::time::timeout(Duration::from_secs(15), worker)
            .await
            .expect("a worker did not stop within 15 s")
            .unwrap();
    }

    // One live row per operation in flight, whatever was pruned around it.
    assert_eq!(
        after,
        Rows {
            done: 0,
            live: 2,
            failed: 0
        }
    );
    // The failed job is kept for inspection; only its finished steps went.
    assert_eq!(
        broken_rows,
        Rows {
            done: 0,
            live: 0,
            failed: 1
        }
    );
    // Three steps each (two running polls, then the one that ends it), all kept.
    assert_eq!(
        kept_rows,
        Rows {
            done: 6,
            live: 0,
            failed: 0
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_finished_rows_are_pruned_and_the_rest_kept() {
    let dir = TempDir::new("sqlite");
    let store = Store::sqlite(dir.path().join("fleet.db")).await.unwrap();
    finished_rows_are_pruned_and_the_rest_kept(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_finished_rows_are_pruned_and_the_rest_kept() {
    let pg = Postgres::start();
    let store = Store::postgres(&pg.url()).await.unwrap();
    finished_rows_are_pruned_and_the_rest_kept(store).await;
}
