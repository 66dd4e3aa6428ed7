//! Operations that outlive the process, on the embedded default: an SQLite file. Starts six
//! operations against the in-process simulator (each initial request sent once, its token in
//! the store before `start` returns), then two workers in this process step them to their
//! outcomes, printing each step's progress and each outcome once.
//!
//! ```text
//! cargo run -p tower-lro-fleet --example fleet
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_lro::LongRunningLayer;
use tower_lro_fleet::{Delivery, FleetBuilder, Started, Store};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const OPERATIONS: usize = 6;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let begun = Instant::now();
    let sim = Simulator::start().await?;
    for i in 0..OPERATIONS {
        let scenario = Scenario::new(
            Method::POST,
            format!("/vms/vm{i}/start"),
            Monitor::AzureAsyncOperation,
        )
        .retry_after(RetryAfter::Millis(100))
        .percent_complete(true)
        .completes_after_polls(1 + (i as u32 % 2));
        sim.add(if i == OPERATIONS - 1 {
            scenario.ending(Ending::Failed {
                code: "QuotaExceeded".into(),
                message: "no cores left in westus".into(),
            })
        } else {
            scenario
        });
    }

    let dir = std::env::temp_dir().join(format!("tower-lro-fleet-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = Store::sqlite(dir.join("operations.db")).await?;
    println!("store: {}", dir.join("operations.db").display());

    let delivered = Arc::new(AtomicUsize::new(0));
    let handler = {
        let delivered = delivered.clone();
        tower::service_fn(move |delivery: Delivery<Incoming>| {
            let delivered = delivered.clone();
            async move {
                let line = match delivery.into_parts() {
                    (id, key, Ok(response)) => {
                        let status = response.status();
                        let body = response.into_body().collect().await?.to_bytes();
                        format!("{key} ({id}): {status} {}", String::from_utf8_lossy(&body))
                    }
                    (id, key, Err(error)) => format!("{key} ({id}): {error}"),
                };
                println!("outcome  {line}");
                delivered.fetch_add(1, Ordering::SeqCst);
                Ok::<_, BoxError>(())
            }
        })
    };
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layer = LongRunningLayer::new();
    let fleet = FleetBuilder::new(store)
        .heartbeat(Duration::from_secs(2))
        .fetch_interval(Duration::from_millis(50))
        .build(layer, client, handler)?;

    // The gateway's side: start each operation, answer only once it is tracked.
    for i in 0..OPERATIONS {
        let request =
            Request::post(sim.url(&format!("/vms/vm{i}/start"))).body(Full::<Bytes>::default())?;
        match fleet.start(format!("vm{i}"), request).await? {
            Started::Tracked { id, response } => {
                println!("started  vm{i}: {} (tracked as {id})", response.status())
            }
            other => return Err(format!("vm{i} was not tracked: {other:?}").into()),
        }
    }

    // Two workers, as two processes would run them; stopped once every outcome is in.
    let all_in = {
        let delivered = delivered.clone();
        async move {
            while delivered.load(Ordering::SeqCst) < OPERATIONS {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let (done, _) = tokio::sync::watch::channel(false);
    let one = fleet.run_worker("worker-1", {
        let mut stopped = done.subscribe();
        async move {
            let _ = stopped.wait_for(|d| *d).await;
        }
    });
    let two = fleet.run_worker("worker-2", {
        let mut stopped = done.subscribe();
        async move {
            let _ = stopped.wait_for(|d| *d).await;
        }
    });
    let stop = async {
        tokio::time::timeout(Duration::from_secs(30), all_in).await?;
        done.send_replace(true);
        Ok::<_, tokio::time::error::Elapsed>(())
    };
    let (stopped, (), ()) = tokio::join!(stop, one, two);
    std::fs::remove_dir_all(&dir)?;
    stopped.map_err(|_| "not every outcome arrived within 30 s")?;

    for i in 0..OPERATIONS {
        let path = format!("/vms/vm{i}/start");
        assert_eq!(sim.count(&Method::POST, &path), 1, "{path} was sent once");
    }
    println!(
        "{OPERATIONS} operations, {OPERATIONS} outcomes, each POST sent once, in {:.1} s",
        begun.elapsed().as_secs_f64()
    );
    Ok(())
}
