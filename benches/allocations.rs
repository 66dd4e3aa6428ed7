//! Allocations per poll, counted by a global allocator that counts only
//! on the measuring thread (the client's current-thread runtime; the lean server's thread is not
//! counted).
//!
//! For each client, operations with 2 and with 10 "running" answers are run; the difference
//! divided by 8 is the cost of one poll, the rest is the per-operation cost. The hand-written loop
//! over the same inner service sends the same requests, so "layer − hand" is what the layer itself
//! allocates; the guarded loop (`common::guarded_operation`) sends them too, with the layer's
//! guarantees (timeouts, bounded bodies, serde_json parsing, the origin check).
//!
//! `cargo bench --bench allocations`; `… -- --profile CLIENT [N]` runs one client in a loop (N
//! "running" answers per operation, default 10) for `valgrind --tool=callgrind`, where CLIENT is
//! `layer-mem` or `hand-mem` (in memory), or `layer-http`, `guarded-http` or `hand-http`
//! (loopback Azure-AsyncOperation POST; append `-location`, `-resource` or `-google` for the
//! other kinds).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Kind, LeanServer, MemScript};
use tokio::runtime::Runtime;
use tower::ServiceBuilder;
use tower_lro::LongRunningLayer;

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are atomics and
// the thread-local flag is const-initialised, so nothing here allocates or unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (count, bytes) made on this thread while `f` runs.
fn count(f: impl FnOnce()) -> (u64, u64) {
    let (a, b) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    (
        ALLOCATIONS.load(Ordering::Relaxed) - a,
        BYTES.load(Ordering::Relaxed) - b,
    )
}

const SHORT: u32 = 2;
const LONG: u32 = 10;
const OPS: u64 = 200;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Layer,
    /// The hand-written loop with the layer's guarantees (loopback only).
    Guarded,
    Hand,
}

/// `OPS` in-memory operations with `running` "running" answers, one at a time.
fn mem_ops(rt: &Runtime, client: Client, running: u32, ops: u64) {
    rt.block_on(async {
        let script = MemScript::new(1, running, common::retry_now());
        let service = common::mem_service(script);
        let stack = ServiceBuilder::new()
            .layer(LongRunningLayer::new())
            .service(service.clone());
        for _ in 0..ops {
            let body = match client {
                Client::Layer => {
                    common::layer_operation(stack.clone(), MemScript::request(0)).await
                }
                Client::Hand => {
                    common::hand_mem_operation(service.clone(), MemScript::request(0)).await
                }
                Client::Guarded => panic!("the guarded loop runs over loopback only"),
            };
            std::hint::black_box(body);
        }
    });
}

struct Http {
    rt: Runtime,
    base: String,
    layers: common::Layers,
    client: common::HttpClient,
    next_id: u64,
    _server: LeanServer,
}

impl Http {
    fn new() -> Http {
        let rt = runtime();
        let server = LeanServer::start();
        let (layers, client) = rt.block_on(async { (common::Layers::new(), common::client()) });
        Http {
            base: server.base(),
            rt,
            layers,
            client,
            next_id: 0,
            _server: server,
        }
    }

    fn ops(&mut self, client: Client, kind: Kind, running: u32, ops: u64) {
        let Http {
            rt,
            base,
            layers,
            client: http,
            next_id,
            ..
        } = self;
        rt.block_on(async {
            for _ in 0..ops {
                *next_id += 1;
                let request = common::original(base, kind, running, *next_id);
                let body = match client {
                    Client::Layer => layers.operation(kind, request).await,
                    Client::Guarded => common::guarded_operation(http, request, kind)
                        .await
                        .expect("the guarded loop's operation succeeds"),
                    Client::Hand => common::hand_operation(http, request, kind).await,
                };
                std::hint::black_box(body);
            }
        });
    }
}

/// (allocations per poll, bytes per poll, allocations per operation besides its polls).
fn per_poll(mut run: impl FnMut(u32)) -> (f64, f64, f64) {
    run(SHORT); // warm-up: pools, connections, lazily built state
    let (short_allocs, short_bytes) = count(|| run(SHORT));
    let (long_allocs, long_bytes) = count(|| run(LONG));
    let polls = f64::from(LONG - SHORT) * OPS as f64;
    let per_poll = (long_allocs as f64 - short_allocs as f64) / polls;
    let bytes = (long_bytes as f64 - short_bytes as f64) / polls;
    let fixed = short_allocs as f64 / OPS as f64 - per_poll * f64::from(SHORT + 1);
    (per_poll, bytes, fixed)
}

fn profile(mode: &str, running: u32) {
    // A steady loop of one client for callgrind; sized to take a few seconds under valgrind.
    match mode {
        "layer-mem" => mem_ops(&runtime(), Client::Layer, running, 2_000),
        "hand-mem" => mem_ops(&runtime(), Client::Hand, running, 2_000),
        _ if mode.starts_with("layer-http") => profile_http(Client::Layer, mode, running),
        _ if mode.starts_with("guarded-http") => profile_http(Client::Guarded, mode, running),
        _ if mode.starts_with("hand-http") => profile_http(Client::Hand, mode, running),
        other => panic!("unknown profile mode {other}"),
    }
}

fn profile_http(client: Client, mode: &str, running: u32) {
    let mut http = Http::new();
    http.ops(client, Kind::from_suffix(mode), running, 300);
}

/// Prints the layer's row, the guarded loop's (loopback), the hand loop's, and layer − hand.
fn print_pair(label: &str, guarded: bool, mut measure: impl FnMut(Client) -> (f64, f64, f64)) {
    let row = |name: &str, (a, b, c): (f64, f64, f64)| {
        println!("{name:<34} {a:>14.2} {b:>14.1} {c:>16.2}")
    };
    let layer = measure(Client::Layer);
    row(&format!("{label}, {:?}", Client::Layer), layer);
    if guarded {
        row(
            &format!("{label}, {:?}", Client::Guarded),
            measure(Client::Guarded),
        );
    }
    let hand = measure(Client::Hand);
    row(&format!("{label}, {:?}", Client::Hand), hand);
    row(
        "  layer - hand",
        (layer.0 - hand.0, layer.1 - hand.1, layer.2 - hand.2),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--profile") {
        let running = args.get(i + 2).and_then(|n| n.parse().ok()).unwrap_or(LONG);
        profile(&args[i + 1], running);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    println!("allocations on the client thread (per poll = the difference between {LONG} and {SHORT} running answers)");
    println!(
        "{:<34} {:>14} {:>14} {:>16}",
        "client", "allocs/poll", "bytes/poll", "allocs/op fixed"
    );
    let rt = runtime();
    print_pair("in-memory aao-post", false, |client| {
        per_poll(|running| mem_ops(&rt, client, running, OPS))
    });
    let mut http = Http::new();
    for kind in Kind::ALL {
        print_pair(&format!("loopback {}", kind.name()), true, |client| {
            per_poll(|running| http.ops(client, kind, running, OPS))
        });
    }
}
