//! `LongRunningMiddleware` end to end: the rest of the chain sees every round trip,
//! `with_extension` steers the layer, errors downcast to `tower_lro::Error`, a token resumes,
//! cross-origin polls are marked, other dialects (Google's, a custom one) are followed; and what
//! reqwest-retry retries before and after it. Real loopback sockets on the real clock.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Extensions, Method, StatusCode};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tower_lro::{
    CredentialsWithheld, Dialect, ErrorKind, FinalStateVia, Google, LongRunningLayer,
    LongRunningMiddleware, OperationInfo, Polling, ResumeToken,
};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

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
    chain(LongRunningMiddleware::from(layer), before, after)
}

/// `before`, `middleware` (of any dialect), then `after`.
fn chain<D: Dialect>(
    middleware: LongRunningMiddleware<D>,
    before: &Recorder,
    after: &Recorder,
) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest_client())
        .with(before.clone())
        .with(middleware)
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
    assert_eq!(lro.kind(), ErrorKind::Failed);
    assert_eq!(lro.code(), Some("StorageAccountAlreadyTaken"));
}

/// Only the request of `ResumeToken::into_request` resumes: a token a caller put in an ordinary
/// request's extensions does not replace that request, which is sent as it is.
#[tokio::test]
async fn a_token_in_an_ordinary_requests_extensions_does_not_resume() {
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
    client
        .get(sim.url(&path))
        .with_extension(token)
        .send()
        .await
        .unwrap();
    assert_eq!(sim.count(&Method::POST, &path), 1);
    assert_eq!(
        sim.count(&Method::GET, &path),
        1,
        "the request itself was sent"
    );
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

#[tokio::test]
async fn a_token_resumes_from_into_request_without_a_request_of_its_own() {
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
    // The request the token makes, as reqwest's: its extensions (the token) come along, though
    // reqwest 0.13 keeps them private; the middleware reads them back.
    let request = reqwest::Request::try_from(token.into_request::<reqwest::Body>()).unwrap();
    let resumed = client.execute(request).await.unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    assert_eq!(resumed.url().path(), "/results/1");
    // The middlewares before ours saw the token's request (a GET of the original URI); it was
    // never sent: the server saw the POST once, then only the polls and the final GET.
    assert_eq!(
        before.trail()[1..],
        [(Method::GET, path.clone())],
        "{:?}",
        before.trail()
    );
    assert_eq!(sim.count(&Method::POST, &path), 1);
    assert_eq!(sim.count(&Method::GET, &path), 0);
    assert_eq!(after.trail(), sim_trail(&sim.requests()));
}

const INSTANCES: &str = "/v1/projects/p/locations/l/instances";
const OPERATION: &str = "/v1/projects/p/locations/l/operations/op-1";

/// A simulated Google API whose operations are done at their third poll.
async fn google_api() -> (Simulator, String) {
    let sim = Simulator::start().await.unwrap();
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation)
            .retry_after(RetryAfter::Millis(5))
            .completes_after_polls(2)
            .resource_body(r#"{"name":"projects/p/locations/l/instances/i","state":"READY"}"#),
    );
    let url = sim.url(&format!("{INSTANCES}?instanceId=i"));
    (sim, url)
}

#[tokio::test]
async fn a_google_operation_through_a_google_middleware() {
    let (sim, url) = google_api().await;
    let (before, after) = (Recorder::default(), Recorder::default());
    let google =
        LongRunningMiddleware::from(LongRunningLayer::with_dialect(Google::new()).max_polls(10));
    let response = chain(google, &before, &after)
        .post(&url)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The final response is the last status response, and keeps its URL.
    assert_eq!(response.url().path(), OPERATION);
    let info = response.extensions().get::<OperationInfo>().unwrap();
    assert_eq!(info.monitor, "google-operation");
    assert_eq!(info.polls, 3);
    let body = response.text().await.unwrap();
    assert!(body.contains(r#""done":true"#), "{body}");
    assert!(body.contains(r#""state":"READY""#), "{body}");
    assert_eq!(before.trail().len(), 1, "{:?}", before.trail());
    let trail = sim_trail(&sim.requests());
    assert_eq!(after.trail(), trail);
    assert_eq!(trail.len(), 1 + 3, "{trail:?}");
    assert_eq!(sim.count(&Method::POST, INSTANCES), 1);
}

#[tokio::test]
async fn a_google_token_resumes_through_with_dialect_from_into_request() {
    let (sim, url) = google_api().await;
    let (before, after) = (Recorder::default(), Recorder::default());
    let client = chain(
        LongRunningMiddleware::with_dialect(Google::new()),
        &before,
        &after,
    );
    let accepted = client
        .post(&url)
        .body("{}")
        .with_extension(Polling::AcceptOnly)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    let token = accepted.extensions().get::<ResumeToken>().cloned().unwrap();
    assert_eq!(token.dialect(), "google");
    let request = reqwest::Request::try_from(token.into_request::<reqwest::Body>()).unwrap();
    let call = client.execute(request);
    let resumed = tokio::time::timeout(DEADLINE, call)
        .await
        .expect("the operation ends before the deadline")
        .unwrap();
    assert_eq!(resumed.status(), StatusCode::OK);
    assert_eq!(resumed.url().path(), OPERATION);
    assert!(resumed.text().await.unwrap().contains(r#""done":true"#));
    assert_eq!(sim.count(&Method::POST, INSTANCES), 1);
    assert_eq!(sim.count(&Method::GET, INSTANCES), 0);
    assert_eq!(sim.count(&Method::GET, OPERATION), 3);
}

#[tokio::test]
async fn the_default_middleware_hands_a_google_operation_back_unfollowed() {
    // The documented pitfall: Azure's protocol does not recognize an `Operation`, so the
    // initial `200` comes back as it is, not done, and nothing is polled.
    let (sim, url) = google_api().await;
    let (before, after) = (Recorder::default(), Recorder::default());
    let response = chain(LongRunningMiddleware::new(), &before, &after)
        .post(&url)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.extensions().get::<OperationInfo>().is_none());
    // An Operation that is not done (proto3 JSON leaves `"done": false` out).
    let body = response.text().await.unwrap();
    assert_eq!(body, r#"{"name":"projects/p/locations/l/operations/op-1"}"#);
    assert_eq!(sim.count(&Method::GET, OPERATION), 0);
}

/// A dialect of the test's own, through the middleware: a toy job API (as in
/// `examples/custom_dialect.rs`) on an axum server on 127.0.0.1, on the real clock.
mod custom_dialect {
    use std::borrow::Cow;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, HeaderValue, StatusCode};
    use axum::routing::{get, post};
    use axum::Router;
    use http::{response, Method};
    use tower_lro::dialect::{
        Dialect, ErrorDetail, Follow, InitialHead, Observer, PollAt, RequestHead, StatusHead,
        Verdict,
    };
    use tower_lro::{
        ErrorKind, LongRunningLayer, LongRunningMiddleware, OperationInfo, Polling, ResumeToken,
    };

    use super::{chain, Recorder, DEADLINE};

    /// `202` + `X-Job-Status`; the status answers `{"state": "running" | "done" | "failed"}`.
    #[derive(Debug, Clone, Default)]
    struct JobStatus;

    impl Dialect for JobStatus {
        type Monitor = ();

        fn name(&self) -> &'static str {
            "x-job-status"
        }

        fn initial_head<'a>(
            &self,
            _: &RequestHead<'_>,
            res: &'a response::Parts,
        ) -> InitialHead<'a, ()> {
            match res.headers.get("x-job-status") {
                Some(url) if res.status == 202 => {
                    InitialHead::Follow(Follow::new((), PollAt::url(url)))
                }
                _ => InitialHead::NotLongRunning,
            }
        }

        fn status_head<'a>(&self, _: &(), res: &'a response::Parts) -> StatusHead<'a> {
            match res.status.as_u16() {
                200 => StatusHead::ReadBody,
                429 | 500..=599 => StatusHead::Judged(Verdict::Transient),
                _ => StatusHead::Judged(Verdict::Unexpected),
            }
        }

        fn status_body<'a>(
            &self,
            _: &mut (),
            _: &RequestHead<'_>,
            _: &'a response::Parts,
            body: &'a [u8],
            seen: &mut Observer<'_>,
        ) -> Verdict<'a> {
            #[derive(serde::Deserialize)]
            struct Job<'b> {
                #[serde(borrow)]
                state: Cow<'b, str>,
            }
            match serde_json::from_slice::<Job<'_>>(body) {
                Ok(job) => {
                    seen.state(&job.state);
                    match &*job.state {
                        "done" => Verdict::Done,
                        "failed" => Verdict::Failed(ErrorDetail::reported("failed")),
                        _ => Verdict::Running { moved: None },
                    }
                }
                Err(e) => Verdict::Malformed(format!("not a job status: {e}")),
            }
        }
    }

    /// The toy API's state: every request it saw, and the polls of each job.
    #[derive(Clone, Default)]
    struct Api {
        next: Arc<AtomicU32>,
        polls: Arc<Mutex<HashMap<u32, u32>>>,
        seen: Arc<Mutex<Vec<(Method, String)>>>,
    }

    impl Api {
        fn count(&self, method: &Method, path: &str) -> usize {
            let seen = self.seen.lock().unwrap();
            seen.iter()
                .filter(|(m, p)| m == method && p == path)
                .count()
        }
    }

    /// `POST /jobs` starts a job that is done at its third status request; `POST /doomed` one
    /// that fails there.
    async fn job_api() -> (Api, String) {
        async fn start(api: &Api, path: &str, outcome: &'static str) -> (StatusCode, HeaderMap) {
            api.seen
                .lock()
                .unwrap()
                .push((Method::POST, path.to_owned()));
            let id = api.next.fetch_add(1, Ordering::SeqCst) + 1;
            let mut headers = HeaderMap::new();
            let status = format!("/jobs/{id}/status?then={outcome}");
            headers.insert("x-job-status", HeaderValue::from_str(&status).unwrap());
            headers.insert("retry-after-ms", HeaderValue::from_static("5"));
            (StatusCode::ACCEPTED, headers)
        }
        let api = Api::default();
        let app = Router::new()
            .route(
                "/jobs",
                post(|State(api): State<Api>| async move { start(&api, "/jobs", "done").await }),
            )
            .route(
                "/doomed",
                post(
                    |State(api): State<Api>| async move { start(&api, "/doomed", "failed").await },
                ),
            )
            .route(
                "/jobs/{id}/status",
                get(
                    |State(api): State<Api>, Path(id): Path<u32>, uri: axum::http::Uri| async move {
                        let path = format!("/jobs/{id}/status");
                        api.seen.lock().unwrap().push((Method::GET, path));
                        let polls = {
                            let mut polls = api.polls.lock().unwrap();
                            let n = polls.entry(id).or_default();
                            *n += 1;
                            *n
                        };
                        let then = uri.query().unwrap_or_default().trim_start_matches("then=");
                        let body = match (polls, then) {
                            (1..=2, _) => r#"{"state":"running"}"#.to_owned(),
                            (_, "failed") => r#"{"state":"failed"}"#.to_owned(),
                            _ => format!(r#"{{"state":"done","result":{{"job":{id},"rows":42}}}}"#),
                        };
                        // The next poll in 5 ms, not after the layer's default delays.
                        ([("retry-after-ms", "5")], body)
                    },
                ),
            )
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (api, url)
    }

    fn middleware() -> LongRunningMiddleware<JobStatus> {
        LongRunningMiddleware::from(
            LongRunningLayer::with_dialect(JobStatus)
                .max_polls(10)
                .timeout(DEADLINE),
        )
    }

    #[tokio::test]
    async fn a_custom_dialect_is_followed_through_the_middleware() {
        let (api, url) = job_api().await;
        let (before, after) = (Recorder::default(), Recorder::default());
        let response = chain(middleware(), &before, &after)
            .post(format!("{url}/jobs"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.url().path(), "/jobs/1/status");
        let info = response.extensions().get::<OperationInfo>().unwrap();
        assert_eq!(
            info.monitor, "x-job-status",
            "the dialect's name, by default"
        );
        assert_eq!(info.polls, 3);
        assert_eq!(info.state.as_deref(), Some("done"));
        let body = response.text().await.unwrap();
        assert_eq!(body, r#"{"state":"done","result":{"job":1,"rows":42}}"#);
        // One call for the middlewares before; every round trip for those after.
        assert_eq!(before.trail(), [(Method::POST, "/jobs".to_owned())]);
        let status = "/jobs/1/status?then=done".to_owned();
        assert_eq!(
            after.trail(),
            [
                (Method::POST, "/jobs".to_owned()),
                (Method::GET, status.clone()),
                (Method::GET, status.clone()),
                (Method::GET, status),
            ]
        );
        assert_eq!(api.count(&Method::POST, "/jobs"), 1);
        assert_eq!(api.count(&Method::GET, "/jobs/1/status"), 3);
    }

    #[tokio::test]
    async fn a_failed_custom_operation_is_a_typed_error() {
        let (api, url) = job_api().await;
        let (before, after) = (Recorder::default(), Recorder::default());
        let err = chain(middleware(), &before, &after)
            .post(format!("{url}/doomed"))
            .send()
            .await
            .unwrap_err();
        let reqwest_middleware::Error::Middleware(inner) = &err else {
            panic!("a middleware error: {err:?}");
        };
        let lro = inner.downcast_ref::<tower_lro::Error>().unwrap();
        assert_eq!(lro.kind(), ErrorKind::Failed);
        assert_eq!(lro.operation().map(|i| i.polls), Some(3));
        assert_eq!(api.count(&Method::POST, "/doomed"), 1);
    }

    #[tokio::test]
    async fn a_custom_dialect_token_resumes_from_into_request() {
        let (api, url) = job_api().await;
        let (before, after) = (Recorder::default(), Recorder::default());
        let client = chain(middleware(), &before, &after);
        let accepted = client
            .post(format!("{url}/jobs"))
            .with_extension(Polling::AcceptOnly)
            .send()
            .await
            .unwrap();
        assert_eq!(accepted.status(), StatusCode::ACCEPTED);
        let token = accepted.extensions().get::<ResumeToken>().cloned().unwrap();
        assert_eq!(token.dialect(), "x-job-status");
        let request = reqwest::Request::try_from(token.into_request::<reqwest::Body>()).unwrap();
        let resumed = client.execute(request).await.unwrap();
        assert_eq!(resumed.status(), StatusCode::OK);
        assert_eq!(
            resumed.text().await.unwrap(),
            r#"{"state":"done","result":{"job":1,"rows":42}}"#
        );
        assert_eq!(api.count(&Method::POST, "/jobs"), 1);
        assert_eq!(
            api.count(&Method::GET, "/jobs"),
            0,
            "the token's own request is never sent"
        );
        assert_eq!(api.count(&Method::GET, "/jobs/1/status"), 3);
    }
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
