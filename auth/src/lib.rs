//! Signing every request, polls included, with a bearer token that refreshes itself.
//!
//! A general-purpose tower layer, made to go with [tower-lro](https://docs.rs/tower-lro), of which
//! it knows one thing: the [`CredentialsWithheld`] mark below.
//!
//! [`BearerTokenLayer`] goes **below** [`LongRunningLayer`], so that the original request and
//! every poll and final GET ask it for `Authorization: Bearer …`. It asks a [`TokenSource`] for a
//! token, keeps it until shortly before it expires, and asks again: one request at a time
//! refreshes while the others wait for its token. It never signs a request that carries
//! [`CredentialsWithheld`], which the layer puts on polls to another origin than the original
//! request's: a token for your API is never sent to a monitor URL elsewhere.
//!
//! [`LongRunningLayer`]: tower_lro::LongRunningLayer
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use tower::ServiceBuilder;
//! use tower_lro::{LongRunningLayer, ReqwestService};
//! use tower_lro_auth::{token_fn, AccessToken, BearerTokenLayer};
//!
//! let tokens = token_fn(|| async {
//!     // Ask your identity provider here.
//!     Ok(AccessToken::new("eyJ0eXAi…", SystemTime::now() + Duration::from_secs(3600)))
//! });
//! let service = ServiceBuilder::new()
//!     .layer(LongRunningLayer::new())
//!     .layer(BearerTokenLayer::new(tokens))
//!     .service(ReqwestService::new(reqwest::Client::new()));
//! ```
//!
//! With feature `azure-core`, [`AzureCredential`] makes any `azure_identity` credential a token
//! source.
//!
//! # A rejected token
//!
//! When a signed request is answered `401 Unauthorized`, the token it carried is dropped from the
//! cache, whatever its expiry. A request without a body (every poll and final GET, most GETs and
//! DELETEs) is then sent once more with a fresh token, and the second answer is final. A request
//! with a body cannot be sent again, since its body was consumed: its `401` is returned as it is,
//! and the next request gets a fresh token.

#![warn(
    missing_docs,
    rust_2018_idioms,
    unreachable_pub,
    missing_debug_implementations
)]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "azure-core")]
mod azure;

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode};
use tower_layer::Layer;
use tower_service::Service;

#[cfg(feature = "azure-core")]
#[cfg_attr(docsrs, doc(cfg(feature = "azure-core")))]
pub use azure::AzureCredential;

use tower_lro::{BoxError, CredentialsWithheld};

/// A bearer token and when it stops being valid. Its `Debug` output never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The token, sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the token expires; [`BearerTokenLayer`] asks for a new one
    /// [`refresh_before`](BearerTokenLayer::refresh_before) that.
    pub expires_at: SystemTime,
}

impl AccessToken {
    /// A token valid until `expires_at`.
    pub fn new(token: impl Into<String>, expires_at: SystemTime) -> Self {
        AccessToken {
            token: token.into(),
            expires_at,
        }
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where [`BearerTokenLayer`] gets its tokens: an identity provider, a credential, a file.
///
/// It is asked when there is no token yet, when the current one is about to expire, and after a
/// `401`; never by two requests at once. An error fails the request that needed the token (below
/// [`LongRunningLayer`](tower_lro::LongRunningLayer), a poll's failure counts as transient and is
/// retried).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_lro::BoxError;
/// use tower_lro_auth::{AccessToken, TokenSource};
///
/// struct FromEnvironment;
///
/// impl TokenSource for FromEnvironment {
///     async fn token(&self) -> Result<AccessToken, BoxError> {
///         let token = std::env::var("API_TOKEN")?;
///         Ok(AccessToken::new(token, SystemTime::now() + Duration::from_secs(600)))
///     }
/// }
/// ```
pub trait TokenSource: Send + Sync + 'static {
    /// A token, fresh from the source.
    fn token(&self) -> impl Future<Output = Result<AccessToken, BoxError>> + Send;
}

/// A [`TokenSource`] from an async closure; see [`token_fn`].
#[derive(Clone)]
pub struct TokenFn<F>(F);

/// A [`TokenSource`] that calls `f` for each token.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_lro_auth::{token_fn, AccessToken};
///
/// let source = token_fn(|| async {
///     Ok(AccessToken::new("secret", SystemTime::now() + Duration::from_secs(60)))
/// });
/// ```
pub fn token_fn<F, Fut>(f: F) -> TokenFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AccessToken, BoxError>> + Send,
{
    TokenFn(f)
}

impl<F, Fut> TokenSource for TokenFn<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<AccessToken, BoxError>> + Send,
{
    fn token(&self) -> impl Future<Output = Result<AccessToken, BoxError>> + Send {
        (self.0)()
    }
}

impl<F> fmt::Debug for TokenFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenFn(..)")
    }
}

/// A tower `Layer` that signs each request with `Authorization: Bearer <token>` from a
/// [`TokenSource`], replacing any `Authorization` the request had (the value is marked sensitive,
/// so `Debug` output of the headers hides it); see the [crate documentation](crate) for where it
/// goes and what it does on a `401`.
///
/// The services it makes share one token cache, as do clones of the layer.
pub struct BearerTokenLayer<T> {
    tokens: Arc<Tokens<T>>,
    refresh_before: Duration,
}

impl<T: TokenSource> BearerTokenLayer<T> {
    /// Default of [`refresh_before`](Self::refresh_before): the margin Azure's own SDKs keep.
    pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(5 * 60);

    /// A layer asking `source` for its tokens.
    pub fn new(source: T) -> Self {
        BearerTokenLayer {
            tokens: Arc::new(Tokens {
                source,
                cached: Mutex::new(None),
                refreshing: tokio::sync::Mutex::new(()),
            }),
            refresh_before: Self::DEFAULT_REFRESH_BEFORE,
        }
    }

    /// How long before a token's `expires_at` it is replaced: a request never leaves with a token
    /// that expires within this margin (clocks differ, and a request takes time to arrive).
    pub fn refresh_before(mut self, margin: Duration) -> Self {
        self.refresh_before = margin;
        self
    }
}

impl<T> Clone for BearerTokenLayer<T> {
    fn clone(&self) -> Self {
        BearerTokenLayer {
            tokens: self.tokens.clone(),
            refresh_before: self.refresh_before,
        }
    }
}

impl<T> fmt::Debug for BearerTokenLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerTokenLayer")
            .field("refresh_before", &self.refresh_before)
            .finish_non_exhaustive()
    }
}

impl<S, T> Layer<S> for BearerTokenLayer<T> {
    type Service = BearerToken<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerToken {
            inner,
            tokens: self.tokens.clone(),
            refresh_before: self.refresh_before,
        }
    }
}

/// The service [`BearerTokenLayer`] makes.
pub struct BearerToken<S, T> {
    inner: S,
    tokens: Arc<Tokens<T>>,
    refresh_before: Duration,
}

impl<S: Clone, T> Clone for BearerToken<S, T> {
    fn clone(&self) -> Self {
        BearerToken {
            inner: self.inner.clone(),
            tokens: self.tokens.clone(),
            refresh_before: self.refresh_before,
        }
    }
}

impl<S: fmt::Debug, T> fmt::Debug for BearerToken<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken")
            .field("inner", &self.inner)
            .field("refresh_before", &self.refresh_before)
            .finish_non_exhaustive()
    }
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for BearerToken<S, T>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    T: TokenSource,
    ReqBody: http_body::Body + Default + Send + 'static,
    ResBody: Send,
{
    type Response = Response<ResBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The service our caller drove to readiness sends the request; its clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        if request.extensions().get::<CredentialsWithheld>().is_some() {
            let response = inner.call(request);
            return Box::pin(async move { response.await.map_err(Into::into) });
        }
        let tokens = self.tokens.clone();
        let margin = self.refresh_before;
        Box::pin(async move {
            let sent = tokens.header(margin).await?;
            let replay = request
                .body()
                .is_end_stream()
                .then(|| unsigned_copy(&request));
            request.headers_mut().insert(AUTHORIZATION, sent.clone());
            let response = inner.call(request).await.map_err(Into::into)?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            tokens.forget(&sent);
            let Some(mut again) = replay else {
                return Ok(response);
            };
            drop(response);
            let fresh = tokens.header(margin).await?;
            again.headers_mut().insert(AUTHORIZATION, fresh);
            poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(Into::into)?;
            inner.call(again).await.map_err(Into::into)
        })
    }
}

/// A request like `request`, whose body is empty, with an empty body of its own.
fn unsigned_copy<B: Default>(request: &Request<B>) -> Request<B> {
    let mut copy = Request::new(B::default());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    *copy.extensions_mut() = request.extensions().clone();
    copy
}

/// A token source and the token it gave last, shared by a layer's services.
struct Tokens<T> {
    source: T,
    cached: Mutex<Option<Cached>>,
    // Held while the source is asked, so that only one request at a time asks it.
    refreshing: tokio::sync::Mutex<()>,
}

struct Cached {
    header: HeaderValue,
    expires_at: SystemTime,
}

impl<T: TokenSource> Tokens<T> {
    /// The `Authorization` value to send: the cached one while it is valid for `margin` more,
    /// else a fresh one.
    async fn header(&self, margin: Duration) -> Result<HeaderValue, BoxError> {
        if let Some(header) = self.valid(margin) {
            return Ok(header);
        }
        let _refreshing = self.refreshing.lock().await;
        // Whoever held the lock before us may have refreshed it already.
        if let Some(header) = self.valid(margin) {
            return Ok(header);
        }
        let token = self.source.token().await?;
        let mut header = HeaderValue::try_from(format!("Bearer {}", token.token))
            .map_err(|_| "the token source gave a token that is not a valid header value")?;
        header.set_sensitive(true);
        *lock(&self.cached) = Some(Cached {
            header: header.clone(),
            expires_at: token.expires_at,
        });
        Ok(header)
    }
}

impl<T> Tokens<T> {
    fn valid(&self, margin: Duration) -> Option<HeaderValue> {
        let cached = lock(&self.cached);
        let cached = cached.as_ref()?;
        let deadline = cached.expires_at.checked_sub(margin)?;
        (SystemTime::now() < deadline).then(|| cached.header.clone())
    }

    /// Drops `rejected` from the cache, unless another request has replaced it already.
    fn forget(&self, rejected: &HeaderValue) {
        let mut cached = lock(&self.cached);
        if cached.as_ref().is_some_and(|c| c.header == rejected) {
            *cached = None;
        }
    }
}

fn lock(cached: &Mutex<Option<Cached>>) -> MutexGuard<'_, Option<Cached>> {
    // Nothing panics while holding the lock; a poisoned cache still holds a whole value.
    cached.lock().unwrap_or_else(PoisonError::into_inner)
}
