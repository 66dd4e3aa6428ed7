//! The `LongRunningMiddleware` suite for one reqwest-middleware version (the parent module's
//! `reqwest_middleware`, over its `reqwest`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Extensions, Method, StatusCode};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tower_lro::{
    CredentialsWithheld, ErrorKind, FinalStateVia, LongRunningLayer, LongRunningMiddleware,
    OperationInfo, Polling, ResumeToken,
};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

use super::{reqwest, reqwest_middleware};
use crate::support::{cross_origin_operation, sim_trail};

/// Far more than an operation needs on a loaded machine, far less than a hung test.
pub(super) const DEADLINE: Duration = Duration::from_secs(30);

/// What a [`Recorder`] saw of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Seen {
    pub(super) method: Method,
    pub(super) path_and_query: String,
    pub(super) withheld: bool,
}

/// A middleware that records every request going down the chain through it.
#[derive(Clone, Default)]
pub(super) struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    pub(super) fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    pub(super) fn trail(&self) -> Vec<(Method, String)> {
        self.seen()
            .into_iter()
            .map(|s| (s.method, s.path_and_query))
            .collect()
    }
}

#[async_trait::async_trait]
impl Middleware for Recorder {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let url = req.url();
        self.0.lock().unwrap().push(Seen {
            method: req.method().clone(),
            path_and_query: match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            },
            withheld: extensions.get::<CredentialsWithheld>().is_some(),
        });
        next.run(req, extensions).await
    }
}

pub(super) fn reqwest_client() -> reqwest::Client {
    // No proxy from the environment between the test and 127.0.0.1.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// `before`, the middleware over `layer`, then `after`.
fn client(layer: LongRunningLayer, before: &Recorder, after: &Recorder) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest_client())
        .with(before.clone())
        .with(LongRunningMiddleware::from(layer))
        .with(after.clone())
        .build()
}

fn layer() -> LongRunningLayer {
    LongRunningLayer::new().max_polls(10).timeout(DEADLINE)
}

/// A POST followed through `Azure-AsyncOperation`, with a `Location` for its result.
async fn start_vm() -> (Simulator, String) {
    let path = "/vms/vm/start".to_owned();
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(Method::POST, &path, Monitor::AzureAsyncOperation)
            .location_header(true)
            .retry_after(RetryAfter::Millis(5))
            .completes_after_polls(2),
    );
    (sim, path)
}

#[tokio::test]
async fn every_poll_runs_the_rest_of_the_chain_and_the_caller_sees_one_call() {
    let (sim, path) = start_vm().await;
    let (before, after) = (Recorder::default(), Recorder::default());
    let response = client(layer(), &before, &after)
        .post(sim.url(&path))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // A POST with `Location`: the final response is a GET of it, and keeps its URL.
    assert_eq!(response.url().path(), "/results/1");
    let info = response.extensions().get::<OperationInfo>().unwrap();
    assert_eq!(info.polls, 3);
    assert_eq!(before.trail(), [(Method::POST, path.clone())]);
    let trail = sim_trail(&sim.requests());
    assert_eq!(after.trail(), trail);
    assert_eq!(trail.len(), 1 + 3 + 1, "{trail:?}");
    assert_eq!(trail.iter().filter(|(m, _)| *m == Method::POST).count(), 1);
}

#[tokio::test]
async fn final_state_via_and_polling_come_from_request_extensions() {
    let (sim, path) = start_vm().await;
    let (before, after) = (Recorder::default(), Recorder::default());
    let client = client(layer(), &before, &after);
    let response = client
        .post(sim.url(&path))
        .with_extension(FinalStateVia::AzureAsyncOperation)
        .send()
        .await
        .unwrap();
    // The last status response is final: no GET of the `Location`.
    assert_eq!(response.url().path(), "/operations/1");
    assert_eq!(sim.count(&Method::GET, "/results/1"), 0);

    let untouched = client
        .post(sim.url(&path))
        .with_extension(Polling::Disabled)
        .send()
        .await
        .unwrap();
    assert_eq!(untouched.status(), StatusCode::ACCEPTED);
    assert_eq!(sim.count(&Method::GET, "/operations/2"), 0);
}

#[tokio::test]
async fn errors_downcast_to_the_crate_error() {
    let path = "/accounts/taken";
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(Method::PUT, path, Monitor::AzureAsyncOperation)
            .retry_after(RetryAfter::Millis(5))
            .ending(Ending::Failed {
                code: "StorageAccountAlreadyTaken".into(),
                message: "taken".into(),
            }),
    );
    let (before, after) = (Recorder::default(), Recorder::default());
    let err = client(layer(), &before, &after)
        .put(sim.url(path))
        .body("{}")
        .send()
        .await
        .unwrap_err();
    let reqwest_middleware::Error::Middleware(inner) = &err else {
        panic!("a middleware error: {err:?}");
    };
    let lro = inner.downcast_ref::<tower_lro::Error>().unwrap();
    assert_eq!(*lro.kind(), ErrorKind::Failed);
    assert_eq!(lro.code(), Some("StorageAccountAlreadyTaken"));
}

#[tokio::test]
async fn a_token_in_the_extensions_resumes_the_operation() {
    let (sim, path) = start_vm().await;
    let (before, after) = (Recorder::default(), Recorder::default());
    let client = client(layer(), &before, &after);
    let accepted = client
        .post(sim.url(&path))
        .with_extension(Polling::AcceptOnly)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let token = accepted.extensions().get::<ResumeToken>().cloned().unwrap();
    // The token's request converts into reqwest's, extensions and all.
    let request = reqwest::Request::try_from(token.into_request::<Vec<u8>>()).unwrap();
    let resumed = client.execute(request).await.unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    assert_eq!(resumed.url().path(), "/results/1");
    assert_eq!(sim.count(&Method::POST, &path), 1);
    // The resumed operation never sent the request it was resumed with.
    assert_eq!(sim.count(&Method::GET, &path), 0);
}

#[tokio::test]
async fn polls_to_another_origin_carry_credentials_withheld_down_the_chain() {
    let (origin, status) = cross_origin_operation().await;
    let (before, after) = (Recorder::default(), Recorder::default());
    let response = client(layer().allow_any_origin(), &before, &after)
        .put(origin.url("/things/a"))
        .header("authorization", "Bearer original")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let withheld: Vec<_> = after.seen().iter().map(|s| s.withheld).collect();
    // Once withheld, never restored: the final GET on the original origin is marked too.
    assert_eq!(withheld, [false, true, true]);
    assert!(status.seen()[0].headers.get("authorization").is_none());
}
