//! Google AIP-151 long-running operations against the in-process simulator: one that runs for a
//! few polls and succeeds (with progress from its metadata), one that fails with a code, and one
//! canceled with `LongRunning::cancel`.
//!
//! ```text
//! cargo run --example google
//! ```
//!
//! No account and no network: the simulator listens on 127.0.0.1, and answers with
//! `retry-after-ms` hints of 50 ms so the tour takes well under a second.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{progress, Google, LongRunningLayer, OperationInfo, Polling, ResumeToken};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let sim = Simulator::start().await?;
    println!("simulated Google Cloud API on http://{}\n", sim.addr());
    let scenario = |path: &str| {
        Scenario::new(Method::POST, path, Monitor::GoogleOperation)
            .retry_after(RetryAfter::Millis(50))
            .percent_complete(true)
    };
    let instances = "/v1/projects/demo/locations/us-central1/instances";
    let backups = "/v1/projects/demo/locations/us-central1/backups";
    let exports = "/v1/projects/demo/locations/us-central1/exports";
    sim.add(scenario(instances).completes_after_polls(3).resource_body(
        r#"{"@type":"type.googleapis.com/google.cloud.sim.v1.Instance","name":"projects/demo/locations/us-central1/instances/web","state":"READY"}"#,
    ));
    sim.add(
        scenario(backups)
            .completes_after_polls(1)
            .ending(Ending::Failed {
                code: "9".into(),
                message: "the instance is not running".into(),
            }),
    );
    sim.add(scenario(exports).completes_after_polls(1_000));

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(Google::new()))
        .service(client);
    let post = |path: &str| {
        Request::post(sim.url(path))
            .header("content-type", "application/json")
            .body(Full::from("{}"))
    };

    println!("1. create an instance: polled until done, the result in `response`");
    let mut create = post(instances)?;
    let (sender, mut updates) = progress::channel();
    create.extensions_mut().insert(sender);
    // Each update's percentage, as the operation reports it (the channel keeps the latest).
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while updates.changed().await.is_ok() {
            let percent = updates
                .borrow_and_update()
                .as_ref()
                .and_then(|p| p.operation.percent_complete);
            seen.extend(percent.map(|p| format!("{p:.0}%")));
        }
        seen
    });
    let response = service.clone().oneshot(create).await?;
    let info = response
        .extensions()
        .get::<OperationInfo>()
        .cloned()
        .ok_or("a followed operation carries its OperationInfo")?;
    let body = response.into_body().collect().await?.to_bytes();
    let progress = watcher.await?;
    println!("   progress {}", progress.join(" → "));
    println!(
        "   done after {} polls of {}: {}\n",
        info.polls,
        info.monitor_url,
        String::from_utf8_lossy(&body)
    );

    println!("2. back up a stopped instance: the operation fails with a google.rpc code");
    let error = service
        .clone()
        .oneshot(post(backups)?)
        .await
        .err()
        .ok_or("the backup fails")?;
    println!(
        "   {:?}: code {} ({})\n",
        error.kind(),
        error.code().unwrap_or("-"),
        error.message().unwrap_or("-")
    );

    println!("3. start a long export, then cancel it");
    let mut start = post(exports)?;
    start.extensions_mut().insert(Polling::AcceptOnly);
    let accepted = service.clone().oneshot(start).await?;
    let token = accepted
        .extensions()
        .get::<ResumeToken>()
        .cloned()
        .ok_or("an accepted operation carries a token")?;
    println!(
        "   started {}; cancel: {}",
        token.monitor_url(),
        token.can_cancel()
    );
    let error = service
        .cancel(token)
        .await
        .err()
        .ok_or("the canceled export ends with an error")?;
    println!(
        "   {:?}: code {} ({})",
        error.kind(),
        error.code().unwrap_or("-"),
        error.message().unwrap_or("-")
    );
    println!("\n{} requests in all", sim.requests().len());
    Ok(())
}
