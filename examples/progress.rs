//! A terminal progress bar driven by the operation's `percentComplete`, through the per-request
//! progress channel.
//!
//! ```text
//! cargo run --example progress
//! ```

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{progress, LongRunningLayer};
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let sim = Simulator::start().await?;
    let path = "/subscriptions/s/resourceGroups/demo/providers/Microsoft.Sql/servers/db1/import";
    sim.add(
        Scenario::new(Method::POST, path, Monitor::AzureAsyncOperation)
            .retry_after(RetryAfter::Millis(100))
            .percent_complete(true)
            .running_status("Running")
            .completes_after(Duration::from_secs(2)),
    );
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .service(client);

    let (sender, mut updates) = progress::channel();
    let mut request = http::Request::post(sim.url(path)).body(Full::default())?;
    request.extensions_mut().insert(sender);

    let bar = ProgressBar::new(100);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos:>3}% {msg}")?.progress_chars("=> "),
    );
    let watcher = {
        let bar = bar.clone();
        tokio::spawn(async move {
            // The channel keeps only the latest update: drawing never slows polling down.
            while updates.changed().await.is_ok() {
                let Some(update) = updates.borrow_and_update().clone() else {
                    continue;
                };
                let op = &update.operation;
                if let Some(percent) = op.percent_complete {
                    bar.set_position(percent.clamp(0.0, 100.0) as u64);
                }
                let status = op.state.as_deref().unwrap_or("accepted");
                bar.set_message(format!("{status}, {} polls", op.polls));
            }
        })
    };
    let response = service.oneshot(request).await?;
    watcher.await?;
    bar.finish_with_message(format!("done: {}", response.status()));
    println!("final status {}", response.status());
    Ok(())
}
