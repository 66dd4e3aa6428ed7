//! [`LongRunningMiddleware`]: the layer as a `reqwest_middleware::Middleware`.

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use ::reqwest::{Body, Request, Response};
use http::Extensions;
use reqwest_middleware::{Error, Middleware, Next};
use tower_layer::Layer;
use tower_service::Service;

use crate::dialect::azure::Azure;
use crate::dialect::Dialect;
use crate::layer::LongRunningLayer;
use crate::reqwest::http_response;

/// [`LongRunningLayer`] as a `reqwest_middleware::Middleware` (reqwest-middleware 0.5, over
/// reqwest 0.13): a `reqwest_middleware::ClientWithMiddleware` built with it follows
/// long-running operations and `send()` resolves with the **final** response.
///
/// ```
/// use reqwest_middleware::ClientBuilder;
/// use tower_lro::{FinalStateVia, LongRunningLayer, LongRunningMiddleware};
///
/// # async fn run(url: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let client = ClientBuilder::new(reqwest::Client::new())
///     .with(LongRunningMiddleware::from(LongRunningLayer::new().max_polls(100)))
///     .build();
///
/// let response = client
///     .post(url)
///     .with_extension(FinalStateVia::Location) // per request, as a request extension
///     .send()
///     .await?;
/// println!("{} from {}", response.status(), response.url());
/// # Ok(()) }
/// ```
///
/// # The dialect
///
/// Like the layer, the middleware follows **one** protocol, chosen when it is made; `D` names it.
/// [`new`](Self::new) follows Azure's ([`Azure`]). For any other API, say which:
///
/// - [`LongRunningMiddleware::with_dialect(Google::new())`](Self::with_dialect) for Google's
///   AIP-151 operations ([`Google`](crate::Google)), or `with_dialect(YourDialect)` for a
///   [`Dialect`] of your own;
/// - `LongRunningMiddleware::from(LongRunningLayer::with_dialect(Google::new()).max_polls(100))`
///   for a dialect together with other settings: every [`LongRunningLayer`] converts, whatever
///   its dialect.
///
/// ```
/// use tower_lro::{Google, LongRunningLayer, LongRunningMiddleware};
///
/// let google = LongRunningMiddleware::with_dialect(Google::new());
/// let tuned = LongRunningMiddleware::from(LongRunningLayer::with_dialect(Google::new()).max_polls(100));
/// # let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).with(google).with(tuned).build();
/// ```
///
/// The wrong dialect does not fail: it does not recognize the operation, and hands back the
/// initial response as it came. Against a Google API the default (Azure) middleware returns the
/// `200` with the `Operation` that is not done (`{"name":…}`, `done` absent or `false`) at once,
/// and the operation goes on unfollowed; an Azure `202` seen by the Google dialect comes back as
/// the `202`. If `send()` returns an operation that is not done, check the dialect first.
///
/// # The chain
///
/// The original request goes down the rest of the chain once; each poll and final GET goes down
/// it again, from the middleware after this one to the client, as a fresh request. So
/// middlewares added **after** it see every round trip (as layers below
/// [`LongRunningLayer`] do), and those added **before** it see the whole operation as one call.
///
/// - Retries (`reqwest_retry::RetryTransientMiddleware`): **after** it, they retry each round
///   trip: a poll that meets a 503 or a reset is sent again at once (the layer's own transient
///   retries then only see what the retry middleware gave up on). They also retry the original
///   request if its body can be cloned, whatever its method: that is the retry middleware's
///   choice, not this crate's, which never sends the original request twice. **Before** it, they
///   see one call per operation: a transient error *response* to the original request (the layer
///   hands a 503 back untouched) makes them start the whole operation again, while the errors
///   this middleware returns are `Middleware` errors, which reqwest-retry's default policy
///   treats as fatal (and passes on wrapped in its `RetryError`).
/// - Authentication: after it, so that each poll is signed afresh; it should skip requests whose
///   `Extensions` hold [`CredentialsWithheld`](crate::CredentialsWithheld).
/// - Tracing and whole-operation timeouts: before it.
///
/// # Extensions
///
/// The `Extensions` a request is sent with (`RequestBuilder::with_extension`, or the
/// `reqwest::Request`'s own) steer the layer as a request's extensions do:
/// [`FinalStateVia`](crate::FinalStateVia), [`Polling`](crate::Polling), a
/// [`progress::channel`](crate::progress::channel) sender. (A token resumes only through its own
/// request: see [Resuming](#resuming).) Middlewares after this one see, for the original request, a copy of those extensions without
/// this crate's own; for a poll, a copy of what the layer gives the poll (the same on the
/// original's origin; on another origin, only [`CredentialsWithheld`](crate::CredentialsWithheld)).
/// What they insert is not seen by the caller.
///
/// # Resuming
///
/// [`ResumeToken::into_request`](crate::ResumeToken::into_request) makes the request that
/// resumes an operation: the token in its extensions, its URI the original request's (no URL to
/// make up). A `reqwest::Request` made from it keeps those extensions (as its clones do), so it
/// goes through the client as it is: give it to `ClientWithMiddleware::execute`. Nothing is sent
/// but the polls (and the final GET), by a middleware of the token's
/// [`dialect`](crate::ResumeToken::dialect); the middlewares before this one see the token's
/// request, a GET of the original URI.
///
/// ```
/// # async fn run(client: reqwest_middleware::ClientWithMiddleware, saved: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let token = tower_lro::ResumeToken::from_json(saved)?;
/// let request = reqwest::Request::try_from(token.into_request::<reqwest::Body>())?;
/// let response = client.execute(request).await?; // the final response
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// A response comes back as it does without this middleware. Every error is a
/// `reqwest_middleware::Error::Middleware` holding a [`tower_lro::Error`](crate::Error): a failed
/// or canceled operation, a bound exceeded, or (as [`ErrorKind::Service`](crate::ErrorKind::Service),
/// with the `reqwest_middleware::Error` as its `source()`) a request the rest of the chain could
/// not send.
///
/// ```
/// # fn explain(err: reqwest_middleware::Error) {
/// if let reqwest_middleware::Error::Middleware(inner) = &err {
///     if let Some(lro) = inner.downcast_ref::<tower_lro::Error>() {
///         eprintln!("{:?}: {:?} {:?}", lro.kind(), lro.code(), lro.message());
///     }
/// }
/// # }
/// ```
#[derive(Clone, Default)]
pub struct LongRunningMiddleware<D = Azure> {
    layer: LongRunningLayer<D>,
}

impl LongRunningMiddleware {
    /// A middleware with the defaults of [`LongRunningLayer::new`], following Azure's protocol;
    /// for other settings, make it from a layer
    /// (`LongRunningMiddleware::from(LongRunningLayer::new().max_polls(10))`).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<D: Dialect> LongRunningMiddleware<D> {
    /// A middleware with the defaults of [`LongRunningLayer::with_dialect`], following
    /// `dialect`'s protocol ([`Google`](crate::Google), or one of your own).
    ///
    /// ```
    /// use tower_lro::{Google, LongRunningMiddleware};
    ///
    /// let middleware = LongRunningMiddleware::with_dialect(Google::new());
    /// # let _ = middleware;
    /// ```
    pub fn with_dialect(dialect: D) -> Self {
        LongRunningMiddleware {
            layer: LongRunningLayer::with_dialect(dialect),
        }
    }

    /// The layer the middleware runs: its settings and dialect.
    pub fn layer(&self) -> &LongRunningLayer<D> {
        &self.layer
    }
}

impl<D> From<LongRunningLayer<D>> for LongRunningMiddleware<D> {
    /// A middleware with `layer`'s settings and dialect.
    fn from(layer: LongRunningLayer<D>) -> Self {
        LongRunningMiddleware { layer }
    }
}

impl<D: fmt::Debug> fmt::Debug for LongRunningMiddleware<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LongRunningMiddleware")
            .field(&self.layer)
            .finish()
    }
}

#[async_trait::async_trait]
impl<D: Dialect> Middleware for LongRunningMiddleware<D> {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response, Error> {
        // The request keeps its own extensions (a token from `ResumeToken::into_request`, say).
        let mut request = http::Request::<Body>::try_from(request)?;
        // What the caller set with `with_extension` steers the layer, as request extensions do.
        request.extensions_mut().extend(extensions.clone());
        let mut service = self.layer.layer(RestOfChain { next });
        poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(Error::middleware)?;
        match service.call(request).await {
            Ok(response) => Ok(Response::from(response)),
            Err(error) => Err(Error::middleware(error)),
        }
    }
}

/// The middlewares after ours and the client, as the service below the layer: every call (the
/// original request, then each poll) runs the rest of the chain again.
#[derive(Clone)]
struct RestOfChain<'a> {
    next: Next<'a>,
}

impl<'a> Service<http::Request<Body>> for RestOfChain<'a> {
    type Response = http::Response<Body>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send + 'a>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let next = self.next.clone();
        Box::pin(async move {
            // The chain's extensions for this round trip are the ones the layer gave the request
            // (a poll to another origin carries only `CredentialsWithheld`); the request keeps
            // them too, for reqwest's own per-request settings.
            let mut extensions = request.extensions().clone();
            let request = Request::try_from(request)?;
            let response = next.run(request, &mut extensions).await?;
            Ok(http_response(response))
        })
    }
}
