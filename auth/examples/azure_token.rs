//! Every request of an operation signed with a bearer token that refreshes itself: the original
//! PUT and each poll ask `BearerTokenLayer`, below `LongRunningLayer`, for `Authorization`.
//!
//! ```text
//! cargo run -p tower-lro-auth --example azure_token
//! ```
//!
//! Against the simulator, with a fake token source whose tokens expire seconds after the layer's
//! refresh margin begins, so that a refresh happens mid-operation. With Azure, the source is an
//! `azure_identity` credential (feature `azure-core`):
//!
//! ```text
//! let credential = azure_identity::DeveloperToolsCredential::new(None)?;
//! let source = AzureCredential::new(credential, ["https://management.azure.com/.default"]);
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::Method;
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{LongRunningLayer, ReqwestService};
use tower_lro_auth::{token_fn, AccessToken, BearerTokenLayer};
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Replaced this long before it expires.
const MARGIN: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let sim = Simulator::start().await?;
    let path = "/subscriptions/s/resourceGroups/demo/providers/Microsoft.Compute/virtualMachines/vm1/start";
    sim.add(
        Scenario::new(Method::POST, path, Monitor::AzureAsyncOperation)
            .retry_after(RetryAfter::Millis(150))
            .completes_after_polls(4),
    );

    // A stand-in identity provider: each token is good for 300 ms past the refresh margin.
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    let tokens = token_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            println!("  (identity provider: issuing token {n})");
            let lifetime = MARGIN + Duration::from_millis(300);
            Ok(AccessToken::new(
                format!("fake-token-{n}"),
                SystemTime::now() + lifetime,
            ))
        }
    });

    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .layer(BearerTokenLayer::new(tokens).refresh_before(MARGIN))
        .service(ReqwestService::new(reqwest::Client::new()));
    let request = http::Request::post(sim.url(&format!("{path}?api-version=2024-07-01")))
        .body(reqwest::Body::default())?;
    let response = service.oneshot(request).await?;
    println!("final: {}", response.status());

    let requests = sim.requests();
    for request in &requests {
        let authorization = request
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("(none)");
        println!(
            "{} {} -> {authorization}",
            request.method,
            request.uri.path()
        );
    }
    let unsigned = requests
        .iter()
        .filter(|r| r.headers.get("authorization").is_none())
        .count();
    println!(
        "{} requests, {} tokens issued",
        requests.len(),
        issued.load(Ordering::SeqCst)
    );
    if unsigned == 0 && response.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "{unsigned} unsigned requests, final status {}",
            response.status()
        )
        .into())
    }
}
