//! `BearerTokenLayer` below `LongRunningLayer`: every request of an operation is signed,
//! the token is cached until shortly before it expires and refreshed by one request for all,
//! a `401` refreshes it once (replaying only a request without a body), requests marked
//! `CredentialsWithheld` are never signed, and no secret reaches `Debug` output. Over loopback,
//! on the real clock.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use support::{client, cross_origin_operation, reply, HttpClient, RawServer, Seen};
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{BoxError, CredentialsWithheld, LongRunning, LongRunningLayer};
use tower_lro_auth::{token_fn, AccessToken, BearerToken, BearerTokenLayer, TokenFn, TokenSource};

/// A token source that hands out `t1`, `t2`, … each valid for `lifetime`, and counts them.
#[derive(Clone)]
struct Numbered {
    issued: Arc<AtomicUsize>,
    lifetime: Duration,
}

impl Numbered {
    fn lasting(lifetime: Duration) -> Numbered {
        Numbered {
            issued: Arc::default(),
            lifetime,
        }
    }

    fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

impl TokenSource for Numbered {
    async fn token(&self) -> Result<AccessToken, BoxError> {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(AccessToken::new(
            format!("t{n}"),
            SystemTime::now() + self.lifetime,
        ))
    }
}

const HOUR: Duration = Duration::from_secs(3600);

fn signed<T: TokenSource>(source: T) -> BearerToken<HttpClient, T> {
    ServiceBuilder::new()
        .layer(BearerTokenLayer::new(source))
        .service(client())
}

fn following<T: TokenSource>(
    layer: LongRunningLayer,
    source: T,
) -> LongRunning<BearerToken<HttpClient, T>> {
    ServiceBuilder::new()
        .layer(layer.max_polls(10))
        .layer(BearerTokenLayer::new(source))
        .service(client())
}

fn authorization(seen: &Seen) -> Option<&str> {
    seen.headers
        .get("authorization")
        .map(|v| v.to_str().unwrap())
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

fn put(url: &str) -> Request<Full<Bytes>> {
    Request::put(url).body(Full::from("{}")).unwrap()
}

/// `202` + `Location` with a 1 ms hint, two polls answered `202`, then `200`.
async fn location_operation() -> RawServer {
    RawServer::start(|n, _| match n {
        0 => reply(
            202,
            &[("location", "/monitor"), ("retry-after-ms", "1")],
            "",
        ),
        1 | 2 => reply(202, &[("retry-after-ms", "1")], ""),
        _ => reply(200, &[], r#"{"name":"a"}"#),
    })
    .await
}

#[tokio::test]
async fn every_request_of_an_operation_carries_the_one_cached_token() {
    let server = location_operation().await;
    let source = Numbered::lasting(HOUR);
    let response = following(LongRunningLayer::new(), source.clone())
        .oneshot(put(&server.url("/things/a")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|s| authorization(s) == Some("Bearer t1")));
    assert_eq!(source.issued(), 1);
}

#[tokio::test]
async fn a_token_inside_the_refresh_margin_is_replaced_before_each_request() {
    let server = RawServer::start(|_, _| reply(200, &[], "{}")).await;
    // Valid for a minute: inside the default five-minute margin from the start.
    let source = Numbered::lasting(Duration::from_secs(60));
    let service = signed(source.clone());
    for _ in 0..2 {
        service
            .clone()
            .oneshot(get(&server.url("/x")))
            .await
            .unwrap();
    }
    assert_eq!(source.issued(), 2);
    let tokens: Vec<_> = server
        .seen()
        .iter()
        .map(|s| authorization(s).map(str::to_owned))
        .collect();
    assert_eq!(tokens, [Some("Bearer t1".into()), Some("Bearer t2".into())]);

    // With a smaller margin the same lifetime is cached.
    let layer = BearerTokenLayer::new(source.clone()).refresh_before(Duration::from_secs(5));
    let service = ServiceBuilder::new().layer(layer).service(client());
    for _ in 0..2 {
        service
            .clone()
            .oneshot(get(&server.url("/x")))
            .await
            .unwrap();
    }
    assert_eq!(source.issued(), 3);
}

#[tokio::test]
async fn concurrent_requests_share_one_refresh() {
    let server = RawServer::start(|_, _| reply(200, &[], "{}")).await;
    // The identity provider answers only when the test lets it.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let asked = Arc::new(AtomicUsize::new(0));
    let (held, counter) = (gate.clone(), asked.clone());
    let source = token_fn(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let held = held.clone();
        async move {
            held.acquire().await?.forget();
            Ok(AccessToken::new("t1", SystemTime::now() + HOUR))
        }
    });
    let service = signed(source);
    let calls: Vec<_> = (0..8)
        .map(|_| tokio::spawn(service.clone().oneshot(get(&server.url("/x")))))
        .collect();
    // On this single-threaded runtime, every call runs until it waits for the token.
    for _ in 0..16 {
        tokio::task::yield_now().await;
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1, "one call asks, seven wait");
    assert_eq!(server.count(&Method::GET), 0);
    gate.add_permits(8);
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    assert!(server
        .seen()
        .iter()
        .all(|s| authorization(s) == Some("Bearer t1")));
}

#[tokio::test]
async fn a_401_refreshes_the_token_and_replays_a_bodiless_request_once() {
    // Only `t2` is accepted.
    let server = RawServer::start(|_, seen| match authorization(seen) {
        Some("Bearer t2") => reply(200, &[], "{}"),
        _ => reply(401, &[], ""),
    })
    .await;
    let source = Numbered::lasting(HOUR);
    let service = signed(source.clone());
    let response = service
        .clone()
        .oneshot(get(&server.url("/x")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(source.issued(), 2);
    assert_eq!(server.count(&Method::GET), 2);

    // A server that refuses every token: one replay, then its 401 is the answer.
    let refusing = RawServer::start(|_, _| reply(401, &[], "")).await;
    let response = service.oneshot(get(&refusing.url("/x"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(refusing.count(&Method::GET), 2);
    assert_eq!(source.issued(), 3);
}

#[tokio::test]
async fn a_401_to_a_request_with_a_body_is_returned_and_the_next_request_gets_a_new_token() {
    let server = RawServer::start(|n, _| match n {
        0 => reply(401, &[], ""),
        _ => reply(200, &[], "{}"),
    })
    .await;
    let source = Numbered::lasting(HOUR);
    let service = signed(source.clone());
    let response = service
        .clone()
        .oneshot(put(&server.url("/x")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(server.count(&Method::PUT), 1, "a body is never sent twice");
    service.oneshot(get(&server.url("/x"))).await.unwrap();
    assert_eq!(authorization(&server.seen()[1]), Some("Bearer t2"));
}

#[tokio::test]
async fn requests_marked_credentials_withheld_are_never_signed() {
    let server = RawServer::start(|_, _| reply(200, &[], "{}")).await;
    let source = Numbered::lasting(HOUR);
    let mut request = get(&server.url("/x"));
    request.extensions_mut().insert(CredentialsWithheld);
    signed(source.clone()).oneshot(request).await.unwrap();
    assert_eq!(authorization(&server.seen()[0]), None);
    assert_eq!(source.issued(), 0, "no token is even asked for");
}

#[tokio::test]
async fn polls_to_another_origin_are_not_signed() {
    let (origin, status) = cross_origin_operation().await;
    let service = following(
        LongRunningLayer::new().allow_any_origin(),
        Numbered::lasting(HOUR),
    );
    let response = service
        .oneshot(put(&origin.url("/things/a")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(authorization(&status.seen()[0]), None);
    let origin_seen = origin.seen();
    assert_eq!(authorization(&origin_seen[0]), Some("Bearer t1"));
    // Once the operation left its origin, even the final GET back there goes unsigned.
    assert_eq!(authorization(&origin_seen[1]), None);
}

#[tokio::test]
async fn a_failing_source_fails_the_request_and_a_later_one_asks_again() {
    let server = RawServer::start(|_, _| reply(200, &[], "{}")).await;
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let source: TokenFn<_> = token_fn(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            match n {
                0 => Err(BoxError::from("identity provider unavailable")),
                _ => Ok(AccessToken::new("t", SystemTime::now() + HOUR)),
            }
        }
    });
    let service = signed(source);
    let err = service
        .clone()
        .oneshot(get(&server.url("/x")))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "identity provider unavailable");
    assert_eq!(server.count(&Method::GET), 0);
    service.oneshot(get(&server.url("/x"))).await.unwrap();
    assert_eq!(authorization(&server.seen()[0]), Some("Bearer t"));
    assert_eq!(asked.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_token_that_is_not_a_header_value_is_an_error() {
    let source =
        token_fn(|| async { Ok(AccessToken::new("line\nbreak", SystemTime::now() + HOUR)) });
    let err = signed(source)
        .oneshot(get("http://127.0.0.1:1/x"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not a valid header value"),
        "{err}"
    );
    assert!(!err.to_string().contains("line"), "{err}");
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output() {
    let token = AccessToken::new("s3cr3t", SystemTime::now() + HOUR);
    assert!(!format!("{token:?}").contains("s3cr3t"));
    let layer = BearerTokenLayer::new(token_fn(move || {
        let token = token.clone();
        async move { Ok(token) }
    }));
    let service = ServiceBuilder::new()
        .layer(layer.clone())
        .service(tower::service_fn(
            |request: Request<Full<Bytes>>| async move {
                // What a logging layer below would print.
                Ok::<_, BoxError>(http::Response::new(format!("{:?}", request.headers())))
            },
        ));
    let logged = service
        .oneshot(get("http://example.test/"))
        .await
        .unwrap()
        .into_body();
    assert!(
        logged.contains("authorization") && !logged.contains("s3cr3t"),
        "{logged}"
    );
    assert!(!format!("{layer:?}").contains("s3cr3t"));
}

#[cfg(feature = "azure-core")]
mod azure {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
    use azure_core::time::OffsetDateTime;
    use tower_lro_auth::{AzureCredential, TokenSource};

    /// A credential that issues one fixed token and records the scopes it was asked for.
    #[derive(Debug, Default)]
    struct FakeCredential {
        asked: Mutex<Vec<Vec<String>>>,
    }

    #[async_trait::async_trait]
    impl TokenCredential for FakeCredential {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            self.asked
                .lock()
                .unwrap()
                .push(scopes.iter().map(|s| s.to_string()).collect());
            let expires_on = OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap();
            Ok(AccessToken::new("azure-secret", expires_on))
        }
    }

    #[tokio::test]
    async fn a_credential_gives_its_token_and_expiry_for_the_scopes() {
        let credential = Arc::new(FakeCredential::default());
        let source = AzureCredential::new(
            credential.clone(),
            ["https://management.azure.com/.default"],
        );
        let token = source.token().await.unwrap();
        assert_eq!(token.token, "azure-secret");
        assert_eq!(
            token.expires_at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000)
        );
        assert_eq!(
            *credential.asked.lock().unwrap(),
            [vec!["https://management.azure.com/.default".to_owned()]]
        );
        assert!(!format!("{source:?}").contains("azure-secret"));
    }
}
