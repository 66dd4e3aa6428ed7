//! The response future: the mechanism that sends the initial request once, then polls, applying
//! its dialect's verdicts. It moves bytes and time; it decides nothing about the protocol.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{response, HeaderMap, Request, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::azure::Azure;
use crate::body::{poll_drain, Collector, Read, ResponseBody};
use crate::clock::{fired, set_sleep, Clock};
use crate::dialect::{
    CancelReply, Dialect, FinalReply, Follow, Observer, Opening, Outcome, PollAt, Reply, Start,
    Verdict,
};
use crate::error::{BoxError, Error, ErrorKind};
use crate::layer::Config;
use crate::ledger::{Ledger, Target};
use crate::options::Polling;
use crate::original::Original;
use crate::progress::{Progress, ProgressSender};
use crate::protocol::headers;
use crate::resume::{Cancelling, ResumeToken};
use crate::step::Pending;

pin_project! {
    /// The future of [`LongRunning`](crate::LongRunning): resolves with the operation's final
    /// response, or the [`Error`] that ended it. Dropping it stops the operation's polling at once:
    /// it owns every timer and connection it uses and spawns nothing.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, ReqBody, ResBody, D = Azure>
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
        op: Operation<S, D>,
        _request: PhantomData<fn(ReqBody)>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F, B, M> {
        // The original request (or a cancel request), in flight.
        Initial { #[pin] future: F },
        // Reading an initial body the dialect asked for. Boxed, because when the body turns out
        // too large to judge it is handed back whole, behind what was read.
        Sniffing { parts: response::Parts, body: Pin<Box<B>>, collector: Collector },
        // An operation being followed: what is known of it, and what is in flight.
        Following { ledger: Ledger<M>, #[pin] stage: Stage<F, B> },
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

/// How the future works through an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// To its end.
    Follow,
    /// One poll (and the final GET if it says done); a wait ends the step.
    Step,
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
    outcome: Outcome<'static>,
}

/// How reading an initial body ended.
enum Sniffed {
    Complete,
    /// Stopped before the end: too large, or too slow, to be judged.
    Stopped,
    /// The body failed.
    Broken(BoxError),
    /// The operation's deadline passed.
    Expired(Error),
}

/// The initial response's body, as far as it was read when an operation is followed.
enum InitialBody<B> {
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

/// How following an operation ended.
enum Exit<B> {
    Finished(Result<Response<ResponseBody<B>>, Error>),
    /// A step ended with the operation still running.
    Stepped(Response<ResponseBody<B>>),
}

/// Everything about the operation that outlives a state.
struct Operation<S, D> {
    service: S,
    dialect: D,
    config: Arc<Config>,
    original: Original,
    clock: Clock,
    polling: Polling,
    mode: Mode,
    progress: Option<ProgressSender>,
    // An error found before anything was sent (a bad resume token), returned on first poll.
    rejected: Option<Error>,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
}

impl<S, ReqBody, ResBody, D> ResponseFuture<S, ReqBody, ResBody, D>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    D: Dialect,
{
    /// Sends `req` through `service`, which the caller has driven to readiness, unless `req`
    /// carries a [`ResumeToken`]: then it resumes (or cancels) that operation instead.
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
        let cancelling = extensions.remove::<Cancelling>().is_some();
        if let Some(token) = extensions.remove::<ResumeToken>() {
            let mut op = Operation::new(service, config, dialect, &mut req, Polling::Enabled);
            op.progress = progress;
            return if cancelling {
                op.cancel(token, req)
            } else {
                op.resume(&token, Mode::Follow)
            };
        }
        let original = Original::of(&mut req, polling);
        let future = service.call(req);
        let mut op = Operation::with(service, config, dialect, original, polling);
        op.progress = progress;
        Self::with_state(op, State::Initial { future })
    }

    /// One step of the operation of `token`: one poll, and the final GET if it says done.
    pub(crate) fn step(service: S, config: Arc<Config>, dialect: D, token: &ResumeToken) -> Self
    where
        ReqBody: Default,
    {
        let mut req = Request::new(ReqBody::default());
        let op = Operation::new(service, config, dialect, &mut req, Polling::Enabled);
        op.resume(token, Mode::Step)
    }

    fn with_state(op: Operation<S, D>, state: State<S::Future, ResBody, D::Monitor>) -> Self {
        ResponseFuture {
            state,
            wait: None,
            due: None,
            op,
            _request: PhantomData,
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
        let mut this = self.project();
        let op = this.op;
        #[cfg(feature = "tracing")]
        let _entered = op.span.clone().entered();
        loop {
            let begin = match this.state.as_mut().project() {
                StateProj::Initial { future } => match future.poll(cx) {
                    Poll::Ready(Ok(response)) => op.on_initial(response),
                    Poll::Ready(Err(e)) => Begin::Finish(Err(Error::service(e))),
                    Poll::Pending => match op.clock.on_due(this.due.as_mut(), cx) {
                        Some(expired) => Begin::Finish(Err(expired)),
                        None => return Poll::Pending,
                    },
                },
                StateProj::Sniffing {
                    body, collector, ..
                } => {
                    let sniffed = match op.poll_sniff(body, collector, this.due.as_mut(), cx) {
                        Poll::Ready(sniffed) => sniffed,
                        Poll::Pending => return Poll::Pending,
                    };
                    match this.state.as_mut().project_replace(State::Done) {
                        StateReplace::Sniffing {
                            parts,
                            body,
                            collector,
                        } => op.on_sniffed(parts, body, collector, sniffed),
                        // `project_replace` inside a state's own arm always returns that state.
                        _ => unreachable!("the sniffing state was replaced by another"),
                    }
                }
                StateProj::Following { ledger, stage } => {
                    let exit = match op.poll_following(
                        ledger,
                        stage,
                        this.wait.as_mut(),
                        this.due.as_mut(),
                        cx,
                    ) {
                        Poll::Ready(exit) => exit,
                        Poll::Pending => return Poll::Pending,
                    };
                    let result = match exit {
                        Exit::Finished(result) => {
                            let result = result.map_err(|e| op.fail(ledger, e));
                            op.conclude(ledger, &result);
                            result
                        }
                        Exit::Stepped(response) => Ok(response),
                    };
                    this.state.set(State::Done);
                    return Poll::Ready(result);
                }
                StateProj::Done => {
                    let error = op.rejected.take();
                    return Poll::Ready(Err(
                        error.unwrap_or_else(|| Error::new(ErrorKind::PolledAfterCompletion, ""))
                    ));
                }
            };
            match begin {
                Begin::Finish(result) => {
                    this.state.set(State::Done);
                    return Poll::Ready(result);
                }
                Begin::Sniff { parts, body } => {
                    this.state.set(State::Sniffing {
                        parts,
                        body,
                        collector: Collector::default(),
                    });
                    // Reading the initial body is a round trip of its own: bounded like a poll.
                    op.clock.start_request();
                }
                Begin::Follow { ledger, drain } => {
                    this.state.set(State::Following {
                        ledger,
                        stage: Stage::Waiting,
                    });
                    if let StateProj::Following { stage, .. } = this.state.as_mut().project() {
                        op.enter_wait(stage, this.wait.as_mut(), drain);
                    }
                }
            }
        }
    }
}

impl<S, D: Dialect> Operation<S, D> {
    fn new<B>(
        service: S,
        config: Arc<Config>,
        dialect: D,
        req: &mut Request<B>,
        polling: Polling,
    ) -> Self {
        let original = Original::of(req, polling);
        Operation::with(service, config, dialect, original, polling)
    }

    fn with(
        service: S,
        config: Arc<Config>,
        dialect: D,
        original: Original,
        polling: Polling,
    ) -> Self {
        Operation {
            clock: Clock::new(config.timeout, config.poll_timeout),
            service,
            dialect,
            config,
            original,
            polling,
            mode: Mode::Follow,
            progress: None,
            rejected: None,
            #[cfg(feature = "tracing")]
            span: tracing::Span::none(),
        }
    }

    fn rejected<R, B>(mut self, error: Error) -> ResponseFuture<S, R, B, D>
    where
        S: Service<Request<R>, Response = Response<B>>,
    {
        self.rejected = Some(error);
        ResponseFuture::with_state(self, State::Done)
    }

    /// Continues the operation a token describes, polling at once.
    fn resume<R, B>(mut self, token: &ResumeToken, mode: Mode) -> ResponseFuture<S, R, B, D>
    where
        S: Service<Request<R>, Response = Response<B>>,
    {
        self.mode = mode;
        match self.adopt(token) {
            Ok(ledger) => ResponseFuture::with_state(
                self,
                State::Following {
                    ledger,
                    stage: Stage::Ready,
                },
            ),
            Err(error) => self.rejected(error),
        }
    }

    /// Sends the cancel request `req` (through the service the caller drove to readiness) for
    /// the operation of `token`, then follows the operation.
    fn cancel<R, B>(mut self, token: ResumeToken, mut req: Request<R>) -> ResponseFuture<S, R, B, D>
    where
        S: Service<Request<R>, Response = Response<B>>,
    {
        let mut ledger = match self.adopt(&token) {
            Ok(ledger) => ledger,
            Err(error) => return self.rejected(error),
        };
        let Some(spec) = token.cancel_spec() else {
            let why = "the operation's dialect has no cancel request, and none was attached";
            let error = self.fail(&ledger, Error::new(ErrorKind::CancelUnsupported, why));
            return self.rejected(error);
        };
        let uri =
            match self
                .original
                .admit_reference(spec.url.as_bytes(), None, &self.config.origins)
            {
                Ok(uri) => uri,
                Err(error) => {
                    let error = self.fail(&ledger, error);
                    return self.rejected(error);
                }
            };
        *req.uri_mut() = uri;
        self.original.dress(&mut req);
        ledger.target = Target::Cancel;
        let future = self.service.call(req);
        self.clock.start_request();
        ResponseFuture::with_state(
            self,
            State::Following {
                ledger,
                stage: Stage::Requesting { future },
            },
        )
    }

    /// Takes over the operation a token describes. Its URLs pass this layer's origin policy,
    /// judged against the token's own original URI; its polls and time count against this
    /// layer's bounds, which are checked before anything is sent.
    fn adopt(&mut self, token: &ResumeToken) -> Result<Ledger<D::Monitor>, Error> {
        let resumption = token.resumption(&self.dialect)?;
        self.original
            .adopt(resumption.method, resumption.uri, resumption.headers);
        self.clock.rewind(resumption.elapsed);
        let untrusted = |e: Error| {
            Error::new(ErrorKind::InvalidResumeToken, e.to_string()).with_source(Box::new(e))
        };
        let policy = &self.config.origins;
        let url = self
            .original
            .admit_reference(resumption.monitor_url.to_string().as_bytes(), None, policy)
            .map_err(untrusted)?;
        let kind = self.dialect.kind(&resumption.monitor);
        let mut ledger = Ledger::new(resumption.monitor, kind, url, None);
        if let Some(final_uri) = resumption.final_uri {
            let final_uri = self
                .original
                .admit_reference(final_uri.to_string().as_bytes(), None, policy)
                .map_err(untrusted)?;
            ledger.target = Target::Final(final_uri);
        }
        ledger.polls = resumption.polls;
        ledger.retries = resumption.retries;
        ledger.unhinted_waits = resumption.unhinted_waits;
        ledger.observed.status = resumption.status;
        self.trace(&ledger);
        if matches!(ledger.target, Target::Poll) {
            self.poll_budget(&ledger)
                .map_err(|e| self.fail(&ledger, e))?;
        }
        if self.clock.past_deadline() {
            let why = "the operation's deadline passed before it was resumed";
            return Err(self.fail(&ledger, Error::new(ErrorKind::TimedOut, why)));
        }
        Ok(ledger)
    }

    fn trace(&mut self, _ledger: &Ledger<D::Monitor>) {
        #[cfg(feature = "tracing")]
        {
            self.span = tracing::debug_span!(
                "long_running_operation",
                method = %self.original.method,
                uri = %self.original.uri,
                monitor = _ledger.kind.as_str(),
                monitor_url = %_ledger.url,
            );
        }
    }

    /// Attaches what happened so far to an error that ends the operation and, unless the
    /// operation is known to have ended, a token to continue it.
    fn fail(&self, ledger: &Ledger<D::Monitor>, error: Error) -> Error {
        let error = error.with_operation(ledger.info(self.clock.elapsed()));
        if error.is_operation_error() {
            return error;
        }
        let token = ledger.token(&self.dialect, &self.original, self.clock.elapsed());
        error.with_resume_token(token)
    }

    /// Tells the observers where the operation stands.
    fn observe(&self, ledger: &Ledger<D::Monitor>, next_poll_in: Option<Duration>, finished: bool) {
        let sender = self.progress.as_ref().filter(|p| p.is_observed());
        if sender.is_none() && self.config.on_poll.is_none() {
            return;
        }
        let elapsed = self.clock.elapsed();
        let progress = Progress {
            operation: ledger.info(elapsed),
            next_poll_in,
            finished,
            resume_token: ledger.token(&self.dialect, &self.original, elapsed),
        };
        if let Some(hook) = &self.config.on_poll {
            (hook.0)(&progress);
        }
        if let Some(sender) = sender {
            sender.send(progress);
        }
    }

    /// The future is about to complete with `result`.
    fn conclude<B>(&self, ledger: &Ledger<D::Monitor>, result: &Result<Response<B>, Error>) {
        #[cfg(feature = "tracing")]
        match result {
            Ok(response) => {
                tracing::debug!(parent: &self.span, polls = ledger.polls, status = %response.status(), "operation finished")
            }
            Err(error) => {
                tracing::debug!(parent: &self.span, polls = ledger.polls, %error, "operation ended with an error")
            }
        }
        #[cfg(not(feature = "tracing"))]
        let _ = result;
        self.observe(ledger, None, true);
    }

    /// Starts following the operation `follow` names.
    fn track(&mut self, follow: Follow<'_, D::Monitor>) -> Result<Ledger<D::Monitor>, Error> {
        let url = self
            .original
            .admit(&follow.poll_at, None, &self.config.origins)?;
        let reference = match follow.poll_at {
            PollAt::Reference(reference) | PollAt::FromOriginal(reference) => {
                Some(reference.into_owned())
            }
            PollAt::OriginalUri => None,
        };
        let kind = self.dialect.kind(&follow.monitor);
        let ledger = Ledger::new(follow.monitor, kind, url, reference);
        self.trace(&ledger);
        Ok(ledger)
    }

    /// An operation is known: hand it back for [`Polling::AcceptOnly`], else schedule the first
    /// poll by the initial response's hint (PROTOCOL §2).
    fn begin<B>(
        &mut self,
        mut ledger: Ledger<D::Monitor>,
        parts: response::Parts,
        body: InitialBody<B>,
    ) -> Begin<B, D::Monitor> {
        if self.polling == Polling::AcceptOnly {
            let body = match body {
                InitialBody::Unread(body) => ResponseBody::streaming(body),
                InitialBody::Read(bytes, trailers) => ResponseBody::buffered(bytes, trailers),
                InitialBody::Partial(prefix, body) => ResponseBody::resumed(prefix, body),
            };
            let mut response = Response::from_parts(parts, body);
            let elapsed = self.clock.elapsed();
            let token = ledger.token(&self.dialect, &self.original, elapsed);
            response.extensions_mut().insert(token);
            response.extensions_mut().insert(ledger.info(elapsed));
            return Begin::Finish(Ok(response));
        }
        let hint = self.dialect.wait_hint(&parts.headers);
        match self.schedule_poll(&mut ledger, hint) {
            Ok(()) => Begin::Follow {
                ledger,
                drain: match body {
                    InitialBody::Unread(body) => Some(body),
                    InitialBody::Read(..) | InitialBody::Partial(..) => None,
                },
            },
            Err(e) => Begin::Finish(Err(self.fail(&ledger, e))),
        }
    }

    fn on_initial<B: Body<Data = Bytes>>(&mut self, response: Response<B>) -> Begin<B, D::Monitor> {
        if self.polling == Polling::Disabled {
            return Begin::Finish(Ok(response.map(ResponseBody::streaming)));
        }
        let (parts, body) = response.into_parts();
        let pass = |parts, body| {
            Begin::Finish(Ok(Response::from_parts(
                parts,
                ResponseBody::streaming(body),
            )))
        };
        let follow = match self.dialect.start(&self.original.head(), &parts) {
            Start::NotLongRunning => return pass(parts, body),
            Start::Follow(follow) => follow,
            Start::ReadBody { .. }
                if !too_large(&parts.headers, &body, self.config.max_status_body) =>
            {
                return Begin::Sniff {
                    parts,
                    body: Box::pin(body),
                }
            }
            Start::ReadBody {
                otherwise: Some(follow),
            } => follow,
            Start::ReadBody { otherwise: None } => return pass(parts, body),
        };
        match self.track(follow) {
            Ok(ledger) => self.begin(ledger, parts, InitialBody::Unread(body)),
            Err(e) => Begin::Finish(Err(e)),
        }
    }

    fn poll_sniff<B: Body<Data = Bytes>>(
        &mut self,
        body: &mut Pin<Box<B>>,
        collector: &mut Collector,
        due: Pin<&mut Option<Sleep>>,
        cx: &mut Context<'_>,
    ) -> Poll<Sniffed>
    where
        B::Error: Into<BoxError>,
    {
        Poll::Ready(
            match collector.poll_read(body.as_mut(), self.config.max_status_body, cx) {
                Poll::Ready(Ok(Read::Complete)) => Sniffed::Complete,
                Poll::Ready(Ok(Read::TooLarge)) => Sniffed::Stopped,
                Poll::Ready(Err(e)) => Sniffed::Broken(e.into()),
                Poll::Pending => match self.clock.on_due(due, cx) {
                    // Too slow to be judged: handled like a body too large to be.
                    Some(_) if !self.clock.past_deadline() => Sniffed::Stopped,
                    Some(expired) => Sniffed::Expired(expired),
                    None => return Poll::Pending,
                },
            },
        )
    }

    fn on_sniffed<B>(
        &mut self,
        parts: response::Parts,
        body: Pin<Box<B>>,
        collector: Collector,
        sniffed: Sniffed,
    ) -> Begin<B, D::Monitor> {
        let (bytes, trailers) = collector.finish();
        let otherwise = match sniffed {
            Sniffed::Complete => return self.on_initial_body(parts, bytes, trailers),
            Sniffed::Expired(expired) => return Begin::Finish(Err(expired)),
            Sniffed::Stopped | Sniffed::Broken(_) => {
                match self.dialect.start(&self.original.head(), &parts) {
                    Start::ReadBody { otherwise } => otherwise,
                    Start::Follow(follow) => Some(follow),
                    Start::NotLongRunning => None,
                }
            }
        };
        let follow = match (otherwise, sniffed) {
            (Some(follow), Sniffed::Broken(_)) if self.polling != Polling::AcceptOnly => follow,
            (_, Sniffed::Broken(e)) => {
                let why = "the connection failed while reading the initial response";
                return Begin::Finish(Err(Error::new(ErrorKind::Body, why).with_source(e)));
            }
            (Some(follow), _) => follow,
            // Too large or too slow to be judged, and nothing to follow: handed back whole.
            (None, _) => {
                let body = ResponseBody::resumed(bytes, body);
                return Begin::Finish(Ok(Response::from_parts(parts, body)));
            }
        };
        let ledger = match self.track(follow) {
            Ok(ledger) => ledger,
            Err(e) => return Begin::Finish(Err(e)),
        };
        self.begin(ledger, parts, InitialBody::Partial(bytes, body))
    }

    /// The initial body, read whole: the dialect judges it.
    fn on_initial_body<B>(
        &mut self,
        parts: response::Parts,
        bytes: Bytes,
        trailers: Option<Box<HeaderMap>>,
    ) -> Begin<B, D::Monitor> {
        let mut observed = Default::default();
        let opening = self.dialect.start_with_body(
            &self.original.head(),
            &parts,
            &bytes,
            &mut Observer {
                ledger: &mut observed,
            },
        );
        let ended =
            |kind, outcome: Outcome<'_>| Error::new(kind, reported(&outcome)).with_outcome(outcome);
        let error = match opening {
            Opening::Final => {
                let body = ResponseBody::buffered(bytes, trailers);
                return Begin::Finish(Ok(Response::from_parts(parts, body)));
            }
            Opening::Follow(follow) => match self.track(follow) {
                Ok(mut ledger) => {
                    ledger.observed = observed;
                    return self.begin(ledger, parts, InitialBody::Read(bytes, trailers));
                }
                Err(e) => e,
            },
            Opening::Failed(outcome) => ended(ErrorKind::Failed, outcome),
            Opening::Canceled(outcome) => ended(ErrorKind::Canceled, outcome),
            Opening::Malformed(why) => Error::new(ErrorKind::MalformedStatus, why),
        };
        let error = match error.kind() {
            ErrorKind::InvalidMonitorUrl | ErrorKind::CrossOrigin => error,
            _ => error.with_response(parts.status, parts.headers, Some(bytes)),
        };
        Begin::Finish(Err(error))
    }
}

/// The context of an error for an outcome the server reported.
fn reported(outcome: &Outcome<'_>) -> String {
    outcome
        .reported
        .as_ref()
        .map(|status| format!("the server reported {status:?}"))
        .unwrap_or_default()
}

/// Whether a body is declared larger than `limit`, so it need not be read to be refused.
fn too_large<B: Body>(headers: &HeaderMap, body: &B, limit: usize) -> bool {
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    let hint = body.size_hint();
    // A body that knows its length (hyper's, from `Content-Length`) need not have it looked up.
    hint.lower() > limit
        || hint.exact().is_none() && headers::content_length(headers).is_some_and(|len| len > limit)
}

impl<S, D: Dialect> Operation<S, D> {
    /// Drives the operation's requests until it ends, or a step does.
    fn poll_following<F, B, E, R>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        mut stage: Pin<&mut Stage<F, B>>,
        mut wait: Pin<&mut Option<Sleep>>,
        mut due: Pin<&mut Option<Sleep>>,
        cx: &mut Context<'_>,
    ) -> Poll<Exit<B>>
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
                    let drained = poll_drain(body, budget, cx).is_ready();
                    if !drained && !self.clock.due_passed(due.as_mut(), cx) {
                        return Poll::Pending;
                    }
                    if !drained && self.clock.past_deadline() {
                        let expired =
                            Error::new(ErrorKind::TimedOut, "the operation's deadline passed");
                        Next::Finish(Err(expired))
                    } else {
                        // Drained, or too slow to be worth it: then the connection is dropped.
                        Next::Wait { drain: None }
                    }
                }
                StageProj::Waiting => {
                    if !fired(wait.as_mut(), cx) {
                        return Poll::Pending;
                    }
                    Next::Send
                }
                StageProj::Ready => match self.service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        let request = self.next_request(ledger);
                        let future = self.service.call(request);
                        stage.set(Stage::Requesting { future });
                        self.clock.start_request();
                        continue;
                    }
                    Poll::Ready(Err(e)) => Next::Finish(Err(Error::service(e))),
                    Poll::Pending => match self.clock.on_due(due.as_mut(), cx) {
                        Some(expired) => Next::Finish(Err(expired)),
                        None => return Poll::Pending,
                    },
                },
                StageProj::Requesting { future } => match future.poll(cx) {
                    Poll::Ready(Ok(response)) => self.on_reply(ledger, response),
                    Poll::Ready(Err(e)) if matches!(ledger.target, Target::Cancel) => {
                        Next::Finish(Err(Error::service(e)))
                    }
                    Poll::Ready(Err(e)) => {
                        self.on_transient(ledger, None, || Error::service(e), None)
                    }
                    Poll::Pending => match self.clock.on_due(due.as_mut(), cx) {
                        Some(expired) => self.on_failed_request(ledger, expired),
                        None => return Poll::Pending,
                    },
                },
                StageProj::Reading {
                    body, collector, ..
                } => {
                    let read = match collector.poll_read(body, self.config.max_status_body, cx) {
                        Poll::Ready(Ok(read)) => Ok(read),
                        Poll::Ready(Err(e)) => {
                            let why = "the connection failed while reading an answer";
                            Err(Error::new(ErrorKind::Body, why).with_source(e.into()))
                        }
                        Poll::Pending => match self.clock.on_due(due.as_mut(), cx) {
                            Some(expired) => Err(expired),
                            None => return Poll::Pending,
                        },
                    };
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
            match next {
                Next::Finish(result) => return Poll::Ready(Exit::Finished(result)),
                Next::Wait { .. } if self.mode == Mode::Step => {
                    return Poll::Ready(Exit::Stepped(self.pending(ledger)));
                }
                Next::Wait { drain } => self.enter_wait(stage.as_mut(), wait.as_mut(), drain),
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
        }
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
    fn pending<B>(&self, ledger: &Ledger<D::Monitor>) -> Response<ResponseBody<B>> {
        let poll_in = self.clock.wake_at.map_or(Duration::ZERO, |at| {
            at.saturating_duration_since(Instant::now())
        });
        let elapsed = self.clock.elapsed();
        let token = ledger
            .token(&self.dialect, &self.original, elapsed)
            .after(poll_in);
        let mut response = Response::new(ResponseBody::buffered(Bytes::new(), None));
        *response.status_mut() = StatusCode::ACCEPTED;
        response.extensions_mut().insert(Pending {
            token,
            poll_in,
            operation: ledger.info(elapsed),
        });
        response
    }

    fn next_request<R: Default>(&mut self, ledger: &mut Ledger<D::Monitor>) -> Request<R> {
        let uri = match &ledger.target {
            Target::Final(uri) => uri.clone(),
            // A cancel is sent once, when the operation is taken over; after it, polls.
            Target::Poll | Target::Cancel => {
                ledger.target = Target::Poll;
                ledger.polls = ledger.polls.saturating_add(1);
                ledger.url.clone()
            }
        };
        self.original.get(uri)
    }
}

impl<S, D: Dialect> Operation<S, D> {
    /// An answer arrived: the dialect judges it by what was asked.
    fn on_reply<B: Body>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        response: Response<B>,
    ) -> Next<B> {
        let (parts, body) = response.into_parts();
        match &ledger.target {
            Target::Poll => {}
            Target::Final(uri) => {
                ledger.final_uri = Some(uri.clone());
                return self.on_final_reply(ledger, parts, body);
            }
            Target::Cancel => return self.on_cancel_reply(ledger, parts, body),
        }
        ledger.last_http_status = Some(parts.status);
        let verdict = match self.dialect.poll(&ledger.monitor, &parts) {
            Reply::ReadBody => return self.read(ledger, parts, body, Purpose::Verdict),
            Reply::Verdict(verdict) => verdict,
        };
        match verdict {
            Verdict::Running { moved } => {
                ledger.retries = 0;
                let hint = self.dialect.wait_hint(&parts.headers);
                match self.keep_polling(ledger, moved, hint) {
                    Ok(()) => Next::Wait { drain: Some(body) },
                    Err(e) => Next::Finish(Err(e)),
                }
            }
            Verdict::Done => {
                ledger.retries = 0;
                self.finish(ledger, parts, ResponseBody::streaming(body))
            }
            Verdict::Fetch(at) => match self.fetch(ledger, &at) {
                Ok(()) => Next::Send,
                Err(e) => Next::Finish(Err(e)),
            },
            Verdict::Failed(outcome) => {
                let answer = Answer::ended(ErrorKind::Failed, outcome);
                self.read(ledger, parts, body, Purpose::Answer(answer))
            }
            Verdict::Canceled(outcome) => {
                let answer = Answer::ended(ErrorKind::Canceled, outcome);
                self.read(ledger, parts, body, Purpose::Answer(answer))
            }
            // The last straw is read, not drained: its body says why the server kept failing.
            Verdict::Transient if self.transient_exhausted(ledger) => {
                self.read(ledger, parts, body, Purpose::Answer(Answer::unexpected()))
            }
            Verdict::Transient => {
                let hint = self.dialect.wait_hint(&parts.headers);
                let failure = move || unexpected(parts, "a poll", None, Outcome::default());
                self.on_transient(ledger, hint, failure, Some(body))
            }
            Verdict::Unexpected => {
                self.read(ledger, parts, body, Purpose::Answer(Answer::unexpected()))
            }
            Verdict::Malformed(why) => {
                let error = Error::new(ErrorKind::MalformedStatus, why);
                Next::Finish(Err(error.with_response(parts.status, parts.headers, None)))
            }
        }
    }

    fn on_final_reply<B: Body>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        parts: response::Parts,
        body: B,
    ) -> Next<B> {
        match self.dialect.final_reply(parts.status) {
            FinalReply::Final => self.finish(ledger, parts, ResponseBody::streaming(body)),
            FinalReply::Transient if !self.transient_exhausted(ledger) => {
                let hint = self.dialect.wait_hint(&parts.headers);
                let failure = move || unexpected(parts, "the final GET", None, Outcome::default());
                self.on_transient(ledger, hint, failure, Some(body))
            }
            FinalReply::Transient | FinalReply::Unexpected => {
                self.read(ledger, parts, body, Purpose::Answer(Answer::unexpected()))
            }
        }
    }

    fn on_cancel_reply<B: Body>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        parts: response::Parts,
        body: B,
    ) -> Next<B> {
        match self.dialect.cancel_reply(parts.status) {
            CancelReply::Accepted => {
                let hint = self.dialect.wait_hint(&parts.headers);
                match self.schedule_poll(ledger, hint) {
                    Ok(()) => Next::Wait { drain: Some(body) },
                    Err(e) => Next::Finish(Err(e)),
                }
            }
            CancelReply::Unsupported => {
                let answer = Answer {
                    kind: ErrorKind::CancelUnsupported,
                    outcome: Outcome::default(),
                };
                self.read(ledger, parts, body, Purpose::Answer(answer))
            }
            CancelReply::Unexpected => {
                self.read(ledger, parts, body, Purpose::Answer(Answer::unexpected()))
            }
        }
    }

    fn finish<B>(
        &self,
        ledger: &Ledger<D::Monitor>,
        parts: response::Parts,
        body: ResponseBody<B>,
    ) -> Next<B> {
        let mut response = Response::from_parts(parts, body);
        response
            .extensions_mut()
            .insert(ledger.info(self.clock.elapsed()));
        Next::Finish(Ok(response))
    }

    /// The operation succeeded; its final response is a GET of `at`.
    fn fetch(&mut self, ledger: &mut Ledger<D::Monitor>, at: &PollAt<'_>) -> Result<(), Error> {
        ledger.retries = 0;
        let uri = self
            .original
            .admit(at, Some(&ledger.url), &self.config.origins)?;
        ledger.target = Target::Final(uri);
        Ok(())
    }

    /// Whether another poll may be sent.
    fn poll_budget(&self, ledger: &Ledger<D::Monitor>) -> Result<(), Error> {
        if ledger.polls < self.config.max_polls {
            return Ok(());
        }
        let why = format!("still running after {} polls", ledger.polls);
        Err(Error::new(ErrorKind::TooManyPolls, why))
    }

    /// The operation is still running: follow the monitor if this answer moved it, then
    /// schedule the next poll by its hint.
    fn keep_polling(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        moved: Option<&[u8]>,
        hint: Option<Duration>,
    ) -> Result<(), Error> {
        // Servers repeat the header on every answer: only a new value is admitted again.
        if let Some(moved) = moved.filter(|moved| ledger.reference.as_deref() != Some(*moved)) {
            // A relative reference is relative to the URL this answer came from.
            let uri =
                self.original
                    .admit_reference(moved, Some(&ledger.url), &self.config.origins)?;
            ledger.url = uri;
            ledger.reference = Some(moved.to_vec());
        }
        self.schedule_poll(ledger, hint)
    }

    /// Checks the bounds and sets the time of the next poll.
    fn schedule_poll(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        hint: Option<Duration>,
    ) -> Result<(), Error> {
        self.poll_budget(ledger)?;
        let delay = self.config.delays.next_poll(hint, ledger.unhinted_waits);
        if hint.is_none() {
            ledger.unhinted_waits = ledger.unhinted_waits.saturating_add(1);
        }
        #[cfg(feature = "tracing")]
        tracing::debug!(
            parent: &self.span,
            status = ledger.observed.status.as_deref(),
            percent_complete = ledger.observed.percent_complete,
            http_status = ledger.last_http_status.map(|s| s.as_u16()),
            polls = ledger.polls,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "operation running"
        );
        self.wait(ledger, delay)
    }

    fn wait(&mut self, ledger: &Ledger<D::Monitor>, delay: Duration) -> Result<(), Error> {
        self.clock.schedule(delay)?;
        self.observe(ledger, Some(delay), false);
        Ok(())
    }

    /// Whether one more transient failure would end the operation.
    fn transient_exhausted(&self, ledger: &Ledger<D::Monitor>) -> bool {
        ledger.retries >= self.config.max_transient_retries
    }

    /// A poll or final GET failed in a way worth retrying: wait and send the same GET again,
    /// unless that has happened too often in a row. The error is built only if it ends the
    /// operation.
    fn on_transient<B>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        hint: Option<Duration>,
        failure: impl FnOnce() -> Error,
        drain: Option<B>,
    ) -> Next<B> {
        ledger.retries = ledger.retries.saturating_add(1);
        if ledger.retries > self.config.max_transient_retries {
            return Next::Finish(Err(failure()));
        }
        if matches!(ledger.target, Target::Poll) {
            if let Err(e) = self.poll_budget(ledger) {
                return Next::Finish(Err(e));
            }
        }
        let delay =
            self.config
                .delays
                .retry(hint, ledger.retries, crate::protocol::schedule::jitter());
        #[cfg(feature = "tracing")]
        tracing::warn!(
            parent: &self.span,
            attempt = ledger.retries,
            error = %failure(),
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "transient failure while following an operation; retrying"
        );
        match self.wait(ledger, delay) {
            Ok(()) => Next::Wait { drain },
            Err(e) => Next::Finish(Err(e)),
        }
    }

    /// A request in flight failed (a timeout, a broken body): past the deadline, or for a cancel
    /// request (never repeated), that ends the operation; otherwise it is a transient failure.
    fn on_failed_request<B>(&mut self, ledger: &mut Ledger<D::Monitor>, failure: Error) -> Next<B> {
        if self.clock.past_deadline() || matches!(ledger.target, Target::Cancel) {
            return Next::Finish(Err(failure));
        }
        self.on_transient(ledger, None, || failure, None)
    }

    /// Starts reading an answer's body, unless its declared length is already over the limit.
    fn read<B: Body>(
        &self,
        ledger: &Ledger<D::Monitor>,
        parts: response::Parts,
        body: B,
        purpose: Purpose,
    ) -> Next<B> {
        if !too_large(&parts.headers, &body, self.config.max_status_body) {
            return Next::Read {
                parts,
                body,
                purpose,
            };
        }
        Next::Finish(Err(match purpose {
            Purpose::Answer(answer) => self.answered_by(ledger, answer, parts, None),
            Purpose::Verdict => self.too_large(parts),
        }))
    }

    fn too_large(&self, parts: response::Parts) -> Error {
        let why = format!("over the limit of {} bytes", self.config.max_status_body);
        Error::new(ErrorKind::StatusBodyTooLarge, why).with_response(
            parts.status,
            parts.headers,
            None,
        )
    }

    fn on_read<B>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        parts: response::Parts,
        collector: Collector,
        purpose: Purpose,
        read: Result<Read, Error>,
    ) -> Next<B> {
        match (purpose, read) {
            // An error answer ends the operation whatever happens to its body: keep what arrived.
            (Purpose::Answer(answer), _) => {
                let (bytes, _) = collector.finish();
                let body = bytes.slice(..bytes.len().min(self.config.max_status_body));
                Next::Finish(Err(self.answered_by(ledger, answer, parts, Some(body))))
            }
            (Purpose::Verdict, Err(failure)) => self.on_failed_request(ledger, failure),
            (Purpose::Verdict, Ok(Read::TooLarge)) => Next::Finish(Err(self.too_large(parts))),
            (Purpose::Verdict, Ok(Read::Complete)) => {
                let (bytes, trailers) = collector.finish();
                self.on_body(ledger, parts, bytes, trailers)
            }
        }
    }

    /// A poll answer's body, read whole: the dialect judges it.
    fn on_body<B>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        parts: response::Parts,
        bytes: Bytes,
        trailers: Option<Box<HeaderMap>>,
    ) -> Next<B> {
        let verdict = self.dialect.verdict(
            &mut ledger.monitor,
            &self.original.head(),
            &parts,
            &bytes,
            &mut Observer {
                ledger: &mut ledger.observed,
            },
        );
        let ended =
            |kind, outcome: Outcome<'_>| Error::new(kind, reported(&outcome)).with_outcome(outcome);
        let error = match verdict {
            Verdict::Running { moved } => {
                ledger.retries = 0;
                let hint = self.dialect.wait_hint(&parts.headers);
                return match self.keep_polling(ledger, moved, hint) {
                    Ok(()) => Next::Wait { drain: None },
                    Err(e) => Next::Finish(Err(e)),
                };
            }
            Verdict::Done => {
                ledger.retries = 0;
                return self.finish(ledger, parts, ResponseBody::buffered(bytes, trailers));
            }
            Verdict::Fetch(at) => {
                return match self.fetch(ledger, &at) {
                    Ok(()) => Next::Send,
                    Err(e) => Next::Finish(Err(e)),
                }
            }
            Verdict::Transient => {
                let hint = self.dialect.wait_hint(&parts.headers);
                let failure = move || unexpected(parts, "a poll", Some(bytes), Outcome::default());
                return self.on_transient(ledger, hint, failure, None);
            }
            Verdict::Failed(outcome) => ended(ErrorKind::Failed, outcome),
            Verdict::Canceled(outcome) => ended(ErrorKind::Canceled, outcome),
            Verdict::Unexpected => {
                let outcome = self
                    .dialect
                    .error_detail(&parts.headers, Some(&bytes))
                    .into_owned();
                return Next::Finish(Err(unexpected(parts, "a poll", Some(bytes), outcome)));
            }
            Verdict::Malformed(why) => Error::new(ErrorKind::MalformedStatus, why),
        };
        Next::Finish(Err(error.with_response(
            parts.status,
            parts.headers,
            Some(bytes),
        )))
    }

    fn request_name(&self, ledger: &Ledger<D::Monitor>) -> &'static str {
        match ledger.target {
            Target::Final(_) => "the final GET",
            Target::Poll => "a poll",
            Target::Cancel => "the cancel request",
        }
    }

    /// The error of an answer that ended the operation by its HTTP status, with the service's
    /// details from the outcome, else from the dialect's reading of the answer.
    fn answered_by(
        &self,
        ledger: &Ledger<D::Monitor>,
        answer: Answer,
        parts: response::Parts,
        body: Option<Bytes>,
    ) -> Error {
        let what = match answer.kind {
            ErrorKind::UnexpectedStatus => {
                format!("{} answered {}", self.request_name(ledger), parts.status)
            }
            _ if answer.outcome.reported.is_some() => reported(&answer.outcome),
            ErrorKind::CancelUnsupported => format!("the cancel request answered {}", parts.status),
            _ => format!(
                "the {} monitor answered {}",
                ledger.kind.as_str(),
                parts.status
            ),
        };
        self.detailed(answer, what, parts, body)
    }

    fn detailed(
        &self,
        answer: Answer,
        what: String,
        parts: response::Parts,
        body: Option<Bytes>,
    ) -> Error {
        let Answer { kind, mut outcome } = answer;
        if outcome.code.is_none() && outcome.message.is_none() {
            let detail = self
                .dialect
                .error_detail(&parts.headers, body.as_deref())
                .into_owned();
            outcome = outcome.with_detail(detail.code, detail.message);
        }
        Error::new(kind, what).with_outcome(outcome).with_response(
            parts.status,
            parts.headers,
            body,
        )
    }
}

impl Answer {
    fn unexpected() -> Answer {
        Answer {
            kind: ErrorKind::UnexpectedStatus,
            outcome: Outcome::default(),
        }
    }

    fn ended(kind: ErrorKind, outcome: Outcome<'_>) -> Answer {
        Answer {
            kind,
            outcome: outcome.into_owned(),
        }
    }
}

/// An answer the protocol does not allow, as an error built only when it ends the operation.
fn unexpected(
    parts: response::Parts,
    what: &str,
    body: Option<Bytes>,
    outcome: Outcome<'static>,
) -> Error {
    let what = format!("{what} answered {}", parts.status);
    let detail = match (&outcome.code, &outcome.message, &body) {
        (None, None, body) => {
            crate::protocol::errors::envelope(&parts.headers, body.as_deref()).into_owned()
        }
        _ => outcome,
    };
    Error::new(ErrorKind::UnexpectedStatus, what)
        .with_outcome(detail)
        .with_response(parts.status, parts.headers, body)
}

impl<S, ReqBody, ResBody, D> fmt::Debug for ResponseFuture<S, ReqBody, ResBody, D>
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
            State::Done => ("Done", None),
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("dialect", &self.op.dialect)
            .field("method", &self.op.original.method)
            .field("uri", &self.op.original.uri)
            .field("monitor", &ledger.map(|l| (l.kind, &l.url)))
            .field("polls", &ledger.map(|l| l.polls))
            .finish()
    }
}
