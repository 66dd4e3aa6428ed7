//! Bench 1: the layer's overhead against the limit, over real loopback HTTP.
//!
//! Client A is `LongRunningLayer` over a hyper-util legacy client. Two hand-written polling loops
//! over the same client type send exactly the same requests: the guarded loop gives the layer's
//! guarantees (a `tokio::time::timeout` on every request, bounded bodies, every status body parsed
//! by serde_json, the monitor URL's origin checked, `Retry-After` obeyed), which makes it the
//! honest limit; client B, the minimal loop, parses only what tells it to stop. All run on one
//! current-thread runtime on the bench's main thread (the client's connection tasks too); the
//! lean loopback server runs on its own thread. Each operation is one of four kinds
//! (Azure-AsyncOperation POST, Location PUT, resource PUT, Google operation POST) with
//! `Retry-After: 0` and 5 polls.
//!
//! Two measurements, one process:
//! 1. criterion groups `overhead/<kind>` with `layer`, `guarded` and `hand` side by side (wall
//!    time per operation);
//! 2. an interleaved loop (the order reversed every round, batches of operations) that reports
//!    the median ratio of each client to the guarded loop and to the minimal one, of wall time,
//!    of the client thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`) and of the process's CPU time
//!    (server included), and checks every client sent the same number of requests.
//!
//! Then it prints the requests the layer sends for every simulator scenario kind next to the
//! protocol minimum (asserted exactly in `tests/request_minimum.rs`).
//!
//! `cargo bench --bench overhead`

mod common;

use std::time::{Duration, Instant};

use common::{guarded_operation, hand_operation, original, Kind, LeanServer};
use criterion::{Criterion, Throughput};
use http::Method;
use tokio::runtime::Runtime;
use tower::ServiceExt;
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

/// "Running" answers before "Succeeded": 5 polls per operation.
const RUNNING: u32 = 4;
/// Operations per batch of the interleaved loop, and batches per client.
const BATCH: u64 = 150;
const ROUNDS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    /// The layer with its defaults.
    Layer,
    /// The layer with `poll_timeout(None)`: no timer armed per request (a diagnostic).
    LayerNoPollTimeout,
    /// The hand-written loop with the layer's guarantees.
    Guarded,
    /// The minimal hand-written loop.
    Hand,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Layer => "layer",
            Which::LayerNoPollTimeout => "layer_no_poll_timeout",
            Which::Guarded => "guarded",
            Which::Hand => "hand",
        }
    }
}

struct Clients {
    rt: Runtime,
    server: LeanServer,
    base: String,
    layers: common::Layers,
    untimed: common::Layers,
    client: common::HttpClient,
    next_id: u64,
}

impl Clients {
    fn new() -> Clients {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let server = LeanServer::start();
        let base = server.base();
        // Both clients are built inside the runtime, as a user's would be.
        let (layers, untimed, client) = rt.block_on(async {
            (
                common::Layers::new(),
                common::Layers::untimed(),
                common::client(),
            )
        });
        Clients {
            rt,
            server,
            base,
            layers,
            untimed,
            client,
            next_id: 0,
        }
    }

    /// Runs `n` operations of `kind` one after the other through `which`.
    fn run(&mut self, which: Which, kind: Kind, n: u64) {
        let Clients {
            rt,
            base,
            layers,
            untimed,
            client,
            next_id,
            ..
        } = self;
        rt.block_on(async {
            for _ in 0..n {
                *next_id += 1;
                let request = original(base, kind, RUNNING, *next_id);
                let body = match which {
                    Which::Layer => layers.operation(kind, request).await,
                    Which::LayerNoPollTimeout => untimed.operation(kind, request).await,
                    Which::Guarded => guarded_operation(client, request, kind)
                        .await
                        .expect("the guarded loop's operation succeeds"),
                    Which::Hand => hand_operation(client, request, kind).await,
                };
                std::hint::black_box(body);
            }
        });
    }
}

fn criterion_groups(c: &mut Criterion, clients: &mut Clients) {
    for kind in Kind::ALL {
        let mut group = c.benchmark_group(format!("overhead/{}", kind.name()));
        group.throughput(Throughput::Elements(1));
        for which in [Which::Layer, Which::Guarded, Which::Hand] {
            group.bench_function(which.name(), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    clients.run(which, kind, iters);
                    start.elapsed()
                })
            });
        }
        group.finish();
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    wall: Duration,
    thread: Duration,
    process: Duration,
    requests: u64,
}

fn measure(clients: &mut Clients, which: Which, kind: Kind) -> Sample {
    let requests = clients.server.requests();
    let (wall, thread, process) = (Instant::now(), common::thread_cpu(), common::process_cpu());
    clients.run(which, kind, BATCH);
    Sample {
        wall: wall.elapsed(),
        thread: common::thread_cpu() - thread,
        process: common::process_cpu() - process,
        requests: clients.server.requests() - requests,
    }
}

fn per_op(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6 / BATCH as f64
}

fn interleaved(clients: &mut Clients) {
    const CLIENTS: [Which; 4] = [
        Which::Layer,
        Which::LayerNoPollTimeout,
        Which::Guarded,
        Which::Hand,
    ];
    const GUARDED: usize = 2;
    const HAND: usize = 3;
    println!();
    println!(
        "overhead, interleaved ({ROUNDS} rounds x {BATCH} operations per client, order reversed \
         every round; {} polls/operation, Retry-After: 0, one operation at a time)",
        RUNNING + 1
    );
    println!(
        "{:<13} {:<22} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>7} {:>7} | {:>6}",
        "kind",
        "client",
        "wall",
        "thrCPU",
        "prcCPU",
        "wall",
        "thrCPU",
        "prcCPU",
        "wall",
        "thrCPU",
        "req/op"
    );
    println!(
        "{:<13} {:<22} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>7} {:>7} |",
        "", "", "us/op", "us/op", "us/op", "/guard", "/guard", "/guard", "/hand", "/hand"
    );
    for kind in Kind::ALL {
        // Warm up every client (connections, allocator, caches).
        for which in CLIENTS {
            clients.run(which, kind, BATCH / 2);
        }
        let mut samples = vec![Vec::new(); CLIENTS.len()];
        for round in 0..ROUNDS {
            let mut order: Vec<usize> = (0..CLIENTS.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                samples[i].push(measure(clients, CLIENTS[i], kind));
            }
        }
        for (i, which) in CLIENTS.iter().enumerate() {
            let total = |f: fn(&Sample) -> Duration| -> f64 {
                per_op(samples[i].iter().map(f).sum::<Duration>() / ROUNDS as u32)
            };
            let ratio = |to: usize, f: fn(&Sample) -> Duration| -> f64 {
                let mut ratios: Vec<f64> = samples[i]
                    .iter()
                    .zip(&samples[to])
                    .map(|(a, b)| f(a).as_secs_f64() / f(b).as_secs_f64())
                    .collect();
                common::median(&mut ratios)
            };
            for (a, b) in samples[i].iter().zip(&samples[HAND]) {
                assert_eq!(
                    a.requests, b.requests,
                    "{which:?} and the minimal loop must send the same requests ({kind:?})"
                );
            }
            let requests: u64 = samples[i].iter().map(|s| s.requests).sum();
            println!(
                "{:<13} {:<22} {:>7.1} {:>7.1} {:>7.1} | {:>7.3} {:>7.3} {:>7.3} | {:>7.3} {:>7.3} | {:>6}",
                kind.name(),
                which.name(),
                total(|s| s.wall),
                total(|s| s.thread),
                total(|s| s.process),
                ratio(GUARDED, |s| s.wall),
                ratio(GUARDED, |s| s.thread),
                ratio(GUARDED, |s| s.process),
                ratio(HAND, |s| s.wall),
                ratio(HAND, |s| s.thread),
                requests as f64 / (BATCH * ROUNDS as u64) as f64,
            );
        }
    }
    println!(
        "(ratios: median over rounds of client/guarded and client/hand; thrCPU = the client \
         thread, which runs the client, its connections and the layer; prcCPU adds the server \
         thread)"
    );
}

/// One operation per simulator scenario kind through the layer, and the requests the simulator
/// received, next to the protocol minimum: initial + the polls the server dictates + at most one
/// final GET.
fn request_counts() {
    const POLLS: u32 = 3; // "running" answers; one more poll sees the terminal status
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    type Case = (&'static str, Method, Monitor, bool, bool, u32);
    // name, method, monitor, Location header, resourceLocation, final GETs the protocol needs
    let cases: [Case; 7] = [
        (
            "AAO POST",
            Method::POST,
            Monitor::AzureAsyncOperation,
            false,
            false,
            0,
        ),
        (
            "AAO PUT",
            Method::PUT,
            Monitor::AzureAsyncOperation,
            false,
            false,
            1,
        ),
        (
            "OL PUT + resourceLocation",
            Method::PUT,
            Monitor::OperationLocation,
            false,
            true,
            1,
        ),
        (
            "Location PUT",
            Method::PUT,
            Monitor::Location,
            false,
            false,
            0,
        ),
        (
            "resource PUT",
            Method::PUT,
            Monitor::Resource,
            false,
            false,
            0,
        ),
        (
            "AAO+Location POST",
            Method::POST,
            Monitor::AzureAsyncOperation,
            true,
            false,
            1,
        ),
        (
            "AAO DELETE",
            Method::DELETE,
            Monitor::AzureAsyncOperation,
            false,
            false,
            0,
        ),
    ];
    println!();
    println!(
        "requests per operation, simulator over loopback ({POLLS} running answers, Retry-After: 0)"
    );
    println!(
        "{:<26} {:>8} {:>6} {:>6} {:>6} {:>8}",
        "scenario", "initial", "polls", "final", "total", "minimum"
    );
    rt.block_on(async {
        for (name, method, kind, location, resource_location, finals) in cases {
            let sim = Simulator::start().await.expect("a simulator");
            let path = "/subscriptions/s/resourceGroups/g/providers/P/things/t";
            sim.add(
                Scenario::new(method.clone(), path, kind)
                    .retry_after(RetryAfter::Seconds(0))
                    .completes_after_polls(POLLS)
                    .location_header(location)
                    .resource_location(resource_location),
            );
            let request = http::Request::builder()
                .method(method.clone())
                .uri(sim.url(path))
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
                .expect("a request");
            common::stack()
                .oneshot(request)
                .await
                .expect("the operation succeeds");
            let requests = sim.requests();
            let initial = requests.iter().filter(|r| r.method == method).count();
            let polls = requests
                .iter()
                .filter(|r| {
                    r.method == Method::GET
                        && (r.uri.path().starts_with("/operations")
                            || kind == Monitor::Resource && r.uri.path() == path)
                })
                .count();
            let total = requests.len();
            let minimum = 1 + (POLLS + 1) as usize + finals as usize;
            println!(
                "{name:<26} {initial:>8} {polls:>6} {:>6} {total:>6} {minimum:>8}{}",
                total - initial - polls,
                if total == minimum {
                    ""
                } else {
                    "  <-- above the minimum"
                }
            );
        }
    });
}

fn main() {
    let list_only = std::env::args().any(|a| a == "--list");
    let mut clients = Clients::new();
    let mut criterion = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    criterion_groups(&mut criterion, &mut clients);
    criterion.final_summary();
    if list_only {
        return;
    }
    interleaved(&mut clients);
    request_counts();
}
