//! [`LongRunning`]: the service the layer produces.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::config::Config;
use crate::dialect::azure::Azure;
use crate::dialect::Dialect;
use crate::error::{BoxError, Error};
use crate::future::{CancelFuture, ResponseFuture, StepFuture};
use crate::token::ResumeToken;

/// Follows HTTP long-running operations to their final response. Made by [`LongRunningLayer`](crate::LongRunningLayer);
/// see it for the settings and the [crate documentation](crate) for the protocol.
///
/// The inner service must be `Clone`: the ready service sends the original request, and the
/// future keeps it to send each poll, driving it to readiness again before every GET. For a
/// service that is not `Clone`, put a `Buffer` below this layer.
///
/// `D` is the protocol followed: [`Azure`] unless the layer was made with
/// [`LongRunningLayer::with_dialect`](crate::LongRunningLayer::with_dialect).
#[derive(Clone)]
pub struct LongRunning<S, D = Azure> {
    inner: S,
    config: Arc<Config>,
    dialect: D,
}

impl<S> LongRunning<S> {
    /// Wraps `inner` with the default settings of [`LongRunningLayer::new`](crate::LongRunningLayer::new).
    pub fn new(inner: S) -> Self {
        LongRunning {
            inner,
            config: Arc::default(),
            dialect: Azure::default(),
        }
    }
}

impl<S, D: Dialect> LongRunning<S, D> {
    /// Wraps `inner` with the default settings of
    /// [`LongRunningLayer::with_dialect`](crate::LongRunningLayer::with_dialect), following
    /// `dialect`'s protocol (as tower-http's `FollowRedirect::with_policy` takes its policy).
    ///
    /// ```
    /// # let client = tower::service_fn(|_req: http::Request<String>| async {
    /// #     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    /// # });
    /// use tower_lro::{Google, LongRunning};
    ///
    /// let service = LongRunning::with_dialect(client, Google::new());
    /// # let _ = service;
    /// ```
    pub fn with_dialect(inner: S, dialect: D) -> Self {
        LongRunning {
            inner,
            config: Arc::new(Config::for_dialect(&dialect)),
            dialect,
        }
    }
}

impl<S, D> LongRunning<S, D> {
    pub(crate) fn from_parts(inner: S, config: Arc<Config>, dialect: D) -> Self {
        LongRunning {
            inner,
            config,
            dialect,
        }
    }

    /// The dialect followed.
    pub fn dialect(&self) -> &D {
        &self.dialect
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

impl<S, D: Dialect> LongRunning<S, D> {
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
    ) -> ResponseFuture<S, ReqBody, ResBody, D>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        ReqBody: Default,
    {
        // The clone is not assumed ready: the future drives it to readiness before each GET.
        ResponseFuture::new(
            self.inner.clone(),
            self.config.clone(),
            self.dialect.clone(),
            token.into_request(),
        )
    }

    /// One step of the operation `token` describes: exactly one poll (and the final GET when
    /// that poll says the operation succeeded), then [`Step::Running`](crate::Step::Running)
    /// with the next token and when to poll next, or [`Step::Done`](crate::Step::Done) with the
    /// final response, or the error that ended it. No future lives between steps, so an
    /// operation can wait in a queue or a database row.
    ///
    /// The guarantees are the layer's: only GETs; the origin policy, credential stripping and
    /// body limits; `max_polls`, `max_transient_retries` and `timeout` counted across steps
    /// (the token carries polls, the retry count and the time spent, the wait before the next
    /// step included). A transient failure is a `Running` step whose `poll_in` is the retry
    /// delay.
    ///
    /// ```
    /// # async fn run<S, B>(service: tower_lro::LongRunning<S>, saved: &str) -> Result<(), tower_lro::Error>
    /// # where
    /// #     S: tower::Service<http::Request<B>, Response = http::Response<http_body_util::Full<bytes::Bytes>>> + Clone,
    /// #     S::Error: Into<tower_lro::BoxError>,
    /// #     B: Default,
    /// # {
    /// let token = tower_lro::ResumeToken::from_json(saved)?;
    /// match service.step(token).await? {
    ///     tower_lro::Step::Running(next) => {
    ///         // Store `next.token().to_json()`; step again after `next.poll_in()`.
    ///     }
    ///     tower_lro::Step::Done(response) => {
    ///         // The final response.
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn step<ReqBody, ResBody>(&self, token: ResumeToken) -> StepFuture<S, ReqBody, ResBody, D>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        ReqBody: Default,
    {
        StepFuture::new(
            self.inner.clone(),
            self.config.clone(),
            self.dialect.clone(),
            &token,
        )
    }

    /// Asks the server to cancel the operation `token` describes, then follows it to its end:
    /// a [`Canceled`](crate::ErrorKind::Canceled) error once it is canceled, or its final
    /// response if it completed anyway. The cancel request is the dialect's (Google's
    /// `POST …:cancel`) or the [`CancelVia`](crate::CancelVia) attached when the operation
    /// started; it is sent once, never repeated, and never to an origin the layer's policy
    /// refuses. Without one, or when the server answers it has none (`404`, `405` or `501` by default), the error is
    /// [`CancelUnsupported`](crate::ErrorKind::CancelUnsupported) and the operation goes on.
    ///
    /// Dropping a response future only stops polling; this is the way to stop the operation.
    /// Through a stack (a `Buffer`, `ServiceExt::oneshot`), send
    /// [`ResumeToken::into_cancel_request`] instead.
    pub fn cancel<ReqBody, ResBody>(
        &self,
        token: ResumeToken,
    ) -> CancelFuture<S, ReqBody, ResBody, D>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        ReqBody: From<Bytes>,
    {
        CancelFuture::new(
            self.inner.clone(),
            self.config.clone(),
            self.dialect.clone(),
            token.into_cancel_request(),
        )
    }
}

impl<S: fmt::Debug, D: fmt::Debug> fmt::Debug for LongRunning<S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LongRunning")
            .field("inner", &self.inner)
            .field("dialect", &self.dialect)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, D, ReqBody, ResBody> Service<Request<ReqBody>> for LongRunning<S, D>
where
    D: Dialect,
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: Default,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Error;
    type Future = ResponseFuture<S, ReqBody, ResBody, D>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::service)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The service our caller drove to readiness sends the request; a fresh clone takes its
        // place for the next call (tower's "be careful when cloning inner services").
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(ready, self.config.clone(), self.dialect.clone(), req)
    }
}
