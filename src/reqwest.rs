//! [`ReqwestService`]: a `reqwest::Client` as the service below [`LongRunningLayer`], and the
//! conversions between reqwest's and `http`'s types.
//!
//! [`LongRunningLayer`]: crate::LongRunningLayer

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::reqwest::{Body, Client, Error, Request, Response, ResponseBuilderExt, Url};
use bytes::Bytes;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::error::BoxError;
use crate::protocol::redact;

/// A `reqwest::Client` (reqwest 0.13) as a `tower::Service<http::Request<reqwest::Body>>`, to put
/// below [`LongRunningLayer`](crate::LongRunningLayer): no adapter code of your own.
///
/// It implements `Service<http::Request<reqwest::Body>, Response = http::Response<reqwest::Body>,
/// Error = reqwest::Error>`. The request body is reqwest's own `Body`, not a generic one, so that
/// [`LongRunning::resume`](crate::LongRunning::resume),
/// [`ResumeToken::into_request`](crate::ResumeToken::into_request) and requests built with
/// `.body(reqwest::Body::from(..))` need no type annotations.
///
/// - A request whose URI reqwest cannot take as a URL (a relative URI, say) fails with reqwest's
///   builder error (`reqwest::Error::is_builder`), inside the layer's
///   [`ErrorKind::Service`](crate::ErrorKind::Service); it is never a panic.
/// - Every response keeps the URL it came from: `reqwest::Response::from(response).url()` is the
///   URL of the request that produced the final response (the last poll, the final GET or the
///   original request), and the response's extensions hold it as a `reqwest::Url` too.
/// - The layer's [`ResponseBody`] converts into a `reqwest::Body`, so
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
///
/// # Redirects: turn reqwest's off
///
/// reqwest follows `301`/`302`/`303`/`307`/`308` itself by default (up to 10, to any origin),
/// below the layer: the layer never sees such an answer, so its origin policy
/// ([`allow_origin`](crate::LongRunningLayer::allow_origin)) and its withholding of credentials
/// from other origins do not apply to where the redirect leads. A protocol whose monitor
/// redirects to the result ([`AsyncRequestReply`](crate::AsyncRequestReply): a `302`/`303` to
/// a SAS URL) needs the layer to see the redirect. Build the client without redirects, and let
/// the layer make the GET:
///
/// ```
/// use tower::ServiceBuilder;
/// use tower_lro::{AsyncRequestReply, LongRunningLayer, ReqwestService};
///
/// let client = reqwest::Client::builder()
///     .redirect(reqwest::redirect::Policy::none())
///     .build()?;
/// let service = ServiceBuilder::new()
///     .layer(LongRunningLayer::with_dialect(AsyncRequestReply::new()))
///     .service(ReqwestService::new(client));
/// # let _ = service;
/// # Ok::<(), reqwest::Error>(())
/// ```
///
/// Another protocol is the layer's choice, not the client's:
/// `LongRunningLayer::with_dialect(Google::new())` over the same service follows Google's
/// operations (see [`LongRunningLayer::with_dialect`](crate::LongRunningLayer::with_dialect)).
#[derive(Debug, Clone, Default)]
pub struct ReqwestService {
    client: Client,
}

impl ReqwestService {
    /// Wraps `client`. Cloning the service clones the client, which shares its connection pool.
    pub fn new(client: Client) -> Self {
        ReqwestService { client }
    }

    /// The client.
    pub fn get_ref(&self) -> &Client {
        &self.client
    }

    /// Unwraps the client.
    pub fn into_inner(self) -> Client {
        self.client
    }
}

impl Service<http::Request<Body>> for ReqwestService {
    type Response = http::Response<Body>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // A reqwest client is always ready: its pool queues requests itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let request = Request::try_from(request);
        let client = self.client.clone();
        Box::pin(async move {
            let response = client.execute(request?).await.map_err(redacted)?;
            Ok(http_response(response))
        })
    }
}

/// `error` with the URL it names redacted, as the layer shows URLs: a poll's URL may carry a
/// credential, and reqwest's `Display` prints it.
fn redacted(mut error: Error) -> Error {
    if let Some(url) = error.url_mut() {
        if let Ok(shown) = Url::parse(&redact::url(url.as_str())) {
            *url = shown;
        }
    }
    error
}

/// `response` as an `http::Response` that remembers its URL: `http::Response::from` alone drops
/// it, and `reqwest::Response::from` would then report a placeholder.
pub(crate) fn http_response(response: Response) -> http::Response<Body> {
    let url = response.url().clone();
    let mut response = http::Response::from(response);
    // reqwest reads the URL back from an extension only its response builder can set.
    let mut carrier = http::response::Builder::new().url(url.clone());
    if let Some(extensions) = carrier.extensions_mut() {
        response.extensions_mut().extend(std::mem::take(extensions));
    }
    response.extensions_mut().insert::<Url>(url);
    response
}

/// The layer's response body as reqwest's, for `reqwest::Response::from(response)`.
impl<B> From<ResponseBody<B>> for Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    fn from(body: ResponseBody<B>) -> Body {
        Body::wrap(body)
    }
}
