//! Errors as the ecosystem prints them: `Display` of a `tower_lro::Error` is its own message,
//! and each cause is reached through `source()` only, so a reporter that walks the chain (as
//! anyhow's `{:#}` does) names every cause exactly once, down to the root.
//!
//! The connection-refused test runs on the real clock against loopback (`127.0.0.1` only); the
//! poll-failure test runs an in-memory `tower::service_fn` on tokio's paused clock.

use std::error::Error as _;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};
use tower_lro::{Error, ErrorKind, LongRunningLayer};

/// Each cause's `Display`, from the error's first `source()` down to the root.
fn causes(err: &Error) -> Vec<String> {
    let mut texts = Vec::new();
    let mut cause = err.source();
    while let Some(error) = cause {
        texts.push(error.to_string());
        cause = error.source();
    }
    texts
}

/// The chain as anyhow's `{:#}` prints it: the error's `Display`, then each `source()`'s,
/// joined by `": "`.
fn alternate(err: &Error) -> String {
    std::iter::once(err.to_string())
        .chain(causes(err))
        .collect::<Vec<_>>()
        .join(": ")
}

/// The root of the chain: the last `source()`.
fn root(err: &Error) -> &(dyn std::error::Error + 'static) {
    let mut cause = err.source().expect("the error has a cause");
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause
}

/// `Display` names no cause, and the joined chain names each cause exactly once.
fn assert_each_cause_once(err: &Error) {
    let own = err.to_string();
    let causes = causes(err);
    assert!(!causes.is_empty(), "{err:?}");
    let joined = alternate(err);
    for cause in &causes {
        assert!(!cause.is_empty(), "{joined}");
        assert!(
            !own.contains(cause.as_str()),
            "Display repeats the cause {cause:?}: {own}"
        );
        assert_eq!(
            joined.matches(cause.as_str()).count(),
            1,
            "{cause:?} in {joined}"
        );
    }
}

/// Nothing listens on the port: the layer's inner hyper-util client is refused at once, and the
/// error says so through its chain, not its `Display`.
#[tokio::test]
async fn a_refused_connection_is_named_once_at_the_root_of_the_chain() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .service(client);
    let req = Request::put(format!("http://127.0.0.1:{port}/accounts/a"))
        .body(Full::default())
        .unwrap();
    let err = service.oneshot(req).await.unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Service, "{err:?}");
    assert_eq!(err.to_string(), "inner service error (the initial request)");
    // The source is the client's own error, for downcasting.
    assert!(
        err.source()
            .and_then(|e| e.downcast_ref::<hyper_util::client::legacy::Error>())
            .is_some_and(|e| e.is_connect()),
        "{err:?}"
    );
    assert_each_cause_once(&err);
    // The root is the OS's refusal, whatever words the platform uses for it.
    let root = root(&err);
    let io = root
        .downcast_ref::<std::io::Error>()
        .unwrap_or_else(|| panic!("the root cause is an io::Error: {}", alternate(&err)));
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused, "{io:?}");
    // "Connection refused (os error 111)" on Linux, "... actively refused it." on Windows.
    let text = root.to_string();
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(alternate(&err).ends_with(&text), "{}", alternate(&err));
}

/// A transport error with its own cause, like a client's: `text`, caused by `source`.
#[derive(Debug)]
struct Transport(&'static str, Option<Box<Transport>>);

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Transport {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.1.as_deref().map(|e| e as _)
    }
}

/// The operation starts (`202` + `Location`), then every poll fails in the inner service with a
/// two-level chain; once the retries are spent, the chain is the error's, named once each.
#[tokio::test(start_paused = true)]
async fn a_failing_poll_keeps_its_causes_in_the_chain() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let inner = service_fn(move |_: Request<Full<Bytes>>| {
        let n = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if n == 0 {
                let mut response = Response::new(Full::<Bytes>::default());
                *response.status_mut() = StatusCode::ACCEPTED;
                let headers = response.headers_mut();
                headers.insert("location", "/operations/1".parse().unwrap());
                headers.insert("retry-after", "1".parse().unwrap());
                return Ok(response);
            }
            let reset = Transport("connection reset by peer", None);
            let closed = Transport("the poll's connection closed", Some(Box::new(reset)));
            Err(BoxError::from(closed))
        }
    });
    let err = ServiceBuilder::new()
        .layer(LongRunningLayer::new().max_transient_retries(2))
        .service(inner)
        .oneshot(
            Request::delete("https://management.example/accounts/a")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap_err();

    assert_eq!(err.kind(), ErrorKind::Service, "{err:?}");
    assert_eq!(err.to_string(), "inner service error (a poll)");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1 + 3,
        "the poll and its two retries"
    );
    assert!(err.operation().is_some(), "the operation had started");
    assert!(err.resume_token().is_some(), "it may still be running");
    assert!(
        err.source()
            .and_then(|e| e.downcast_ref::<Transport>())
            .is_some(),
        "the source is the inner service's error itself: {err:?}"
    );
    assert_each_cause_once(&err);
    assert_eq!(
        causes(&err),
        ["the poll's connection closed", "connection reset by peer"]
    );
    assert_eq!(root(&err).to_string(), "connection reset by peer");
    assert_eq!(
        alternate(&err),
        format!("{err}: the poll's connection closed: connection reset by peer")
    );
}
