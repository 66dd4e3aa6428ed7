//! The futures of [`LongRunning`](crate::LongRunning), and what a step returns.
//!
//! All three are thin wrappers over one private future that follows an operation; they differ
//! only in how far they follow it and what they resolve with:
//!
//! | future | made by | resolves with |
//! |---|---|---|
//! | [`ResponseFuture`] | `call`, [`ResumeToken::into_request`](crate::ResumeToken::into_request) | the final response |
//! | [`StepFuture`] | [`LongRunning::step`](crate::LongRunning::step) | one [`Step`]: still running, or done |
//! | [`CancelFuture`] | [`LongRunning::cancel`](crate::LongRunning::cancel) | the end of a canceled operation |

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::config::Config;
use crate::dialect::azure::Azure;
use crate::dialect::Dialect;
use crate::error::{BoxError, Error};
use crate::info::OperationInfo;
use crate::token::ResumeToken;

use self::core::{Core, OneStep, ToTheEnd};

pub(crate) mod clock;
mod core;
pub(crate) mod ledger;
pub(crate) mod original;

pin_project! {
    /// The future of [`LongRunning`](crate::LongRunning)'s `call`: resolves with the operation's
    /// final response, or the [`Error`] that ended it. Dropping it stops the operation's polling
    /// at once: it owns every timer and connection it uses and spawns nothing.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, ReqBody, ResBody, D = Azure>
    where
        S: Service<Request<ReqBody>>,
        D: Dialect,
    {
        #[pin]
        core: Core<S, ReqBody, ResBody, D, ToTheEnd>,
    }
}

impl<S, ReqBody, ResBody, D> ResponseFuture<S, ReqBody, ResBody, D>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    D: Dialect,
{
    /// Sends `req` through `service`, which the caller has driven to readiness (or resumes or
    /// cancels the operation of a token's request).
    pub(crate) fn new(service: S, config: Arc<Config>, dialect: D, req: Request<ReqBody>) -> Self {
        ResponseFuture {
            core: Core::start(service, config, dialect, req),
        }
    }
}

impl<S, ReqBody, ResBody, D> Future for ResponseFuture<S, ReqBody, ResBody, D>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ReqBody: Default,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
    D: Dialect,
{
    type Output = Result<Response<ResponseBody<ResBody>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().core.poll(cx)
    }
}

impl<S, ReqBody, ResBody, D> fmt::Debug for ResponseFuture<S, ReqBody, ResBody, D>
where
    S: Service<Request<ReqBody>>,
    D: Dialect,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ResponseFuture").field(&self.core).finish()
    }
}

/// Where a step of [`LongRunning::step`](crate::LongRunning::step) left the operation.
#[derive(Debug)]
// Returned once per step and matched at once; a box would be an allocation per step.
#[allow(clippy::large_enum_variant)]
pub enum Step<R> {
    /// Still running: take the next step after [`NextStep::poll_in`] with
    /// [`NextStep::token`].
    Running(NextStep),
    /// Done: the final response. (An operation that failed or was canceled is an `Err`.)
    Done(R),
}

/// An operation still running after a step: the token of the next step, and when to take it.
#[derive(Debug, Clone)]
pub struct NextStep {
    pub(crate) token: ResumeToken,
    pub(crate) poll_in: Duration,
    pub(crate) operation: OperationInfo,
}

impl NextStep {
    /// The token for the next step. It counts this step's poll and the wait before the next
    /// one, so the layer's `max_polls` and `timeout` bound the operation across steps.
    pub fn token(&self) -> &ResumeToken {
        &self.token
    }

    /// The token, owned.
    pub fn into_token(self) -> ResumeToken {
        self.token
    }

    /// When to take the next step: the server's hint, else the layer's delay schedule, clamped
    /// to the layer's bounds.
    pub fn poll_in(&self) -> Duration {
        self.poll_in
    }

    /// What happened so far: state, progress, polls.
    pub fn operation(&self) -> &OperationInfo {
        &self.operation
    }
}

pin_project! {
    /// The future of [`LongRunning::step`](crate::LongRunning::step): one poll of an operation
    /// (and its final GET when that poll says it succeeded).
    #[must_use = "futures do nothing unless polled"]
    pub struct StepFuture<S, ReqBody, ResBody, D = Azure>
    where
        S: Service<Request<ReqBody>>,
        D: Dialect,
    {
        #[pin]
        core: Core<S, ReqBody, ResBody, D, OneStep>,
    }
}

impl<S, ReqBody, ResBody, D> StepFuture<S, ReqBody, ResBody, D>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    D: Dialect,
{
    pub(crate) fn new(service: S, config: Arc<Config>, dialect: D, token: &ResumeToken) -> Self
    where
        ReqBody: Default,
    {
        StepFuture {
            core: Core::step(service, config, dialect, token),
        }
    }
}

impl<S, ReqBody, ResBody, D> Future for StepFuture<S, ReqBody, ResBody, D>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ReqBody: Default,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
    D: Dialect,
{
    type Output = Result<Step<Response<ResponseBody<ResBody>>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().core.poll(cx)
    }
}

impl<S, ReqBody, ResBody, D> fmt::Debug for StepFuture<S, ReqBody, ResBody, D>
where
    S: Service<Request<ReqBody>>,
    D: Dialect,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StepFuture").field(&self.core).finish()
    }
}

pin_project! {
    /// The future of [`LongRunning::cancel`](crate::LongRunning::cancel): drives the service to
    /// readiness, sends the cancel request once, then follows the operation to its end.
    #[must_use = "futures do nothing unless polled"]
    pub struct CancelFuture<S, ReqBody, ResBody, D = Azure>
    where
        S: Service<Request<ReqBody>>,
        D: Dialect,
    {
        #[pin]
        state: CancelState<S, ReqBody, ResBody, D>,
    }
}

pin_project! {
    #[project = CancelStateProj]
    enum CancelState<S, ReqBody, ResBody, D>
    where
        S: Service<Request<ReqBody>>,
        D: Dialect,
    {
        // Waiting for the service to be ready for the cancel request; taken when it is.
        Ready { unsent: Option<Unsent<S, ReqBody, D>> },
        Following { #[pin] future: ResponseFuture<S, ReqBody, ResBody, D> },
    }
}

impl<S, ReqBody, ResBody, D> CancelFuture<S, ReqBody, ResBody, D>
where
    S: Service<Request<ReqBody>>,
    D: Dialect,
{
    pub(crate) fn new(
        service: S,
        config: Arc<Config>,
        dialect: D,
        request: Request<ReqBody>,
    ) -> Self {
        let unsent = Unsent {
            service,
            config,
            dialect,
            request,
        };
        CancelFuture {
            state: CancelState::Ready {
                unsent: Some(unsent),
            },
        }
    }
}

/// A cancel request and what sends it, until the service is ready.
struct Unsent<S, ReqBody, D> {
    service: S,
    config: Arc<Config>,
    dialect: D,
    request: Request<ReqBody>,
}

impl<S, ReqBody, ResBody, D> Future for CancelFuture<S, ReqBody, ResBody, D>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ReqBody: Default,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
    D: Dialect,
{
    type Output = Result<Response<ResponseBody<ResBody>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let future = match state.as_mut().project() {
                CancelStateProj::Ready { unsent: slot } => {
                    let Some(unsent) = slot else {
                        let after = crate::error::ErrorKind::PolledAfterCompletion;
                        return Poll::Ready(Err(Error::new(after, "")));
                    };
                    let ready = ready!(unsent.service.poll_ready(cx));
                    // The ready service itself sends the cancel request, so it is moved out.
                    let Some(Unsent {
                        service,
                        config,
                        dialect,
                        request,
                    }) = slot.take()
                    else {
                        continue;
                    };
                    if let Err(e) = ready {
                        return Poll::Ready(Err(Error::service_on("the cancel request", e)));
                    }
                    ResponseFuture::new(service, config, dialect, request)
                }
                CancelStateProj::Following { future } => return future.poll(cx),
            };
            state.set(CancelState::Following { future });
        }
    }
}

impl<S, ReqBody, ResBody, D> fmt::Debug for CancelFuture<S, ReqBody, ResBody, D>
where
    S: Service<Request<ReqBody>>,
    D: Dialect,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            CancelState::Ready { unsent } => f
                .debug_struct("CancelFuture")
                .field("state", &"Ready")
                .field("dialect", &unsent.as_ref().map(|unsent| &unsent.dialect))
                .finish(),
            CancelState::Following { future } => {
                f.debug_tuple("CancelFuture").field(future).finish()
            }
        }
    }
}
