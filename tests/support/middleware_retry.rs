//! reqwest-retry after and before `LongRunningMiddleware`: after, it retries each round trip;
//! before, one call per operation, so it starts the operation again on a transient response to
//! the original request, and never retries the middleware's errors.

use std::time::Duration;

use http::{Method, StatusCode};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{RetryError, RetryTransientMiddleware};
use tower_lro::{LongRunningLayer, LongRunningMiddleware};

use super::reqwest;
use super::suite::{reqwest_client, DEADLINE};
use crate::support::{reply, trail, RawServer};

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
    let Some(RetryError::Error(reqwest_middleware::Error::Middleware(ours))) = retry.downcast_ref()
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
