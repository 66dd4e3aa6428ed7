//! Step-wise polling: one poll per call, so no future lives between polls and an operation can
//! be kept anywhere a [`ResumeToken`] can (a job queue, a database row).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::dialect::azure::Azure;
use crate::dialect::Dialect;
use crate::error::{BoxError, Error};
use crate::future::ResponseFuture;
use crate::info::OperationInfo;
use crate::token::ResumeToken;

/// Where a step of [`LongRunning::step`](crate::LongRunning::step) left the operation.
#[derive(Debug)]
#[non_exhaustive]
// Returned once per step and matched at once; a box would be an allocation per step.
#[allow(clippy::large_enum_variant)]
pub enum Step<R> {
    /// Still running: poll again after [`Pending::poll_in`] with [`Pending::token`].
    Running(Pending),
    /// Done: the final response. (An operation that failed or was canceled is an `Err`.)
    Done(R),
}

/// An operation still running after a step.
#[derive(Debug, Clone)]
pub struct Pending {
    pub(crate) token: ResumeToken,
    pub(crate) poll_in: Duration,
    pub(crate) operation: OperationInfo,
}

impl Pending {
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

    /// What happened so far: status, progress, polls.
    pub fn operation(&self) -> &OperationInfo {
        &self.operation
    }
}

pin_project! {
    /// The future of [`LongRunning::step`](crate::LongRunning::step).
    #[must_use = "futures do nothing unless polled"]
    pub struct StepFuture<S, ReqBody, ResBody, D = Azure>
    where
        S: Service<Request<ReqBody>>,
        D: Dialect,
    {
        #[pin]
        inner: ResponseFuture<S, ReqBody, ResBody, D>,
    }
}

impl<S, ReqBody, ResBody, D> StepFuture<S, ReqBody, ResBody, D>
where
    S: Service<Request<ReqBody>>,
    D: Dialect,
{
    pub(crate) fn new(inner: ResponseFuture<S, ReqBody, ResBody, D>) -> Self {
        StepFuture { inner }
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
        let mut response = ready!(self.project().inner.poll(cx))?;
        Poll::Ready(Ok(match response.extensions_mut().remove::<Pending>() {
            Some(pending) => Step::Running(pending),
            None => Step::Done(response),
        }))
    }
}

impl<S, ReqBody, ResBody, D> std::fmt::Debug for StepFuture<S, ReqBody, ResBody, D>
where
    S: Service<Request<ReqBody>>,
    D: Dialect,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepFuture")
            .field("inner", &self.inner)
            .finish()
    }
}
