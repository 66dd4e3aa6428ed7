//! An axum route that starts a long-running operation downstream and answers with its final
//! result: the handler's client is a `ServiceBuilder` stack with `LongRunningLayer`.
//!
//! ```text
//! cargo run --example axum_gateway
//! ```
//!
//! The example starts the simulator (the downstream "Azure"), serves the gateway on 127.0.0.1,
//! calls it once, prints the answer and exits.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{ErrorKind, LongRunning, LongRunningLayer};
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Downstream = LongRunning<Client<HttpConnector, Full<Bytes>>>;

#[derive(Clone)]
struct Gateway {
    azure: Downstream,
    base: String,
}

/// `POST /vms/{name}/start`: starts the VM downstream and answers once it is running.
async fn start_vm(
    State(gateway): State<Gateway>,
    Path(name): Path<String>,
) -> Result<String, (StatusCode, String)> {
    let uri = format!(
        "{}/subscriptions/s/resourceGroups/demo/providers/Microsoft.Compute/virtualMachines/{name}/start?api-version=2016-03-30",
        gateway.base
    );
    let request = http::Request::post(uri)
        .body(Full::default())
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let response = gateway.azure.oneshot(request).await.map_err(|e| {
        let status = match e.kind() {
            ErrorKind::Failed | ErrorKind::Canceled => StatusCode::CONFLICT,
            ErrorKind::TimedOut => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        (status, e.to_string())
    })?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let sim = Simulator::start().await?;
    sim.add(
        Scenario::new(
            Method::POST,
            "/subscriptions/s/resourceGroups/demo/providers/Microsoft.Compute/virtualMachines/web1/start",
            Monitor::AzureAsyncOperation,
        )
        .retry_after(RetryAfter::Millis(100))
        .completes_after_polls(3),
    );

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let azure = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .service(client);
    let app = Router::new()
        .route("/vms/{name}/start", post(start_vm))
        .with_state(Gateway {
            azure,
            base: sim.url(""),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("gateway on http://{gateway}");

    // Our own caller: one plain request, answered only when the VM has started.
    let caller = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let started = std::time::Instant::now();
    let response = caller
        .request(
            http::Request::post(format!("http://{gateway}/vms/web1/start")).body(Full::default())?,
        )
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    println!(
        "POST /vms/web1/start -> {status} after {:?}: {}",
        started.elapsed(),
        String::from_utf8_lossy(&body)
    );
    println!("downstream requests: {}", sim.requests().len());
    server.abort();
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(format!("the gateway answered {status}").into())
    }
}
