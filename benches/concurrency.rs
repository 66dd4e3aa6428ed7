//! Bench 3: 10,000 operations in flight at once through one service, and what each
//! costs in memory.
//!
//! The inner service is in memory (`tower::service_fn` scripting `202` + `Azure-AsyncOperation`,
//! then 4 × `InProgress` and `Succeeded`, all with `Retry-After: 0` and `Full<Bytes>` bodies), so
//! the layer is isolated from I/O. Every answer yields to the scheduler once first, so all the
//! operations really are in flight together (the bench checks the peak). Each configuration runs
//! in its own child process (this executable re-run with `--child`), so the peak RSS (`VmHWM`) of
//! one cannot hide in another's:
//!
//! - `hand`: the hand-written polling loop over the same service (the run "without the layer");
//! - `layer`: `LongRunningLayer` over it.
//!
//! Reported: polls/s, peak RSS above the RSS before the operations start, per operation, for both,
//! and the difference (the layer's own cost per in-flight operation; target ≤ 2 KiB); and
//! `size_of` the response future for the hyper client stack and for the in-memory stack.
//!
//! `cargo bench --bench concurrency`

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use common::{HttpClient, MemScript};
use http_body_util::Full;
use hyper::body::Incoming;
use tower::{Service, ServiceBuilder};
use tower_lro::LongRunningLayer;

const OPERATIONS: usize = 10_000;
const RUNNING: u32 = 4; // 5 polls per operation
const REPEATS: usize = 3;

#[derive(Debug, Clone, Copy)]
struct Outcome {
    before_kib: u64,
    peak_kib: u64,
    seconds: f64,
    peak_in_flight: usize,
}

impl Outcome {
    fn above(&self) -> u64 {
        self.peak_kib.saturating_sub(self.before_kib)
    }
}

/// Runs in a child process: `OPERATIONS` operations at once, then prints what it measured.
fn child(mode: &str, flavor: &str) {
    let rt = match flavor {
        "multi" => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .expect("a runtime");
    let outcome = rt.block_on(async {
        let script = MemScript::new(OPERATIONS, RUNNING, common::retry_now());
        let service = common::mem_service(script);
        let stack = ServiceBuilder::new()
            .layer(LongRunningLayer::new())
            .service(service.clone());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        // Every task waits for the starting signal, so that on a multi-thread runtime too all the
        // operations are under way together instead of finishing while others are spawned.
        let (go, ready) = tokio::sync::watch::channel(false);
        let before_kib = common::proc_status_kib("VmRSS");
        let mut set = tokio::task::JoinSet::new();
        for id in 0..OPERATIONS {
            let request = MemScript::request(id);
            let (in_flight, peak) = (in_flight.clone(), peak.clone());
            let (service, stack) = (service.clone(), stack.clone());
            let layer = mode == "layer";
            let mut ready = ready.clone();
            set.spawn(async move {
                ready.wait_for(|go| *go).await.expect("the signal");
                let now = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                peak.fetch_max(now, Ordering::Relaxed);
                let body = if layer {
                    common::layer_operation(stack, request).await
                } else {
                    common::hand_mem_operation(service, request).await
                };
                in_flight.fetch_sub(1, Ordering::Relaxed);
                body.len()
            });
        }
        tokio::task::yield_now().await; // let the tasks reach the gate
        let start = Instant::now();
        go.send(true).expect("tasks are waiting");
        while let Some(done) = set.join_next().await {
            assert!(done.expect("the operation's task") > 0);
        }
        Outcome {
            seconds: start.elapsed().as_secs_f64(),
            before_kib,
            peak_kib: common::proc_status_kib("VmHWM"),
            peak_in_flight: peak.load(Ordering::Relaxed),
        }
    });
    println!(
        "RESULT {} {} {} {}",
        outcome.before_kib, outcome.peak_kib, outcome.seconds, outcome.peak_in_flight
    );
}

fn run_child(mode: &str, flavor: &str) -> Outcome {
    let exe = std::env::current_exe().expect("this bench's path");
    let output = Command::new(exe)
        .args(["--child", mode, flavor])
        .output()
        .expect("the child runs");
    assert!(
        output.status.success(),
        "child {mode} {flavor} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .expect("a RESULT line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    Outcome {
        before_kib: fields[0].parse().expect("kib"),
        peak_kib: fields[1].parse().expect("kib"),
        seconds: fields[2].parse().expect("seconds"),
        peak_in_flight: fields[3].parse().expect("count"),
    }
}

fn future_sizes() {
    use std::mem::{size_of, size_of_val};
    println!("future sizes (bytes)");
    println!(
        "  ResponseFuture<hyper-util Client<HttpConnector, Full<Bytes>>, Full<Bytes>, Incoming>: {}",
        size_of::<tower_lro::future::ResponseFuture<HttpClient, Full<Bytes>, Incoming>>()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let service = common::mem_service(MemScript::new(1, RUNNING, common::retry_now()));
        let mut stack = ServiceBuilder::new()
            .layer(LongRunningLayer::new())
            .service(service.clone());
        let layer_future = stack.call(MemScript::request(0));
        println!(
            "  ResponseFuture<in-memory service_fn, Full<Bytes>, Full<Bytes>>:                     {}",
            size_of_val(&layer_future)
        );
        let mut inner = service.clone();
        println!(
            "    of which the in-memory service's own future:                                   {}",
            size_of_val(&inner.call(MemScript::request(0)))
        );
        println!(
            "  hand-written loop's future, in-memory service (the whole operation):              {}",
            size_of_val(&common::hand_mem_operation(service, MemScript::request(0)))
        );
        let client = common::client();
        println!(
            "  hand-written loop's future, hyper client (the whole operation):                   {}",
            size_of_val(&common::hand_operation(
                &client,
                common::original("http://127.0.0.1:1", common::Kind::AsyncOperation, 1, 1),
                common::Kind::AsyncOperation
            ))
        );
    });
    println!(
        "  parts: hyper-util legacy ResponseFuture {}, tokio Sleep {}, Option<Sleep> {}, HeaderMap {}, \
         Uri {}, Extensions {}, Method {}, Instant {}, response::Parts {}",
        size_of::<hyper_util::client::legacy::ResponseFuture>(),
        size_of::<tokio::time::Sleep>(),
        size_of::<Option<tokio::time::Sleep>>(),
        size_of::<http::HeaderMap>(),
        size_of::<http::Uri>(),
        size_of::<http::Extensions>(),
        size_of::<http::Method>(),
        size_of::<tokio::time::Instant>(),
        size_of::<http::response::Parts>(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], &args[i + 2]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    future_sizes();
    println!();
    println!(
        "{OPERATIONS} operations in flight at once through one service, {} polls each \
         (in-memory inner service, Retry-After: 0); each run in its own process, best of {REPEATS}",
        RUNNING + 1
    );
    println!(
        "{:<8} {:<15} {:>12} {:>10} {:>12} {:>14} {:>11}",
        "config", "runtime", "polls/s", "in flight", "RSS before", "peak above", "per op"
    );
    for flavor in ["current_thread", "multi"] {
        let mut best = Vec::new();
        for mode in ["hand", "layer"] {
            let runs: Vec<Outcome> = (0..REPEATS).map(|_| run_child(mode, flavor)).collect();
            let fastest = runs.iter().map(|o| o.seconds).fold(f64::INFINITY, f64::min);
            let lowest = runs
                .iter()
                .min_by_key(|o| o.above())
                .copied()
                .expect("runs");
            let polls = (OPERATIONS as f64) * f64::from(RUNNING + 1);
            println!(
                "{:<8} {:<15} {:>12.0} {:>10} {:>9} KiB {:>10} KiB {:>9} B",
                mode,
                flavor,
                polls / fastest,
                lowest.peak_in_flight,
                lowest.before_kib,
                lowest.above(),
                lowest.above() * 1024 / OPERATIONS as u64
            );
            best.push((polls / fastest, lowest.above(), lowest.peak_in_flight));
        }
        let (hand, layer) = (best[0], best[1]);
        if hand.2 == OPERATIONS && layer.2 == OPERATIONS {
            println!(
                "  layer - hand ({flavor}): {:+} B per in-flight operation (target <= 2048 B); \
                 throughput layer/hand {:.3}",
                (layer.1 as i64 - hand.1 as i64) * 1024 / OPERATIONS as i64,
                layer.0 / hand.0
            );
        } else {
            println!(
                "  ({flavor}: the workers finish operations while others start, so fewer than \
                 {OPERATIONS} were in flight at once and RSS per operation is not comparable; \
                 throughput layer/hand {:.3})",
                layer.0 / hand.0
            );
        }
    }
}
