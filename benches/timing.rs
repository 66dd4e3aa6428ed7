//! Bench 5: under real time, does each poll fire when the server asked?
//!
//! 1,000 operations at once, every "running" answer with `retry-after-ms: 50`, 5 polls each.
//! Lateness = a poll's arrival − (the previous answer to that operation + 50 ms).
//!
//! - in memory: the inner service stamps each answer and each arrival, so lateness is the layer's
//!   scheduling plus tokio's timer (which rounds deadlines up to its 1 ms tick); measured with all
//!   operations started together (all due in the same millisecond: the worst case) and with starts
//!   spread over the 50 ms period;
//! - loopback: the simulator over real HTTP, lateness between arrivals at the server, so it also
//!   includes one round trip (an upper bound).
//!
//! `cargo bench --bench timing`

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::MemScript;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::BodyExt;
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_lro::LongRunningLayer;
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

const OPERATIONS: usize = 1_000;
const RUNNING: u32 = 4;
const HINT: Duration = Duration::from_millis(50);

/// Per operation: when the next poll is due, and the lateness of every poll so far (µs).
struct Clock {
    due: Vec<Mutex<Option<Instant>>>,
    lateness: Mutex<Vec<i64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Layer,
    Hand,
}

/// When operation `id` starts: all at once, or spread evenly over one hint period.
fn offset(id: usize, spread: bool) -> Duration {
    if spread {
        HINT * id as u32 / OPERATIONS as u32
    } else {
        Duration::ZERO
    }
}

fn hint_of<B>(response: &http::Response<B>) -> Option<Duration> {
    let value = response.headers().get("retry-after-ms")?;
    let ms: u64 = value.to_str().ok()?.parse().ok()?;
    Some(Duration::from_millis(ms))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn monitor_of<B>(response: &http::Response<B>) -> http::Uri {
    let value = response
        .headers()
        .get("azure-asyncoperation")
        .expect("a monitor");
    http::Uri::try_from(value.as_bytes()).expect("an absolute URL")
}

fn poll_of(monitor: &http::Uri) -> Request<Full<Bytes>> {
    let mut poll = Request::new(Full::default());
    *poll.uri_mut() = monitor.clone();
    poll
}

/// The baseline: a hand-written loop that does `tokio::time::sleep(retry-after-ms)` after each
/// "running" answer, over the same service (in memory, or the hyper client): what tokio's timer
/// gives without the layer.
async fn hand_sleeping<S, B>(mut service: S, request: Request<Full<Bytes>>)
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut response = service
        .ready()
        .await
        .expect("ready")
        .call(request)
        .await
        .expect("ok");
    let monitor = monitor_of(&response);
    loop {
        let hint = hint_of(&response);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        if contains(&body, br#""status":"Succeeded""#) {
            return;
        }
        if let Some(hint) = hint {
            tokio::time::sleep(hint).await;
        }
        let poll = poll_of(&monitor);
        response = service
            .ready()
            .await
            .expect("ready")
            .call(poll)
            .await
            .expect("ok");
    }
}

fn in_memory(client: Client, multi_thread: bool, spread: bool) -> Vec<i64> {
    let rt = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .expect("a runtime");
    rt.block_on(async {
        let hint = (
            HeaderName::from_static("retry-after-ms"),
            HeaderValue::from(HINT.as_millis() as u64),
        );
        let script = MemScript::new(OPERATIONS, RUNNING, hint);
        let clock = Arc::new(Clock {
            due: (0..OPERATIONS).map(|_| Mutex::new(None)).collect(),
            lateness: Mutex::new(Vec::with_capacity(OPERATIONS * (RUNNING as usize + 1))),
        });
        let samples = clock.clone();
        let service = tower::service_fn(move |req: Request<Full<Bytes>>| {
            let (script, clock) = (script.clone(), clock.clone());
            // Arrival: the layer called the service.
            let arrived = Instant::now();
            let id = MemScript::id_of(req.uri());
            if let Some(due) = clock.due[id].lock().expect("not poisoned").take() {
                let late = if arrived >= due {
                    (arrived - due).as_micros() as i64
                } else {
                    -((due - arrived).as_micros() as i64)
                };
                clock.lateness.lock().expect("not poisoned").push(late);
            }
            async move {
                let (response, running) = script.answer(&req);
                if running {
                    *clock.due[id].lock().expect("not poisoned") = Some(Instant::now() + HINT);
                }
                Ok::<_, Infallible>(response)
            }
        });
        let stack = ServiceBuilder::new()
            .layer(LongRunningLayer::new())
            .service(service);
        let mut set = tokio::task::JoinSet::new();
        let start = Instant::now();
        for id in 0..OPERATIONS {
            let stack = stack.clone();
            let offset = offset(id, spread);
            let service = stack.get_ref().clone();
            set.spawn(async move {
                tokio::time::sleep_until(start + offset).await;
                match client {
                    Client::Layer => {
                        common::layer_operation(stack, MemScript::request(id)).await;
                    }
                    Client::Hand => hand_sleeping(service, MemScript::request(id)).await,
                }
            });
        }
        while let Some(done) = set.join_next().await {
            done.expect("the operation");
        }
        let lateness = std::mem::take(&mut *samples.lateness.lock().expect("not poisoned"));
        lateness
    })
}

/// Over loopback HTTP through the simulator; lateness between arrivals at the server.
fn loopback(client: Client, spread: bool) -> Vec<i64> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let sim = Simulator::start().await.expect("a simulator");
        let path = "/subscriptions/s/providers/P/things/t/start";
        sim.add(
            Scenario::new(Method::POST, path, Monitor::AzureAsyncOperation)
                .retry_after(RetryAfter::Millis(HINT.as_millis() as u64))
                .completes_after_polls(RUNNING),
        );
        let stack = common::stack();
        let url = sim.url(path);
        let mut set = tokio::task::JoinSet::new();
        let start = Instant::now();
        for id in 0..OPERATIONS {
            let request = Request::post(url.as_str())
                .body(Full::new(Bytes::from_static(b"{}")))
                .expect("a request");
            let stack = stack.clone();
            let at = start + offset(id, spread);
            set.spawn(async move {
                tokio::time::sleep_until(at).await;
                match client {
                    Client::Layer => {
                        stack.oneshot(request).await.expect("the operation");
                    }
                    Client::Hand => hand_sleeping(stack.get_ref().clone(), request).await,
                }
            });
        }
        while let Some(done) = set.join_next().await {
            done.expect("the task");
        }
        // The n-th POST started instance n, whose monitor is /operations/n.
        let requests = sim.requests();
        let mut previous: Vec<Option<Instant>> = vec![None; OPERATIONS + 1];
        let mut posts = 0;
        let mut lateness = Vec::new();
        for r in &requests {
            let id = if r.method == Method::POST {
                posts += 1;
                posts
            } else {
                r.uri
                    .path()
                    .rsplit('/')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("an operation id")
            };
            if let Some(last) = previous[id] {
                lateness.push((r.at - last).as_micros() as i64 - HINT.as_micros() as i64);
            }
            previous[id] = Some(r.at);
        }
        lateness
    })
}

fn report(name: &str, mut lateness: Vec<i64>) {
    assert!(!lateness.is_empty(), "{name}: no samples");
    let ms = |us: i64| us as f64 / 1000.0;
    let n = lateness.len();
    let within = lateness.iter().filter(|&&l| l <= 2000).count();
    println!(
        "{name:<54} {n:>6} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>9.2}%",
        ms(common::quantile(&mut lateness, 0.0)),
        ms(common::quantile(&mut lateness, 0.5)),
        ms(common::quantile(&mut lateness, 0.9)),
        ms(common::quantile(&mut lateness, 0.99)),
        ms(common::quantile(&mut lateness, 1.0)),
        within as f64 * 100.0 / n as f64
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!(
        "poll lateness, real time: {OPERATIONS} operations at once, retry-after-ms: {}, {} polls each",
        HINT.as_millis(),
        RUNNING + 1
    );
    println!(
        "{:<54} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "setup", "polls", "min ms", "p50 ms", "p90 ms", "p99 ms", "max ms", "<= 2 ms"
    );
    for (runtime, multi) in [("current_thread", false), ("multi_thread(2)", true)] {
        for (start, spread) in [("started together", false), ("starts spread", true)] {
            for client in [Client::Layer, Client::Hand] {
                report(
                    &format!("in-memory, {runtime}, {start}, {client:?}"),
                    in_memory(client, multi, spread),
                );
            }
        }
    }
    for (start, spread) in [("started together", false), ("starts spread", true)] {
        for client in [Client::Layer, Client::Hand] {
            report(
                &format!("loopback sim, multi_thread(2), {start}, {client:?}"),
                loopback(client, spread),
            );
        }
    }
    println!(
        "(lateness measured from the previous answer + the hint; tokio's timer ticks in 1 ms)"
    );
}
