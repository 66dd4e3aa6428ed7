//! `ReqwestService` and the conversions between reqwest's and `http`'s types, for one reqwest
//! version (the parent module's `reqwest`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tower_service::Service;

use super::reqwest::{Body, Client, Error, Request, Response, ResponseBuilderExt, Url};
use crate::body::ResponseBody;
use crate::error::BoxError;
use crate::reqwest_service::ReqwestService;

impl Service<http::Request<Body>> for ReqwestService<Client> {
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
            let response = client.execute(request?).await?;
            Ok(http_response(response))
        })
    }
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
