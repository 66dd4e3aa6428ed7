//! `LongRunningMiddleware` end to end: the rest of the chain sees every round trip,
//! `with_extension` steers the layer, errors downcast to `tower_lro::Error`, a token resumes,
//! cross-origin polls are marked, other dialects (Google's, a custom one) are followed; and what
//! reqwest-retry retries before and after it. Real loopback sockets on the real clock.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Extensions, Method, StatusCode};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tower_lro::sim::{Outcome, RetryAfter, Scenario, Simulator};
use tower_lro::{
    CredentialsWithheld, ErrorKind, FinalStateVia, LongRunningLayer, LongRunningMiddleware,
    MonitorKind, OperationInfo, Polling, ResumeToken,
};

use support::{cross_origin_operation, sim_trail};

/// Far more than an operation needs on a loaded machine, far less than a hung test.
const DEADLINE: Duration = Duration::from_secs(30);

/// What a [`Recorder`] saw of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: Method,
    path_and_query: String,
    withheld: bool,
}

/// A middleware that records every request going down the chain through it.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    fn trail(&self) -> Vec<(Method, String)> {
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

fn reqwest_client() -> reqwest::Client {
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
        Scenario::new(Method::POST, &path, MonitorKind::AzureAsyncOperation)
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
        Scenario::new(Method::PUT, path, MonitorKind::AzureAsyncOperation)
            .retry_after(RetryAfter::Millis(5))
            .outcome(Outcome::Failed {
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
    let resumed = client
        .get(token.original_uri())
        .with_extension(token)
        .send()
        .await
        .unwrap();
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

/// reqwest-retry after and before `LongRunningMiddleware`: after, it retries each round trip;
/// before, one call per operation, so it starts the operation again on a transient response to
/// the original request, and never retries the middleware's errors.
mod retry {
    use std::time::Duration;

    use http::{Method, StatusCode};
    use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
    use reqwest_retry::policies::ExponentialBackoff;
    use reqwest_retry::{RetryError, RetryTransientMiddleware};
    use tower_lro::{LongRunningLayer, LongRunningMiddleware};

    use super::support::{reply, trail, RawServer};
    use super::{reqwest_client, DEADLINE};

    fn retries() -> RetryTransientMiddleware<ExponentialBackoff> {
        let policy = ExponentialBackoff::builder()
            .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
            .build_with_max_retries(2);
        RetryTransientMiddleware::new_with_policy(policy)
    }

    /// The layer gives up on the first transient failure: only a retry middleware rides one out.
    fn impatient() -> LongRunningMiddleware {
        LongRunningMiddleware::from(
            LongRunningLayer::new()
                .max_transient_retries(0)
                .max_polls(10)
                .timeout(DEADLINE),
        )
    }

    /// `202` + `Location` to the PUT (after `busy_puts` 503s), one 503 to the first poll, then 200.
    async fn server(busy_puts: usize) -> RawServer {
        RawServer::start(move |n, seen| {
            let busy = reply(503, &[], "");
            match (seen.method.clone(), n) {
                (Method::PUT, n) if n < busy_puts => busy,
                (Method::PUT, _) => reply(
                    202,
                    &[("location", "/monitor"), ("retry-after-ms", "1")],
                    "",
                ),
                (_, n) if n == busy_puts + 1 => busy,
                _ => reply(200, &[], r#"{"name":"a"}"#),
            }
        })
        .await
    }

    async fn put(
        client: &ClientWithMiddleware,
        server: &RawServer,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        client.put(server.url("/things/a")).body("{}").send().await
    }

    #[tokio::test]
    async fn after_it_retries_each_poll() {
        let server = server(0).await;
        let client = ClientBuilder::new(reqwest_client())
            .with(impatient())
            .with(retries())
            .build();
        let response = put(&client, &server).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            trail(&server.seen()),
            [
                (Method::PUT, "/things/a".to_owned()),
                (Method::GET, "/monitor".to_owned()),
                (Method::GET, "/monitor".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn before_it_never_retries_a_failed_operation() {
        let server = server(0).await;
        let client = ClientBuilder::new(reqwest_client())
            .with(retries())
            .with(impatient())
            .build();
        let err = put(&client, &server).await.unwrap_err();
        // reqwest-retry wraps the error it passes on in its own.
        let reqwest_middleware::Error::Middleware(retry) = &err else {
            panic!("a middleware error: {err:?}");
        };
        let Some(RetryError::Error(reqwest_middleware::Error::Middleware(ours))) =
            retry.downcast_ref()
        else {
            panic!("reqwest-retry's error around ours: {err:?}");
        };
        let lro = ours.downcast_ref::<tower_lro::Error>().unwrap();
        assert_eq!(lro.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(server.count(&Method::PUT), 1);
        assert_eq!(server.count(&Method::GET), 1);
    }

    #[tokio::test]
    async fn before_it_starts_the_operation_again_on_a_busy_answer_to_the_original() {
        let server = server(1).await;
        let client = ClientBuilder::new(reqwest_client())
            .with(retries())
            .with(LongRunningMiddleware::from(
                // The layer rides out the busy poll itself, soon.
                LongRunningLayer::new()
                    .initial_delay(Duration::from_millis(1))
                    .timeout(DEADLINE),
            ))
            .build();
        let response = put(&client, &server).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        // The retry middleware sent the PUT again; the layer handed it the 503 untouched.
        assert_eq!(server.count(&Method::PUT), 2);
    }
}
