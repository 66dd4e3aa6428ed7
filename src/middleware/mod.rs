//! [`LongRunningMiddleware`]: the layer as a `reqwest_middleware::Middleware`.

use std::fmt;

use crate::layer::LongRunningLayer;

// One middleware, compiled once per supported reqwest-middleware version, each over the
// reqwest version it is built on.
#[cfg(feature = "reqwest-middleware")]
#[path = "."] // the shared file sits beside this one
mod v0_5 {
    use crate::reqwest_service::v0_13 as client;
    use ::reqwest_middleware as middleware;
    #[allow(clippy::duplicate_mod, reason = "one source, compiled per version")]
    #[path = "chain.rs"]
    mod chain;
}
#[cfg(feature = "reqwest-middleware-0-4")]
#[path = "."] // the shared file sits beside this one
mod v0_4 {
    use crate::reqwest_service::v0_12 as client;
    use ::reqwest_middleware_0_4 as middleware;
    #[allow(clippy::duplicate_mod, reason = "one source, compiled per version")]
    #[path = "chain.rs"]
    mod chain;
}

/// [`LongRunningLayer`] as a `reqwest_middleware::Middleware`: a
/// `reqwest_middleware::ClientWithMiddleware` built with it follows long-running operations and
/// `send()` resolves with the **final** response.
///
/// It implements `Middleware` of reqwest-middleware 0.5 (feature `reqwest-middleware`, over
/// reqwest 0.13) and of 0.4 (feature `reqwest-middleware-0-4`, over reqwest 0.12).
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
/// The `Extensions` a request is sent with (`RequestBuilder::with_extension`) steer the layer as
/// a request's extensions do: [`FinalStateVia`](crate::FinalStateVia),
/// [`Polling`](crate::Polling), a [`progress::channel`](crate::progress::channel) sender, or a
/// [`ResumeToken`](crate::ResumeToken) to resume that operation instead of sending the request.
/// Middlewares after this one see, for the original request, a copy of those extensions without
/// this crate's own; for a poll, a copy of what the layer gives the poll (the same on the
/// original's origin; on another origin, only [`CredentialsWithheld`](crate::CredentialsWithheld)).
/// What they insert is not seen by the caller.
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
pub struct LongRunningMiddleware {
    layer: LongRunningLayer,
}

impl LongRunningMiddleware {
    /// A middleware with the defaults of [`LongRunningLayer::new`]; for other settings, make it
    /// from a layer (`LongRunningMiddleware::from(LongRunningLayer::new().max_polls(10))`).
    pub fn new() -> Self {
        Self::default()
    }
}

impl From<LongRunningLayer> for LongRunningMiddleware {
    /// A middleware with `layer`'s settings.
    fn from(layer: LongRunningLayer) -> Self {
        LongRunningMiddleware { layer }
    }
}

impl fmt::Debug for LongRunningMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LongRunningMiddleware")
            .field(&self.layer)
            .finish()
    }
}
