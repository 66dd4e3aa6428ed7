//! The three examples of Microsoft's "Track asynchronous Azure operations", plus a failing
//! operation, run against the in-process simulator through a `ServiceBuilder` stack over a
//! hyper-util client. Prints every request, every poll's status and the final response.
//!
//! ```text
//! cargo run --example seeds
//! ```
//!
//! No account and no network: the simulator listens on 127.0.0.1. Its delays are the seeds'
//! scaled down a hundredfold (a `Retry-After` of 17 s is sent as `retry-after-ms: 170`) so the
//! whole tour takes a couple of seconds.

use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::progress::{self, Progress};
use tower_lro::{LongRunningLayer, OperationInfo};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SUB: &str = "/subscriptions/00000000-0000-0000-0000-000000000000";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let sim = Simulator::start().await?;
    println!(
        "simulated Azure Resource Manager on http://{}\n",
        sim.addr()
    );

    let vm_start =
        format!("{SUB}/resourceGroups/demo/providers/Microsoft.Compute/virtualMachines/vm1/start");
    sim.add(
        Scenario::new(Method::POST, &vm_start, Monitor::AzureAsyncOperation)
            .monitor_prefix(format!(
                "{SUB}/providers/Microsoft.Compute/locations/westus/operations"
            ))
            .retry_after(RetryAfter::Millis(100))
            .percent_complete(true)
            .completes_after_polls(3),
    );
    let deployment =
        format!("{SUB}/resourcegroups/demo/providers/microsoft.resources/deployments/site");
    sim.add(
        Scenario::new(Method::PUT, &deployment, Monitor::AzureAsyncOperation)
            .initial_status(StatusCode::CREATED)
            .initial_body(r#"{"name":"site","properties":{"provisioningState":"Accepted"}}"#)
            .monitor_prefix(format!("{deployment}/operationStatuses"))
            .running_status("Running")
            .retry_after(RetryAfter::Millis(100))
            .completes_after_polls(2)
            .resource_body(r#"{"name":"site","properties":{"provisioningState":"Succeeded","mode":"Incremental"}}"#),
    );
    let storage =
        format!("{SUB}/resourceGroups/demo/providers/Microsoft.Storage/storageAccounts/demostore");
    sim.add(
        Scenario::new(Method::PUT, &storage, Monitor::Location)
            .monitor_prefix(format!("{SUB}/providers/Microsoft.Storage/operations"))
            .retry_after(RetryAfter::Millis(170))
            .completes_after_polls(2)
            .resource_body(
                r#"{"name":"demostore","kind":"Storage","location":"South Central US","properties":{"provisioningState":"Succeeded","primaryEndpoints":{"blob":"https://demostore.blob.core.windows.net/"}}}"#,
            ),
    );
    let taken =
        format!("{SUB}/resourceGroups/demo/providers/Microsoft.Storage/storageAccounts/taken");
    sim.add(
        Scenario::new(Method::PUT, &taken, Monitor::AzureAsyncOperation)
            .retry_after(RetryAfter::Millis(100))
            .completes_after_polls(1)
            .ending(Ending::Failed {
                code: "StorageAccountAlreadyTaken".into(),
                message: "The storage account named taken is already taken.".into(),
            }),
    );

    // The stack: the layer follows each operation; below it, a tap prints every request and
    // response the client exchanges (layers below the LRO layer see every poll).
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .map_request(|req: Request<Full<Bytes>>| {
            println!("  -> {} {}", req.method(), req.uri().path());
            req
        })
        .map_response(|resp: http::Response<hyper::body::Incoming>| {
            println!("  <- {}", resp.status());
            resp
        })
        .service(client);

    let scenarios = [
        (
            "Start virtual machine (202 with Azure-AsyncOperation)",
            Method::POST,
            vm_start,
            "2016-03-30",
            "",
        ),
        (
            "Deploy resources (201 with Azure-AsyncOperation)",
            Method::PUT,
            deployment,
            "2016-09-01",
            r#"{"properties":{"mode":"Incremental","templateLink":{"uri":"https://example.test/t.json"}}}"#,
        ),
        (
            "Create storage account (202 with Location and Retry-After)",
            Method::PUT,
            storage,
            "2016-01-01",
            r#"{"location":"South Central US","properties":{},"sku":{"name":"Standard_LRS"},"kind":"Storage"}"#,
        ),
        (
            "Create a storage account whose name is taken (fails)",
            Method::PUT,
            taken,
            "2016-01-01",
            r#"{"location":"South Central US","sku":{"name":"Standard_LRS"},"kind":"Storage"}"#,
        ),
    ];
    let mut failures = 0;
    for (title, method, path, api_version, body) in scenarios {
        println!("== {title}");
        let mut builder = Request::builder()
            .method(method)
            .uri(sim.url(&format!("{path}?api-version={api_version}")));
        if !body.is_empty() {
            builder = builder.header("content-type", "application/json");
        }
        let mut request = builder.body(Full::from(body))?;
        let (progress, updates) = progress::channel();
        request.extensions_mut().insert(progress);
        let printer = tokio::spawn(print_progress(updates));
        let started = Instant::now();
        let result = service.clone().oneshot(request).await;
        // The channel closes with the operation: the printer has said all it saw.
        printer.await?;
        match result {
            Ok(response) => {
                let status = response.status();
                let info = response.extensions().get::<OperationInfo>().cloned();
                let body = response.into_body().collect().await?.to_bytes();
                println!("  final: {status} {}", String::from_utf8_lossy(&body));
                if let Some(info) = info {
                    let monitor = info.monitor;
                    println!(
                        "  monitor: {monitor}, {} polls, {:?}\n",
                        info.polls,
                        started.elapsed()
                    );
                }
            }
            Err(error) => {
                failures += 1;
                println!("  error: {error}");
                println!(
                    "  kind {:?}, code {:?}, HTTP status {:?}\n",
                    error.kind(),
                    error.code(),
                    error.status()
                );
            }
        }
    }
    println!(
        "{} requests reached the simulator; the failing operation failed as expected.",
        sim.requests().len()
    );
    // Exactly one scenario is meant to fail: anything else is a bug worth a non-zero exit.
    if failures == 1 {
        Ok(())
    } else {
        Err(format!("expected 1 failing scenario, saw {failures}").into())
    }
}

/// Prints each update of one operation's progress channel until the operation ends.
async fn print_progress(mut updates: tokio::sync::watch::Receiver<Option<Progress>>) {
    while updates.changed().await.is_ok() {
        let Some(progress) = updates.borrow_and_update().clone() else {
            continue;
        };
        let (op, Some(next)) = (&progress.operation, progress.next_poll_in) else {
            continue;
        };
        // Location monitors have no state string: their HTTP status says "running".
        let state = match (&op.state, op.last_http_status) {
            (Some(state), _) => state.clone(),
            (None, Some(http)) => format!("HTTP {}", http.as_u16()),
            (None, None) => "accepted".to_owned(),
        };
        let percent = op
            .percent_complete
            .map(|p| format!(" ({p:.0}%)"))
            .unwrap_or_default();
        println!("      {state}{percent}; next poll in {next:?}");
    }
}
