//! The README's Quick start: a complete program, with an in-process simulator standing in for
//! Azure Resource Manager so that it runs anywhere. Its `[dependencies]`:
//!
//! ```toml
//! tower-lro = { version = "0.1", features = ["reqwest"] }
//! tower-lro-sim = "0.1"
//! reqwest = "0.13"
//! tower = { version = "0.5", features = ["util"] }
//! http = "1"
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
use http::Method;
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{LongRunningLayer, OperationInfo, ReqwestService};
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // A simulated Azure on 127.0.0.1 that creates a storage account slowly: 202 + Location, then
    // "still running" twice. Against Azure, drop these lines (and `tower-lro-sim`), use
    // https://management.azure.com, and add auth below the layer (see tower-lro-auth).
    let sim = Simulator::start().await?;
    let path = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a";
    sim.add(
        Scenario::new(Method::PUT, path, Monitor::Location).retry_after(RetryAfter::Millis(200)),
    );
    let url = sim.url(&format!("{path}?api-version=2023-01-01"));

    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .service(ReqwestService::new(reqwest::Client::new()));

    let request = http::Request::put(url)
        .header("content-type", "application/json")
        .body(reqwest::Body::from(
            r#"{"location":"westeurope","sku":{"name":"Standard_LRS"},"kind":"StorageV2"}"#,
        ))?;
    // Resolves after the 202, the waits and the polls, with the final response.
    let response = service.oneshot(request).await?;
    if let Some(info) = response.extensions().get::<OperationInfo>() {
        println!("followed {} polls in {:?}", info.polls, info.elapsed);
    }
    let response = reqwest::Response::from(response).error_for_status()?;
    println!("{} from {}", response.status(), response.url());
    println!("{}", response.text().await?);
    Ok(())
}
