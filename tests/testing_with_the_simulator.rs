//! docs/TESTING.md's "Testing your code with the simulator", as it stands there (checked by
//! tests/readme.rs): a user's function tested against `tower_lro_sim`.
use http::Method;
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{ErrorKind, LongRunning, LongRunningLayer, ReqwestService};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Arm = LongRunning<ReqwestService>;

/// The code under test: creates a storage account and returns it as JSON text.
async fn create_account(arm: &Arm, base: &str, name: &str) -> Result<String, BoxError> {
    let url = format!("{base}/storageAccounts/{name}?api-version=2023-01-01");
    let request = http::Request::put(url)
        .header("content-type", "application/json")
        .body(reqwest::Body::from(r#"{"location":"westeurope"}"#))?;
    let response = arm.clone().oneshot(request).await?;
    Ok(reqwest::Response::from(response)
        .error_for_status()?
        .text()
        .await?)
}

fn arm() -> Arm {
    ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .service(ReqwestService::new(reqwest::Client::new()))
}

#[tokio::test]
async fn creates_the_account_once_and_waits_for_it() {
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(
            Method::PUT,
            "/storageAccounts/demo",
            Monitor::AzureAsyncOperation,
        )
        .retry_after(RetryAfter::Millis(10)) // real waits, kept short
        .completes_after_polls(3)
        .resource_body(r#"{"name":"demo","properties":{"provisioningState":"Succeeded"}}"#),
    );
    let account = create_account(&arm(), &sim.url(""), "demo").await.unwrap();
    assert!(account.contains(r#""name":"demo""#), "{account}");
    assert_eq!(sim.count(&Method::PUT, "/storageAccounts/demo"), 1);
    assert_eq!(sim.count(&Method::GET, "/operations/1"), 4);
}

#[tokio::test]
async fn reports_a_failed_operation() {
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(
            Method::PUT,
            "/storageAccounts/taken",
            Monitor::AzureAsyncOperation,
        )
        .retry_after(RetryAfter::Millis(10))
        .ending(Ending::Failed {
            code: "StorageAccountAlreadyTaken".into(),
            message: "The storage account named taken is already taken.".into(),
        }),
    );
    let err = create_account(&arm(), &sim.url(""), "taken")
        .await
        .unwrap_err();
    let err = err.downcast_ref::<tower_lro::Error>().unwrap();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert_eq!(err.code(), Some("StorageAccountAlreadyTaken"));
}
