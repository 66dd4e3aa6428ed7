//! [`ReqwestService`]: a `reqwest::Client` as the service below [`LongRunningLayer`].
//!
//! [`LongRunningLayer`]: crate::LongRunningLayer

// One adapter, compiled once per supported reqwest version: the two versions' `Client`,
// `Request`, `Response` and `Body` are distinct types with the same API.
#[cfg(feature = "reqwest")]
#[path = "."] // the shared file sits beside this one
pub(crate) mod v0_13 {
    pub(crate) use ::reqwest;
    #[allow(clippy::duplicate_mod, reason = "one source, compiled per version")]
    #[path = "adapter.rs"]
    pub(crate) mod adapter;
}
#[cfg(feature = "reqwest-0-12")]
#[path = "."] // the shared file sits beside this one
pub(crate) mod v0_12 {
    pub(crate) use ::reqwest_0_12 as reqwest;
    #[allow(clippy::duplicate_mod, reason = "one source, compiled per version")]
    #[path = "adapter.rs"]
    pub(crate) mod adapter;
}

/// A `reqwest::Client` as a `tower::Service<http::Request<reqwest::Body>>`, to put below
/// [`LongRunningLayer`](crate::LongRunningLayer): no adapter code of your own.
///
/// `ReqwestService<reqwest::Client>` (feature `reqwest`, reqwest 0.13, the default type) and
/// `ReqwestService<reqwest_0_12::Client>` (feature `reqwest-0-12`, reqwest 0.12 under whatever
/// name your `Cargo.toml` gives it) implement
/// `Service<http::Request<reqwest::Body>, Response = http::Response<reqwest::Body>,
/// Error = reqwest::Error>` with that version's types. The request body is reqwest's own `Body`,
/// not a generic one, so that [`LongRunning::resume`](crate::LongRunning::resume),
/// [`ResumeToken::into_request`](crate::ResumeToken::into_request) and requests built with
/// `.body(reqwest::Body::from(..))` need no type annotations.
///
/// - A request whose URI reqwest cannot take as a URL (a relative URI, say) fails with reqwest's
///   builder error (`reqwest::Error::is_builder`), inside the layer's
///   [`ErrorKind::Service`](crate::ErrorKind::Service); it is never a panic.
/// - Every response keeps the URL it came from: `reqwest::Response::from(response).url()` is the
///   URL of the request that produced the final response (the last poll, the final GET or the
///   original request), and the response's extensions hold it as a `reqwest::Url` too.
/// - The layer's [`ResponseBody`](crate::ResponseBody) converts into a `reqwest::Body`, so
///   `reqwest::Response::from(response)` gives you reqwest's `text()`, `json()`, `bytes()`.
///
/// ```
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_lro::{LongRunningLayer, ReqwestService};
///
/// # async fn run(url: &str) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let service = ServiceBuilder::new()
///     .layer(LongRunningLayer::new())
///     .service(ReqwestService::new(reqwest::Client::new()));
///
/// let request = http::Request::put(url)
///     .header("content-type", "application/json")
///     .body(reqwest::Body::from(r#"{"location":"westeurope"}"#))?;
/// let response = reqwest::Response::from(service.oneshot(request).await?);
/// println!("{} from {}", response.status(), response.url());
/// println!("{}", response.text().await?);
/// # Ok(()) }
/// ```
#[cfg(feature = "reqwest")]
#[derive(Debug, Clone, Default)]
pub struct ReqwestService<C = ::reqwest::Client> {
    client: C,
}

/// A `reqwest::Client` as a `tower::Service<http::Request<reqwest::Body>>`, to put below
/// [`LongRunningLayer`](crate::LongRunningLayer); with feature `reqwest` (reqwest 0.13), that
/// version's `Client` is the default type and the documentation is there.
#[cfg(not(feature = "reqwest"))]
#[derive(Debug, Clone, Default)]
pub struct ReqwestService<C> {
    client: C,
}

impl<C> ReqwestService<C> {
    /// Wraps `client`. Cloning the service clones the client, which shares its connection pool.
    pub fn new(client: C) -> Self {
        ReqwestService { client }
    }

    /// The client.
    pub fn get_ref(&self) -> &C {
        &self.client
    }

    /// Unwraps the client.
    pub fn into_inner(self) -> C {
        self.client
    }
}
