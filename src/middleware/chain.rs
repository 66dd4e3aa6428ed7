//! `LongRunningMiddleware` for one reqwest-middleware version (the parent module's `middleware`,
//! over its `client`'s reqwest).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Extensions;
use tower_layer::Layer;
use tower_service::Service;

use super::client::adapter::http_response;
use super::client::reqwest::{Body, Request, Response};
use super::middleware::{Error, Middleware, Next};
use crate::middleware::LongRunningMiddleware;

#[async_trait::async_trait]
impl Middleware for LongRunningMiddleware {
    async fn handle(
        &self,
        request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response, Error> {
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
