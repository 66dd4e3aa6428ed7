//! [`LongRunning`]: the service the layer produces.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::error::{BoxError, Error};
use crate::future::ResponseFuture;
use crate::layer::{Config, LongRunningLayer};
use crate::resume::ResumeToken;

/// Follows HTTP long-running operations to their final response. Made by [`LongRunningLayer`];
/// see it for the settings and the [crate documentation](crate) for the protocol.
///
/// The inner service must be `Clone`: the ready service sends the original request, and the
/// future keeps it to send each poll, driving it to readiness again before every GET. For a
/// service that is not `Clone`, put a `Buffer` below this layer.
#[derive(Clone)]
pub struct LongRunning<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> LongRunning<S> {
    /// Wraps `inner` with the default settings of [`LongRunningLayer::new`].
    pub fn new(inner: S) -> Self {
        LongRunning {
            inner,
            config: Arc::default(),
        }
    }

    pub(crate) fn from_parts(inner: S, config: Arc<Config>) -> Self {
        LongRunning { inner, config }
    }

    /// A [`LongRunningLayer`] with the default settings.
    pub fn layer() -> LongRunningLayer {
        LongRunningLayer::new()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> LongRunning<S> {
    /// Continues the operation `token` describes, polling at once, and returns the same future a
    /// call returns. Nothing is sent but GETs.
    ///
    /// The token is validated first: a malformed token, another version, or a monitor URL on an
    /// origin this layer's policy refuses *relative to the token's own original URI* ends the
    /// future with [`ErrorKind::InvalidResumeToken`](crate::ErrorKind::InvalidResumeToken). The
    /// policy cannot vouch for the original URI itself: a token is as trusted as a request you
    /// build, so keep tokens where others cannot write. The polls and time the token records count
    /// against this layer's `max_polls` and `timeout`, checked before anything is sent.
    ///
    /// Through a stack (a `Buffer`, `ServiceExt::oneshot`), send
    /// [`ResumeToken::into_request`] instead.
    ///
    /// ```
    /// # async fn run<S, B>(mut service: tower_lro::LongRunning<S>, saved: &str) -> Result<(), tower_lro::Error>
    /// # where
    /// #     S: tower::Service<http::Request<B>, Response = http::Response<http_body_util::Full<bytes::Bytes>>> + Clone,
    /// #     S::Error: Into<tower_lro::BoxError>,
    /// #     B: Default,
    /// # {
    /// let token = tower_lro::ResumeToken::from_json(saved)?;
    /// let response = service.resume(token).await?;
    /// # Ok(()) }
    /// ```
    pub fn resume<ReqBody, ResBody>(
        &self,
        token: ResumeToken,
    ) -> ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        ReqBody: Default,
    {
        // The clone is not assumed ready: the future drives it to readiness before each GET.
        ResponseFuture::start(
            self.inner.clone(),
            self.config.clone(),
            token.into_request(),
        )
    }
}

impl<S: fmt::Debug> fmt::Debug for LongRunning<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LongRunning")
            .field("inner", &self.inner)
            .field(
                "layer",
                &LongRunningLayer {
                    config: self.config.clone(),
                },
            )
            .finish()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for LongRunning<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: Default,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Error;
    type Future = ResponseFuture<S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::service)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The service our caller drove to readiness sends the request; a fresh clone takes its
        // place for the next call (tower's "be careful when cloning inner services").
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::start(ready, self.config.clone(), req)
    }
}
