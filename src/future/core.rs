//! The one future behind every public one: the mechanism that sends the initial request once,
//! then polls, applying its dialect's verdicts. It moves bytes and time; it decides nothing about
//! the protocol. How far it goes (to the end, or one step) is its [`Mode`], a type.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{response, HeaderMap, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::body::{poll_drain, Collector, Read, ResponseBody};
use crate::config::Config;
use crate::dialect::{Dialect, ErrorDetail, Follow};
use crate::error::{BoxError, Error, ErrorKind};
use crate::future::clock::{fired, set_sleep, Clock};
use crate::future::ledger::{Ledger, Target};
use crate::future::original::Original;
use crate::future::{NextStep, Step};
use crate::options::Polling;
use crate::progress::ProgressSender;
use crate::protocol::redact;
use crate::telemetry::{Outcome, Start, Telemetry};
use crate::token::{Cancelling, ResumeToken, Resuming};

mod operation;
mod replies;

pin_project! {
    /// Follows one operation, in mode `M`. It owns every timer and connection it uses and spawns
    /// nothing, so dropping it stops the operation's polling at once.
    pub(crate) struct Core<S, ReqBody, ResBody, D, M>
    where
        S: Service<Request<ReqBody>>,
        D: Dialect,
    {
        #[pin]
        state: State<S::Future, ResBody, D::Monitor>,
        // The time of the next poll, while waiting. Created on first use.
        #[pin]
        wait: Option<Sleep>,
        // The deadline of what is in flight (the operation's, or a poll's timeout). Moved on
        // lazily: set for an earlier phase's deadline, it fires early and is re-set then, rather
        // than being reset for every request.
        #[pin]
        due: Option<Sleep>,
        // The only I/O: the service every request of the operation goes through.
        service: S,
        follower: Follower<D>,
        _request: PhantomData<fn(ReqBody) -> M>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F, B, M> {
        // The original request (or a cancel request), in flight.
        Initial { #[pin] future: F },
        // Reading an initial body the dialect asked for. Boxed, because when the body turns out
        // too large to judge it is handed back whole, behind what was read. `unjudged`: what
        // the head said to do should the body not be judged, kept so that the head is judged
        // once.
        Sniffing {
            parts: response::Parts,
            body: Pin<Box<B>>,
            collector: Collector,
            unjudged: Unjudged<M>,
        },
        // An operation being followed: what is known of it, and what is in flight.
        Following { ledger: Ledger<M>, #[pin] stage: Stage<F, B> },
        // Refused before anything was sent (a bad resume token): the error, until it is taken.
        Rejected { error: Option<Error> },
        Done,
    }
}

pin_project! {
    #[project = StageProj]
    #[project_replace = StageReplace]
    enum Stage<F, B> {
        // Reading and discarding a response body we do not need, so the connection is reused;
        // bounded by `budget` bytes, and in time by the wait plus a short grace. Counts into the
        // wait that follows.
        Draining { #[pin] body: B, budget: usize },
        // Until `clock.wake_at` (never entered for a zero wait).
        Waiting,
        // Waiting for the inner service to be ready for the next GET.
        Ready,
        // A poll, the final GET or a cancel request, in flight.
        Requesting { #[pin] future: F },
        // Reading the body of an answer.
        Reading { #[pin] body: B, parts: response::Parts, collector: Collector, purpose: Purpose },
    }
}

/// How far a [`Core`] follows its operation, as a type: no flag is checked at run time, and no
/// mode can produce another's output.
pub(crate) trait Mode {
    /// What the future resolves with.
    type Output<B>;

    /// The operation ended (an error already carries the operation's details).
    fn finish<B>(result: Result<Response<ResponseBody<B>>, Error>) -> Self::Output<B>;

    /// The operation is about to wait for its next poll: `Some` ends the future here.
    fn wait<B>(next: impl FnOnce() -> NextStep) -> Option<Self::Output<B>>;
}

/// To the operation's end: [`ResponseFuture`](super::ResponseFuture).
#[derive(Debug)]
pub(crate) enum ToTheEnd {}

impl Mode for ToTheEnd {
    type Output<B> = Result<Response<ResponseBody<B>>, Error>;

    fn finish<B>(result: Result<Response<ResponseBody<B>>, Error>) -> Self::Output<B> {
        result
    }

    fn wait<B>(_: impl FnOnce() -> NextStep) -> Option<Self::Output<B>> {
        None
    }
}

/// One poll (and the final GET when it says done); a wait ends the step:
/// [`StepFuture`](super::StepFuture).
#[derive(Debug)]
pub(crate) enum OneStep {}

impl Mode for OneStep {
    type Output<B> = Result<Step<Response<ResponseBody<B>>>, Error>;

    fn finish<B>(result: Result<Response<ResponseBody<B>>, Error>) -> Self::Output<B> {
        result.map(Step::Done)
    }

    fn wait<B>(next: impl FnOnce() -> NextStep) -> Option<Self::Output<B>> {
        Some(Ok(Step::Running(next())))
    }
}

/// Why an answer's body is being read.
#[derive(Debug)]
enum Purpose {
    /// The dialect judges it.
    Verdict,
    /// It ends the operation with this error; the body (bounded) goes into it.
    Answer(Answer),
}

/// An answer that ended the operation by its HTTP status.
#[derive(Debug)]
struct Answer {
    kind: ErrorKind,
    detail: ErrorDetail<'static>,
}

/// What the initial response's head said to do should its body not be judged (too large, too
/// slow, broken).
enum Unjudged<M> {
    /// Return the response untouched ([`InitialHead::ReadBody`](crate::dialect::InitialHead)
    /// without `otherwise`).
    Pass,
    /// Follow this ([`InitialHead::ReadBody`](crate::dialect::InitialHead) with `otherwise`).
    Follow(Follow<'static, M>),
    /// End with an error carrying what was read
    /// ([`InitialHead::RequireBody`](crate::dialect::InitialHead)).
    Refuse,
}

/// How reading an initial body ended.
enum Sniffed {
    Complete,
    /// Stopped before the end: too large to be judged.
    TooLarge,
    /// Stopped before the end: too slow to be judged (the poll timeout).
    TooSlow(Error),
    /// The body failed.
    Broken(BoxError),
    /// The operation's deadline passed.
    Expired(Error),
}

/// The initial response's body, as far as it was read when an operation is followed.
enum OpeningBody<B> {
    Unread(B),
    Read(Bytes, Option<Box<HeaderMap>>),
    Partial(Bytes, Pin<Box<B>>),
}

/// What the initial response leads to.
// A transition, returned once per operation and consumed at once: boxing the ledger would cost
// an allocation for nothing.
#[allow(clippy::large_enum_variant)]
enum Begin<B, M> {
    Finish(Result<Response<ResponseBody<B>>, Error>),
    Sniff {
        parts: response::Parts,
        body: Pin<Box<B>>,
        unjudged: Unjudged<M>,
    },
    Follow {
        ledger: Ledger<M>,
        drain: Option<B>,
    },
}

/// The transition a stage asks for while an operation is followed.
enum Next<B> {
    /// The end. Errors have not been given the operation's details yet.
    Finish(Result<Response<ResponseBody<B>>, Error>),
    Wait {
        drain: Option<B>,
    },
    Send,
    Read {
        parts: response::Parts,
        body: B,
        purpose: Purpose,
    },
}

/// Everything about the operation that outlives a state, but the service: what the mechanism
/// knows and decides. Its methods read responses and bodies handed to them and return
/// transitions; they send nothing.
struct Follower<D> {
    dialect: D,
    config: Arc<Config>,
    original: Original,
    clock: Clock,
    polling: Polling,
    progress: Option<ProgressSender>,
    telemetry: Telemetry,
}

impl<S, ReqBody, ResBody, D> Core<S, ReqBody, ResBody, D, ToTheEnd>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    D: Dialect,
{
    /// Sends `req` through `service`, which the caller has driven to readiness, unless `req` was
    /// made by [`ResumeToken::into_request`] or [`ResumeToken::into_cancel_request`]: then it
    /// resumes (or cancels) that operation instead.
    pub(crate) fn start(
        mut service: S,
        config: Arc<Config>,
        dialect: D,
        mut req: Request<ReqBody>,
    ) -> Self {
        // Our own extensions steer this layer only; layers below never see them.
        let extensions = req.extensions_mut();
        let polling = extensions.remove::<Polling>().unwrap_or_default();
        let progress = extensions.remove::<ProgressSender>();
        if let Some(Cancelling(token)) = extensions.remove::<Cancelling>() {
            let mut follower = Follower::new(config, dialect, &mut req, Polling::Enabled);
            follower.progress = progress;
            return Self::cancelling(service, follower, token, req);
        }
        if let Some(Resuming(token)) = extensions.remove::<Resuming>() {
            let mut follower = Follower::new(config, dialect, &mut req, Polling::Enabled);
            follower.progress = progress;
            return Self::resumed(service, follower, &token, Start::Resumed);
        }
        let telemetry = if polling == Polling::Disabled {
            Telemetry::none()
        } else {
            // A method is an enum or a short shared string: cloning it costs nothing.
            let method = req.method().clone();
            dialect.prepare(&method, req.headers_mut());
            Telemetry::start(dialect.name(), Start::Original, &method, req.uri())
        };
        let original = Original::of(&mut req, polling);
        let future = {
            // Spans of the layers below nest under the operation's.
            #[cfg(feature = "tracing")]
            let _entered = telemetry.enter();
            service.call(req)
        };
        let mut follower = Follower::with(config, dialect, original, polling);
        follower.progress = progress;
        follower.telemetry = telemetry;
        Self::with_state(service, follower, State::Initial { future })
    }
}

impl<S, ReqBody, ResBody, D> Core<S, ReqBody, ResBody, D, OneStep>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    D: Dialect,
{
    /// One step of the operation of `token`: one poll, and the final GET if it says done.
    pub(crate) fn step(service: S, config: Arc<Config>, dialect: D, token: &ResumeToken) -> Self
    where
        ReqBody: Default,
    {
        let mut req = Request::new(ReqBody::default());
        let follower = Follower::new(config, dialect, &mut req, Polling::Enabled);
        Self::resumed(service, follower, token, Start::Step)
    }
}

impl<S, ReqBody, ResBody, D, M> Core<S, ReqBody, ResBody, D, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    D: Dialect,
{
    fn with_state(
        service: S,
        follower: Follower<D>,
        state: State<S::Future, ResBody, D::Monitor>,
    ) -> Self {
        Core {
            state,
            wait: None,
            due: None,
            service,
            follower,
            _request: PhantomData,
        }
    }

    /// Continues the operation a token describes, polling at once.
    fn resumed(service: S, mut follower: Follower<D>, token: &ResumeToken, start: Start) -> Self {
        let state = match follower.adopt(token, start) {
            Ok(ledger) => State::Following {
                ledger,
                stage: Stage::Ready,
            },
            Err(error) => State::Rejected { error: Some(error) },
        };
        Self::with_state(service, follower, state)
    }

    /// Sends the cancel request `req` (through `service`, which the caller drove to readiness)
    /// for the operation of `token`, then follows the operation.
    fn cancelling(
        mut service: S,
        mut follower: Follower<D>,
        token: ResumeToken,
        mut req: Request<ReqBody>,
    ) -> Self {
        let state = match follower.cancel(&token, &mut req) {
            Ok(ledger) => {
                let future = {
                    #[cfg(feature = "tracing")]
                    let _entered = follower.telemetry.enter();
                    service.call(req)
                };
                follower.clock.start_request();
                State::Following {
                    ledger,
                    stage: Stage::Requesting { future },
                }
            }
            Err(error) => State::Rejected { error: Some(error) },
        };
        Self::with_state(service, follower, state)
    }
}

impl<S, ReqBody, ResBody, D, M> Future for Core<S, ReqBody, ResBody, D, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ReqBody: Default,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
    D: Dialect,
    M: Mode,
{
    type Output = M::Output<ResBody>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let (service, follower) = (this.service, this.follower);
        #[cfg(feature = "tracing")]
        let _entered = follower.telemetry.entered();
        loop {
            let begin = match this.state.as_mut().project() {
                StateProj::Initial { future } => match future.poll(cx) {
                    Poll::Ready(Ok(response)) => follower.on_initial(response),
                    Poll::Ready(Err(e)) => {
                        Begin::Finish(Err(Error::service_on("the initial request", e)))
                    }
                    Poll::Pending => match follower.clock.on_due(this.due.as_mut(), cx) {
                        Some(expired) => Begin::Finish(Err(expired)),
                        None => return Poll::Pending,
                    },
                },
                StateProj::Sniffing {
                    body, collector, ..
                } => {
                    let sniffed =
                        ready!(follower.poll_sniff(body, collector, this.due.as_mut(), cx));
                    match this.state.as_mut().project_replace(State::Done) {
                        StateReplace::Sniffing {
                            parts,
                            body,
                            collector,
                            unjudged,
                        } => follower.on_sniffed(parts, body, collector, unjudged, sniffed),
                        // `project_replace` inside a state's own arm always returns that state.
                        _ => unreachable!("the sniffing state was replaced by another"),
                    }
                }
                StateProj::Following { ledger, stage } => {
                    let (wait, due) = (this.wait.as_mut(), this.due.as_mut());
                    let output = ready!(follower
                        .poll_following::<M, _, _, _, _, _>(service, ledger, stage, wait, due, cx));
                    this.state.set(State::Done);
                    return Poll::Ready(output);
                }
                StateProj::Rejected { error } => {
                    let error = error.take().unwrap_or_else(Follower::<D>::after_completion);
                    follower.unfollowed_end(&Err::<(), _>(&error));
                    this.state.set(State::Done);
                    return Poll::Ready(M::finish(Err(error)));
                }
                StateProj::Done => {
                    return Poll::Ready(M::finish(Err(Follower::<D>::after_completion())))
                }
            };
            match begin {
                Begin::Finish(result) => {
                    follower.unfollowed_end(&result.as_ref().map(|_| ()));
                    this.state.set(State::Done);
                    return Poll::Ready(M::finish(result));
                }
                Begin::Sniff {
                    parts,
                    body,
                    unjudged,
                } => {
                    this.state.set(State::Sniffing {
                        parts,
                        body,
                        collector: Collector::default(),
                        unjudged,
                    });
                    // Reading the initial body is a round trip of its own: bounded like a poll.
                    follower.clock.start_request();
                }
                Begin::Follow { ledger, drain } => {
                    this.state.set(State::Following {
                        ledger,
                        stage: Stage::Waiting,
                    });
                    if let StateProj::Following { stage, .. } = this.state.as_mut().project() {
                        follower.enter_wait(stage, this.wait.as_mut(), drain);
                    }
                }
            }
        }
    }
}

impl<D: Dialect> Follower<D> {
    /// Drives the operation's requests through `service` until it ends, or its mode ends it at a
    /// wait.
    fn poll_following<M: Mode, S, F, B, E, R>(
        &mut self,
        service: &mut S,
        ledger: &mut Ledger<D::Monitor>,
        mut stage: Pin<&mut Stage<F, B>>,
        mut wait: Pin<&mut Option<Sleep>>,
        mut due: Pin<&mut Option<Sleep>>,
        cx: &mut Context<'_>,
    ) -> Poll<M::Output<B>>
    where
        S: Service<Request<R>, Response = Response<B>, Future = F, Error = E>,
        F: Future<Output = Result<Response<B>, E>>,
        E: Into<BoxError>,
        R: Default,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        loop {
            let next = match stage.as_mut().project() {
                StageProj::Draining { body, budget } => {
                    ready!(self.poll_draining(body, budget, due.as_mut(), cx))
                }
                StageProj::Waiting => {
                    if !fired(wait.as_mut(), cx) {
                        return Poll::Pending;
                    }
                    Next::Send
                }
                StageProj::Ready => match ready!(self.poll_send(service, ledger, due.as_mut(), cx))
                {
                    Ok(future) => {
                        stage.set(Stage::Requesting { future });
                        self.clock.start_request();
                        continue;
                    }
                    Err(next) => next,
                },
                StageProj::Requesting { future } => {
                    // What the layers below do while the request is in flight belongs to it.
                    #[cfg(feature = "tracing")]
                    let entered = self.telemetry.entered();
                    let polled = future.poll(cx);
                    #[cfg(feature = "tracing")]
                    drop(entered);
                    match polled {
                        Poll::Ready(Ok(response)) => self.on_reply(ledger, response),
                        Poll::Ready(Err(e)) => {
                            let failure = Error::service_on(self.request_name(ledger), e);
                            self.on_request_error(ledger, failure)
                        }
                        Poll::Pending => match self.clock.on_due(due.as_mut(), cx) {
                            Some(expired) => self.on_failed_request(ledger, expired),
                            None => return Poll::Pending,
                        },
                    }
                }
                StageProj::Reading {
                    body, collector, ..
                } => {
                    let read = ready!(self.poll_reading(body, collector, due.as_mut(), cx));
                    match stage.as_mut().project_replace(Stage::Ready) {
                        StageReplace::Reading {
                            parts,
                            collector,
                            purpose,
                            ..
                        } => self.on_read(ledger, parts, collector, purpose, read),
                        // `project_replace` inside a stage's own arm always returns that stage.
                        _ => unreachable!("the reading stage was replaced by another"),
                    }
                }
            };
            if let Some(output) = self.apply::<M, _, _>(ledger, stage.as_mut(), wait.as_mut(), next)
            {
                return Poll::Ready(output);
            }
        }
    }

    /// Applies a stage's transition; `Some` when following ends.
    fn apply<M: Mode, F, B: Body>(
        &mut self,
        ledger: &Ledger<D::Monitor>,
        mut stage: Pin<&mut Stage<F, B>>,
        wait: Pin<&mut Option<Sleep>>,
        next: Next<B>,
    ) -> Option<M::Output<B>> {
        match next {
            Next::Finish(result) => return Some(M::finish(self.exit(ledger, result))),
            Next::Wait { drain } => {
                if let Some(output) = M::wait(|| self.next_step(ledger)) {
                    let observed = &ledger.observed;
                    let elapsed = self.clock.elapsed();
                    self.telemetry
                        .ended(Outcome::Running, None, ledger.polls, observed, elapsed);
                    return Some(output);
                }
                self.enter_wait(stage, wait, drain);
            }
            Next::Send => {
                stage.set(Stage::Ready);
                self.clock.start_waiting();
            }
            Next::Read {
                parts,
                body,
                purpose,
            } => stage.set(Stage::Reading {
                body,
                parts,
                collector: Collector::default(),
                purpose,
            }),
        }
        None
    }

    /// Drains an unneeded body until it ends or its time is up.
    fn poll_draining<B: Body<Data = Bytes>>(
        &mut self,
        body: Pin<&mut B>,
        budget: &mut usize,
        due: Pin<&mut Option<Sleep>>,
        cx: &mut Context<'_>,
    ) -> Poll<Next<B>> {
        let drained = poll_drain(body, budget, cx).is_ready();
        if !drained && !self.clock.due_passed(due, cx) {
            return Poll::Pending;
        }
        Poll::Ready(if !drained && self.clock.past_deadline() {
            let expired = Error::new(ErrorKind::TimedOut, "the operation's deadline passed");
            Next::Finish(Err(expired))
        } else {
            // Drained, or too slow to be worth it: then the connection is dropped.
            Next::Wait { drain: None }
        })
    }

    /// Drives the service to readiness and sends the next GET.
    fn poll_send<S, R: Default, B, F>(
        &mut self,
        service: &mut S,
        ledger: &mut Ledger<D::Monitor>,
        due: Pin<&mut Option<Sleep>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<F, Next<B>>>
    where
        S: Service<Request<R>, Future = F>,
        S::Error: Into<BoxError>,
    {
        Poll::Ready(match service.poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                let request = self.next_request(ledger);
                // Spans of the layers below nest under the request's.
                #[cfg(feature = "tracing")]
                let _entered = self.telemetry.enter();
                Ok(service.call(request))
            }
            Poll::Ready(Err(e)) => {
                let failure = Error::service_on(self.request_name(ledger), e);
                Err(Next::Finish(Err(failure)))
            }
            Poll::Pending => match self.clock.on_due(due, cx) {
                Some(expired) => Err(Next::Finish(Err(expired))),
                None => return Poll::Pending,
            },
        })
    }

    /// Reads an answer's body, bounded in size and time.
    fn poll_reading<B: Body<Data = Bytes>>(
        &mut self,
        body: Pin<&mut B>,
        collector: &mut Collector,
        due: Pin<&mut Option<Sleep>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Read, Error>>
    where
        B::Error: Into<BoxError>,
    {
        Poll::Ready(
            match collector.poll_read(body, self.config.max_status_body, cx) {
                Poll::Ready(Ok(read)) => Ok(read),
                Poll::Ready(Err(e)) => {
                    let why = "the connection failed while reading an answer";
                    Err(Error::new(ErrorKind::Body, why).with_source(e.into()))
                }
                Poll::Pending => match self.clock.on_due(due, cx) {
                    Some(expired) => Err(expired),
                    None => return Poll::Pending,
                },
            },
        )
    }

    /// The inner service failed a request: a cancel request is never repeated; a GET is, as a
    /// transient failure.
    fn on_request_error<B>(&mut self, ledger: &mut Ledger<D::Monitor>, error: Error) -> Next<B> {
        if matches!(ledger.target, Target::Cancel) {
            return Next::Finish(Err(error));
        }
        self.on_transient(ledger, None, |_| error, None)
    }

    /// Waits for the next request, draining `drain` meanwhile.
    fn enter_wait<F, B: Body>(
        &mut self,
        mut stage: Pin<&mut Stage<F, B>>,
        wait: Pin<&mut Option<Sleep>>,
        drain: Option<B>,
    ) {
        match (drain, self.clock.wake_at) {
            (Some(body), _) if !body.is_end_stream() => {
                let budget = self.config.max_status_body;
                stage.set(Stage::Draining { body, budget });
                self.clock.start_draining();
            }
            (_, Some(at)) => {
                stage.set(Stage::Waiting);
                set_sleep(wait, at);
            }
            // A zero wait (`Retry-After: 0`) needs no timer.
            (_, None) => {
                stage.as_mut().set(Stage::Ready);
                self.clock.start_waiting();
            }
        }
    }

    /// The end of a step: the operation is still running; its token and when to ask next.
    fn next_step(&self, ledger: &Ledger<D::Monitor>) -> NextStep {
        let poll_in = self.clock.wake_at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        });
        let elapsed = self.clock.elapsed();
        let token = ledger
            .token(&self.dialect, &self.original, &self.config, elapsed)
            .after(poll_in)
            .with_next_poll(poll_in, ledger.hinted);
        NextStep {
            token,
            poll_in,
            operation: ledger.info(elapsed),
        }
    }

    fn next_request<R: Default>(&mut self, ledger: &mut Ledger<D::Monitor>) -> Request<R> {
        let uri = match &ledger.target {
            Target::Final(uri) => {
                self.telemetry.request_sent(ledger.polls, true);
                uri.clone()
            }
            // A cancel is sent once, when the operation is taken over; after it, polls.
            Target::Poll | Target::Cancel => {
                ledger.target = Target::Poll;
                ledger.polls = ledger.polls.saturating_add(1);
                self.telemetry.request_sent(ledger.polls, false);
                ledger.url.clone()
            }
        };
        self.original.get(uri)
    }
}

impl<S, ReqBody, ResBody, D, M> fmt::Debug for Core<S, ReqBody, ResBody, D, M>
where
    S: Service<Request<ReqBody>>,
    D: Dialect,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (state, ledger) = match &self.state {
            State::Initial { .. } => ("Initial", None),
            State::Sniffing { .. } => ("Sniffing", None),
            State::Following { ledger, stage } => (
                match stage {
                    Stage::Draining { .. } => "Draining",
                    Stage::Waiting => "Waiting",
                    Stage::Ready => "Ready",
                    Stage::Requesting { .. } => "Requesting",
                    Stage::Reading { .. } => "Reading",
                },
                Some(ledger),
            ),
            State::Rejected { .. } => ("Rejected", None),
            State::Done => ("Done", None),
        };
        f.debug_struct("Core")
            .field("state", &state)
            .field("dialect", &self.follower.dialect)
            .field("method", &self.follower.original.method)
            .field("uri", &redact::url(&self.follower.original.uri.to_string()))
            .field(
                "monitor",
                &ledger.map(|l| (l.kind, redact::url(&l.url.to_string()).into_owned())),
            )
            .field("polls", &ledger.map(|l| l.polls))
            .finish()
    }
}
