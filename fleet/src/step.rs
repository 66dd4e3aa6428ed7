//! One step of an operation: one poll, and the final GET when that poll says it succeeded.

use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use tower::Layer;
use tower::Service;
use tower_lro::{BoxError, Error, ErrorKind, LongRunningLayer, ResponseBody, ResumeToken};

/// What one step left: the operation is still running, or it ended with this response.
pub(crate) enum Step<R> {
    Running(Pending),
    Done(R),
}

/// A still-running operation: the token to take the next step from, and when.
pub(crate) struct Pending {
    // Boxed: a step's result is moved around; the running case stays small like the done one.
    token: Box<ResumeToken>,
    poll_in: Duration,
}

impl Pending {
    pub(crate) fn into_token(self) -> ResumeToken {
        *self.token
    }

    pub(crate) fn poll_in(&self) -> Duration {
        self.poll_in
    }
}

/// Stands in for `LongRunning::step` until the core has it, with the same contract: one poll
/// (and the final GET if that poll says succeeded), then the final response, a typed error, or
/// the token to continue from.
///
/// It resumes `token` through `layer` with a poll budget of exactly one more poll than the token
/// has spent, so the layer sends one poll and then stops with `TooManyPolls`, handing back the
/// next token. Two things are lost that the real step keeps: the server's wait hint (the next
/// step is taken after [`LongRunningLayer::DEFAULT_INITIAL_DELAY`], what the layer waits
/// without a hint) and the layer's own `max_polls`, which the per-step budget replaces.
pub(crate) async fn emulated_step<S, ReqBody, ResBody>(
    layer: &LongRunningLayer,
    inner: &S,
    token: ResumeToken,
) -> Result<Step<Response<ResponseBody<ResBody>>>, Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: Default,
    ResBody: Body<Data = bytes::Bytes>,
    ResBody::Error: Into<BoxError>,
{
    let spent = token.polls();
    let service = layer
        .clone()
        .max_polls(spent.saturating_add(1))
        .layer(inner.clone());
    match service.resume(token).await {
        Ok(response) => Ok(Step::Done(response)),
        Err(error) if *error.kind() == ErrorKind::TooManyPolls => {
            // Only a token that moved on is a step taken; a token that could not poll at all has
            // exhausted the poll counter itself, and that is the error it says.
            match error.resume_token() {
                Some(next) if next.polls() > spent => Ok(Step::Running(Pending {
                    token: Box::new(next.clone()),
                    poll_in: LongRunningLayer::DEFAULT_INITIAL_DELAY,
                })),
                _ => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}
