//! The three examples of "Track asynchronous Azure operations", replayed as PROTOCOL.md §8 says,
//! against the simulator over HTTP on the in-memory network, on tokio's paused clock.

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use support::{info, request, stack, text};
use tower::ServiceExt;
use tower_lro::LongRunningLayer;
use tower_lro_sim::{Monitor, RetryAfter, Scenario};

const VM_START: &str =
    "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/start";
const DEPLOYMENT: &str =
    "/subscriptions/sub/resourcegroups/rg/providers/microsoft.resources/deployments/dep1";
const STORAGE: &str =
    "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct1";

/// Seed 1: `POST …/start` → 202 + `Azure-AsyncOperation`; `InProgress` … `Succeeded`; the final
/// response is the last status response (no extra GET).
#[tokio::test(start_paused = true)]
async fn start_virtual_machine_202_with_azure_async_operation() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, VM_START, Monitor::AzureAsyncOperation)
            .monitor_prefix(
                "/subscriptions/sub/providers/Microsoft.Compute/locations/westus/operations",
            )
            .retry_after(RetryAfter::Seconds(5))
            .completes_after_polls(3),
    );
    let uri = sim.url(&format!("{VM_START}?api-version=2016-03-30"));
    let response = stack(LongRunningLayer::new())
        .oneshot(request(Method::POST, &uri, ""))
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let info = info(&response);
    assert_eq!(info.monitor, "azure-async-operation");
    assert_eq!(info.polls, 4);
    assert_eq!(info.state.as_deref(), Some("Succeeded"));
    assert_eq!(info.operation_name.as_deref(), Some("1"));
    assert_eq!(info.final_uri, None, "the last status response is final");
    let body: serde_json::Value = serde_json::from_str(&text(response).await).unwrap();
    assert_eq!(body["status"], "Succeeded");

    let requests = sim.requests();
    let monitor = "/subscriptions/sub/providers/Microsoft.Compute/locations/westus/operations/1";
    let trail: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.uri.to_string()))
        .collect();
    let poll = ("GET", format!("{monitor}?api-version=2016-03-30"));
    assert_eq!(
        trail,
        [
            ("POST", format!("{VM_START}?api-version=2016-03-30")),
            poll.clone(),
            poll.clone(),
            poll.clone(),
            poll
        ]
    );
    for pair in requests.windows(2) {
        assert_eq!(pair[1].at - pair[0].at, Duration::from_secs(5));
    }
}

/// Seed 2: `PUT …/deployments/{name}` → 201 with `"provisioningState":"Accepted"` and
/// `Azure-AsyncOperation`; `Running` … `Succeeded`; the final response is a GET of the deployment.
#[tokio::test(start_paused = true)]
async fn deploy_resources_201_with_azure_async_operation() {
    let sim = support::simulator().await;
    let deployment = r#"{"id":"dep1","properties":{"provisioningState":"Succeeded","outputs":{}}}"#;
    sim.add(
        Scenario::new(Method::PUT, DEPLOYMENT, Monitor::AzureAsyncOperation)
            .initial_status(StatusCode::CREATED)
            .initial_body(r#"{"id":"dep1","properties":{"provisioningState":"Accepted"}}"#)
            .monitor_prefix(format!("{DEPLOYMENT}/operationStatuses"))
            .running_status("Running")
            .completes_after_polls(2)
            .resource_body(deployment),
    );
    let uri = sim.url(&format!("{DEPLOYMENT}?api-version=2016-09-01"));
    let put = request(
        Method::PUT,
        &uri,
        r#"{"properties":{"mode":"Incremental"}}"#,
    );
    let response = stack(LongRunningLayer::new()).oneshot(put).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let info = info(&response);
    assert_eq!(info.polls, 3);
    assert_eq!(info.final_uri.unwrap().to_string(), uri);
    assert_eq!(text(response).await, deployment);

    let trail: Vec<_> = sim
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.uri.path().to_owned()))
        .collect();
    let status = format!("{DEPLOYMENT}/operationStatuses/1");
    assert_eq!(
        trail,
        [
            (Method::PUT, DEPLOYMENT.to_owned()),
            (Method::GET, status.clone()),
            (Method::GET, status.clone()),
            (Method::GET, status),
            (Method::GET, DEPLOYMENT.to_owned()),
        ]
    );
    assert_eq!(sim.count(&Method::PUT, DEPLOYMENT), 1);
}

/// Seed 3: `PUT …/storageAccounts/{name}` → 202 with `Location: …?monitor=true` and
/// `Retry-After: 17`; after 17 s a GET → 202 … → 200 with the account's properties, which is the
/// final response.
#[tokio::test(start_paused = true)]
async fn create_storage_account_202_with_location_and_retry_after() {
    let sim = support::simulator().await;
    let account = r#"{"id":"acct1","kind":"Storage","location":"South Central US","properties":{"provisioningState":"Succeeded","primaryEndpoints":{"blob":"https://acct1.blob.core.windows.net/"}}}"#;
    sim.add(
        Scenario::new(Method::PUT, STORAGE, Monitor::Location)
            .monitor_prefix("/subscriptions/sub/providers/Microsoft.Storage/operations")
            .retry_after(RetryAfter::Seconds(17))
            .completes_after_polls(2)
            .resource_body(account),
    );
    let uri = sim.url(&format!("{STORAGE}?api-version=2016-01-01"));
    let put = request(
        Method::PUT,
        &uri,
        r#"{ "location": "South Central US", "properties": {}, "sku": { "name": "Standard_LRS" }, "kind": "Storage" }"#,
    );
    let started = tokio::time::Instant::now();
    let response = stack(LongRunningLayer::new()).oneshot(put).await.unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(started.elapsed(), Duration::from_secs(3 * 17));
    let info = info(&response);
    assert_eq!(info.monitor, "location");
    assert_eq!(info.polls, 3);
    assert_eq!(text(response).await, account);

    let requests = sim.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(requests[0].method, Method::PUT);
    let monitor = "/subscriptions/sub/providers/Microsoft.Storage/operations/1?monitor=true&api-version=2016-01-01";
    for (poll, previous) in requests[1..].iter().zip(&requests) {
        assert_eq!(poll.method, Method::GET);
        assert_eq!(poll.uri.to_string(), monitor);
        // Each poll exactly `Retry-After: 17` after the response that asked for it.
        assert_eq!(poll.at - previous.at, Duration::from_secs(17));
        // The PUT's payload headers never travel with a GET.
        assert!(!poll.headers.contains_key("content-type"));
    }
}
