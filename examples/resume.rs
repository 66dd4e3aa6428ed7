//! Handing an operation over: one "worker" starts it and saves its resume token to a file when
//! it stops; another, built from scratch, reads the file and follows the operation to the end.
//!
//! ```text
//! cargo run --example resume
//! ```

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{progress, LongRunningLayer, OperationInfo, ResumeToken};
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn stack(
) -> tower_lro::LongRunning<Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>>
{
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .service(client)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let sim = Simulator::start().await?;
    let path =
        "/subscriptions/s/resourceGroups/demo/providers/Microsoft.Storage/storageAccounts/handoff";
    sim.add(
        Scenario::new(Method::PUT, path, Monitor::AzureAsyncOperation)
            .retry_after(RetryAfter::Millis(50))
            .completes_after_polls(6),
    );
    let token_file =
        std::env::temp_dir().join(format!("tower-lro-resume-{}.json", std::process::id()));

    // Worker 1 starts the operation and watches it; after two polls it "shuts down".
    {
        let (sender, mut updates) = progress::channel();
        let mut request = http::Request::put(sim.url(&format!("{path}?api-version=2023-01-01")))
            .header("content-type", "application/json")
            .header("x-ms-client-request-id", "handoff-demo")
            .body(Full::from(
                r#"{"location":"westeurope","sku":{"name":"Standard_LRS"},"kind":"StorageV2"}"#,
            ))?;
        request.extensions_mut().insert(sender);
        let operation = stack().oneshot(request);
        tokio::pin!(operation);
        loop {
            tokio::select! {
                result = &mut operation => return Err(format!("finished before the hand-off: {:?}", result.map(|r| r.status())).into()),
                changed = updates.changed() => {
                    changed?;
                    let Some(update) = updates.borrow_and_update().clone() else { continue };
                    println!("worker 1: {} polls, status {:?}", update.operation.polls, update.operation.state);
                    if update.operation.polls == 2 {
                        std::fs::write(&token_file, update.resume_token.to_json())?;
                        println!("worker 1: saved the token to {} and stops", token_file.display());
                        break;
                    }
                }
            }
        }
        // Leaving the block drops the operation's future: worker 1 polls no more.
    }
    let sent_by_worker_1 = sim.requests().len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        sim.requests().len(),
        sent_by_worker_1,
        "a dropped operation sends nothing"
    );

    // Worker 2 knows nothing but the file.
    let saved = std::fs::read_to_string(&token_file)?;
    std::fs::remove_file(&token_file)?;
    println!("worker 2: token {saved}");
    let token = ResumeToken::from_json(&saved)?;
    let response = stack().resume(token).await?;
    let info = response.extensions().get::<OperationInfo>().cloned();
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!(
        "worker 2: final {status} {}",
        String::from_utf8_lossy(&body)
    );
    if let Some(info) = info {
        println!("worker 2: {} polls in all, {:?}", info.polls, info.elapsed);
    }
    println!("the PUT was sent {} time(s)", sim.count(&Method::PUT, path));
    Ok(())
}
