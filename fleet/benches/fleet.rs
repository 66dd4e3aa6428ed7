//! Operations in flight in PostgreSQL: 1,000, then 10,000, then 100,000 operations that never
//! finish (and 1,000,000 when asked), stepped by M workers in this process against a simulator
//! in a child process (so its request log is not in the figures). For each stage: the workers'
//! resident set size, polls per second and per CPU-second of this process, the store's rows and
//! bytes per operation (finished steps pruned as soon as the fleet allows: retention 0 s, so
//! three leases, 30 s; a pass every second), and the database's size. Run by hand (it takes a few minutes and starts its own
//! PostgreSQL 15; the settings it runs with are printed first):
//!
//! ```text
//! cargo bench -p tower-lro-fleet --bench fleet            # M = 2 workers
//! FLEET_BENCH_WORKERS=4 cargo bench -p tower-lro-fleet --bench fleet
//! FLEET_BENCH_MILLION=1 cargo bench -p tower-lro-fleet --bench fleet   # and 1,000,000
//! ```

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::{Method, Request};
use http_body_util::Full;
use tower_lro::{LongRunningLayer, Polling, ResumeToken};
use tower_lro_fleet::{FleetBuilder, Store};
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

use support::{client, Postgres, Recorder};

const STAGES: [usize; 3] = [1_000, 10_000, 100_000];
/// The stage `FLEET_BENCH_MILLION=1` adds.
const MILLION: usize = 1_000_000;
/// How long the workers run at each stage.
const WINDOW: Duration = Duration::from_secs(15);

fn main() {
    if std::env::args().any(|a| a == "--simulator-child") {
        return simulator_child();
    }
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list`: nothing to list but the one run
    }
    let workers: usize = std::env::var("FLEET_BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2);
    let mut stages = STAGES.to_vec();
    if std::env::var("FLEET_BENCH_MILLION").is_ok_and(|v| v == "1") {
        stages.push(MILLION);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(workers, &stages));
}

/// The simulator, in a process of its own: prints its address, serves until stdin closes.
fn simulator_child() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sim = Simulator::start().await.unwrap();
        sim.add(
            Scenario::new(
                Method::POST,
                "/vms/bench/start",
                Monitor::AzureAsyncOperation,
            )
            .retry_after(RetryAfter::Millis(10))
            .completes_after_polls(u32::MAX),
        );
        println!("{}", sim.url("/vms/bench/start"));
        std::io::stdout().flush().unwrap();
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        })
        .await
        .unwrap();
    });
}

async fn run(workers: usize, stages: &[usize]) {
    let pg = Postgres::start();
    let store = Store::postgres(&pg.url()).await.unwrap();
    let mut sim = Command::new(std::env::current_exe().unwrap())
        .arg("--simulator-child")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let url = url.trim().to_owned();

    // One real operation; every tracked operation polls its monitor, which never finishes.
    let mut accept = Request::post(&url).body(Full::<Bytes>::default()).unwrap();
    accept.extensions_mut().insert(Polling::AcceptOnly);
    let accepted = tower::ServiceExt::oneshot(
        tower::Layer::layer(&LongRunningLayer::new(), client()),
        accept,
    )
    .await
    .unwrap();
    let token = accepted.extensions().get::<ResumeToken>().unwrap().clone();

    let polls = Arc::new(AtomicU64::new(0));
    // Every request a worker sends is a poll: the tokens were started above.
    let counted = tower::ServiceBuilder::new()
        .map_request({
            let polls = polls.clone();
            move |req| {
                polls.fetch_add(1, Ordering::Relaxed);
                req
            }
        })
        .service(client());
    let layer = LongRunningLayer::new();
    let fleet = FleetBuilder::new(store.clone())
        .heartbeat(Duration::from_secs(5))
        .fetch_interval(Duration::from_millis(100))
        .batch_size(100)
        .concurrency(256)
        // Every finished step's row goes as soon as the fleet allows (three leases, 30 s): the
        // rows left are those in flight and those finished within the last 30 s or so.
        .retention(Duration::ZERO)
        .prune_interval(Duration::from_secs(1))
        .build(layer, counted, Recorder::default().handler())
        .unwrap();
    let pool = store.postgres_pool().unwrap().clone();

    let mut durability = Vec::new();
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        let (value,): (String,) = sqlx::query_as("SELECT current_setting($1)")
            .bind(setting)
            .fetch_one(&pool)
            .await
            .unwrap();
        durability.push(format!("{setting}={value}"));
    }
    println!(
        "{workers} workers, one tokio runtime on {} threads; PostgreSQL 15 on 127.0.0.1 ({}); \
         retention 0 s (three leases: {:?}), pruned every 1 s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        durability.join(", "),
        fleet.lease() * 3,
    );
    println!("| in flight | worker RSS | polls/s | polls per CPU-second | job rows per operation (live / all) | jobs table bytes per operation | database |");
    println!("|---|---|---|---|---|---|---|");
    let mut tracked = 0;
    for &stage in stages {
        let begun = Instant::now();
        stream::iter(tracked..stage)
            .map(|i| {
                let fleet = fleet.clone();
                let token = token.clone();
                async move { fleet.track(format!("op-{i}"), token).await.unwrap() }
            })
            .buffer_unordered(32)
            .for_each(|_| async {})
            .await;
        let enqueued = begun.elapsed();
        tracked = stage;

        let (stop, stopped) = tokio::sync::watch::channel(false);
        let running: Vec<_> = (0..workers)
            .map(|w| {
                let fleet = fleet.clone();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    fleet
                        .run_worker(format!("bench-{w}"), async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        })
                        .await
                })
            })
            .collect();
        // A second to fetch and warm up, then the measured window.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let polls_before = polls.load(Ordering::Relaxed);
        let cpu_before = cpu_seconds();
        let start = Instant::now();
        tokio::time::sleep(WINDOW).await;
        let polled = polls.load(Ordering::Relaxed) - polls_before;
        let cpu = cpu_seconds() - cpu_before;
        let wall = start.elapsed().as_secs_f64();
        let rss = rss_bytes();
        stop.send(true).unwrap();
        for worker in running {
            worker.await.unwrap();
        }

        let (live, all): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status IN ('Pending', 'Queued', 'Running')), count(*) FROM apalis.jobs",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let (bytes, database): (i64, i64) = sqlx::query_as(
            "SELECT pg_total_relation_size('apalis.jobs'), pg_database_size(current_database())",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        println!(
            "| {stage} | {:.1} MB | {:.0} | {:.0} | {:.2} / {:.2} | {:.0} | {:.0} MB |",
            rss as f64 / 1e6,
            polled as f64 / wall,
            polled as f64 / cpu,
            live as f64 / stage as f64,
            all as f64 / stage as f64,
            bytes as f64 / stage as f64,
            database as f64 / 1e6,
        );
        eprintln!(
            "  (enqueued {} in {enqueued:.1?}; {polled} polls in {wall:.1} s, {cpu:.1} CPU-s)",
            stage
        );
    }
    drop(sim.stdin.take());
    let _ = sim.wait();
}

/// User plus system CPU time of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: `getrusage` writes only into the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The current resident set size (`VmRSS`), not the peak.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
