//! The response future: one state machine that sends the initial request once, then polls.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::LOCATION;
use http::{
    response, Extensions, HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri,
    Version,
};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::body::{poll_drain, Collector, Read, ResponseBody};
use crate::error::{BoxError, Error, ErrorKind};
use crate::info::{MonitorKind, OperationInfo};
use crate::layer::Config;
use crate::options::{CredentialsWithheld, FinalStateVia, Polling};
use crate::progress::{Progress, ProgressSender};
use crate::protocol::status::{self, Phase};
use crate::protocol::url::{self, Base, Rejection};
use crate::protocol::{self, headers, retry_after::retry_after, FinalTarget, Initial, PollReply};
use crate::resume::{ResumeToken, Snapshot};

pin_project! {
    /// The future of [`LongRunning`](crate::LongRunning): resolves with the operation's final
    /// response, or the [`Error`] that ended it. Dropping it stops the operation's polling at once:
    /// it owns every timer and connection it uses and spawns nothing.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S::Future, ResBody>,
        // The time of the next poll, while waiting. Created on first use.
        #[pin]
        wait: Option<Sleep>,
        // The deadline of what is in flight (the operation's, or a poll's timeout). Moved on
        // lazily: set for an earlier phase's deadline, it fires early and is re-set then, rather
        // than being reset for every request.
        #[pin]
        due: Option<Sleep>,
        op: Operation<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    #[project_replace = StateReplace]
    enum State<F, B> {
        // The original request, in flight.
        Initial { #[pin] future: F },
        // Reading a 200/201 initial body for a `provisioningState`. Boxed, because when the body
        // turns out too large to be a status it is handed back whole, behind what was read.
        Sniffing { parts: response::Parts, body: Pin<Box<B>>, collector: Collector, sniff: Sniff },
        // Reading and discarding a response body we do not need, so the connection is reused;
        // bounded by `budget` bytes, and in time by the wait plus a short grace
        // (`drain_deadline`). Counts into the wait that follows.
        Draining { #[pin] body: B, budget: usize },
        // Until `op.wake_at` (never entered for a zero wait).
        Waiting,
        // Waiting for the inner service to be ready for the next GET.
        Ready,
        // A poll or the final GET, in flight.
        Requesting { #[pin] future: F },
        // Reading the body of a poll response.
        Reading { #[pin] body: B, parts: response::Parts, collector: Collector, purpose: Purpose },
        Done,
    }
}

/// Why an initial body is being read.
#[derive(Debug)]
enum Sniff {
    /// The response names a monitor; a terminal `provisioningState` settles the operation inline.
    Monitor {
        kind: MonitorKind,
        reference: HeaderValue,
    },
    /// A PUT/PATCH 200/201 without monitor headers: a resource monitor if not terminal.
    Resource,
}

/// How reading an initial body ended.
enum Sniffed {
    Complete,
    /// Stopped before the end: too large, or too slow, to be a status.
    Stopped,
    /// The body failed.
    Broken(BoxError),
    /// The operation's deadline passed.
    Expired(Error),
}

/// Why a poll response body is being read.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    Status,
    Resource,
    /// The body of an error response, kept (bounded) in the error.
    ErrorBody,
    /// The body of a client error from a `Location` or resource monitor: the operation failed.
    FailureBody,
}

/// What the next request is.
#[derive(Debug)]
enum Target {
    Poll,
    Final(Uri),
}

/// The initial response's body, as far as it was read when a monitor is followed.
enum InitialBody<B> {
    Unread(B),
    Read(Bytes, Option<Box<HeaderMap>>),
    Partial(Bytes, Pin<Box<B>>),
}

/// The transition a state asks for.
enum Step<B> {
    Finish(Result<Response<ResponseBody<B>>, Error>),
    Sniff {
        parts: response::Parts,
        body: Pin<Box<B>>,
        sniff: Sniff,
    },
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

/// Everything about the operation that outlives a state.
struct Operation<S, ReqBody> {
    service: S,
    config: Arc<Config>,
    polling: Polling,
    progress: Option<ProgressSender>,
    started: Instant,
    deadline: Option<Instant>,
    // The original request, as polls repeat it (PROTOCOL §5).
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
    via: Option<FinalStateVia>,
    base: Option<Base>,
    // What is being followed.
    monitor: Option<(MonitorKind, Uri)>,
    // The header value the monitor URL was last taken from, to skip re-admitting a repeat.
    monitor_reference: Option<HeaderValue>,
    initial_location: Option<HeaderValue>,
    target: Target,
    // Counters and the last thing the server said.
    polls: u32,
    retries: u32,
    unhinted_waits: u32,
    status: Option<String>,
    last_http_status: Option<StatusCode>,
    percent_complete: Option<f64>,
    operation_id: Option<String>,
    operation_name: Option<String>,
    final_uri: Option<Uri>,
    // When the next request goes out; the deadline of the current phase, and where the `due`
    // timer is set.
    wake_at: Option<Instant>,
    due: Option<Instant>,
    due_set: Option<Instant>,
    // An error found before anything was sent (a bad resume token), returned on first poll.
    rejected: Option<Error>,
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    _request_body: PhantomData<fn() -> ReqBody>,
}

impl<S, ReqBody, ResBody> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    /// Sends `req` through `service`, which the caller has driven to readiness, unless `req`
    /// carries a [`ResumeToken`]: then it resumes that operation instead.
    pub(crate) fn start(mut service: S, config: Arc<Config>, mut req: Request<ReqBody>) -> Self {
        // Our own extensions steer this layer only; layers below never see them.
        let extensions = req.extensions_mut();
        let polling = extensions.remove::<Polling>().unwrap_or_default();
        let via = extensions.remove::<FinalStateVia>();
        let progress = extensions.remove::<ProgressSender>();
        if let Some(token) = extensions.remove::<ResumeToken>() {
            return Self::resume(service, config, token, &req, progress);
        }
        let original = Original::of(&req, polling);
        let future = service.call(req);
        let mut op = Operation::new(service, config, original, polling);
        op.via = via;
        op.progress = progress;
        ResponseFuture {
            state: State::Initial { future },
            wait: None,
            due: None,
            op,
        }
    }

    /// Continues the operation of `token`, polling at once; `req` contributes extra headers and
    /// extensions.
    fn resume(
        service: S,
        config: Arc<Config>,
        token: ResumeToken,
        req: &Request<ReqBody>,
        progress: Option<ProgressSender>,
    ) -> Self {
        let mut op = Operation::new(
            service,
            config,
            Original::of(req, Polling::Enabled),
            Polling::Enabled,
        );
        op.progress = progress;
        if let Err(error) = op.adopt(&token) {
            op.rejected = Some(error);
            return ResponseFuture {
                state: State::Done,
                wait: None,
                due: None,
                op,
            };
        }
        ResponseFuture {
            state: State::Ready,
            wait: None,
            due: None,
            op,
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ReqBody: Default,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let op = this.op;
        #[cfg(feature = "tracing")]
        let _entered = op.span.clone().entered();
        loop {
            let step = match this.state.as_mut().project() {
                StateProj::Initial { future } => match future.poll(cx) {
                    Poll::Ready(Ok(response)) => op.on_initial(response),
                    Poll::Ready(Err(e)) => Step::Finish(Err(Error::service(e))),
                    Poll::Pending => match op.on_due(this.due.as_mut(), cx) {
                        Some(expired) => Step::Finish(Err(op.fail(expired))),
                        None => return Poll::Pending,
                    },
                },
                StateProj::Sniffing {
                    body, collector, ..
                } => {
                    let sniffed =
                        match collector.poll_read(body.as_mut(), op.config.max_status_body, cx) {
                            Poll::Ready(Ok(Read::Complete)) => Sniffed::Complete,
                            Poll::Ready(Ok(Read::TooLarge)) => Sniffed::Stopped,
                            Poll::Ready(Err(e)) => Sniffed::Broken(e.into()),
                            Poll::Pending => match op.on_due(this.due.as_mut(), cx) {
                                // Too slow to be a status: handled like one too large to be one.
                                Some(_) if !op.past_deadline() => Sniffed::Stopped,
                                Some(expired) => Sniffed::Expired(expired),
                                None => return Poll::Pending,
                            },
                        };
                    match this.state.as_mut().project_replace(State::Done) {
                        StateReplace::Sniffing {
                            parts,
                            body,
                            collector,
                            sniff,
                        } => op.on_sniffed(parts, body, collector, sniff, sniffed),
                        _ => Step::Finish(Err(lost_state())),
                    }
                }
                StateProj::Draining { body, budget } => {
                    let drained = poll_drain(body, budget, cx).is_ready();
                    if !drained && !op.due_passed(this.due.as_mut(), cx) {
                        return Poll::Pending;
                    }
                    if !drained && op.past_deadline() {
                        let expired =
                            Error::new(ErrorKind::TimedOut, "the operation's deadline passed");
                        Step::Finish(Err(op.fail(expired)))
                    } else {
                        // Drained, or too slow to be worth it: then the connection is dropped.
                        Step::Wait { drain: None }
                    }
                }
                StateProj::Waiting => {
                    if !fired(this.wait.as_mut(), cx) {
                        return Poll::Pending;
                    }
                    Step::Send
                }
                StateProj::Ready => match op.service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        let request = op.next_request();
                        let future = op.service.call(request);
                        this.state.set(State::Requesting { future });
                        op.due = op.request_deadline();
                        continue;
                    }
                    Poll::Ready(Err(e)) => Step::Finish(Err(op.fail(Error::service(e)))),
                    Poll::Pending => match op.on_due(this.due.as_mut(), cx) {
                        Some(expired) => Step::Finish(Err(op.fail(expired))),
                        None => return Poll::Pending,
                    },
                },
                StateProj::Requesting { future } => match future.poll(cx) {
                    Poll::Ready(Ok(response)) => op.on_reply(response),
                    Poll::Ready(Err(e)) => op.on_transient(None, || Error::service(e), None),
                    Poll::Pending => match op.on_due(this.due.as_mut(), cx) {
                        Some(expired) => op.on_failed_request(expired),
                        None => return Poll::Pending,
                    },
                },
                StateProj::Reading {
                    body, collector, ..
                } => {
                    let read = match collector.poll_read(body, op.config.max_status_body, cx) {
                        Poll::Ready(Ok(read)) => Ok(read),
                        Poll::Ready(Err(e)) => {
                            let why = "the connection failed while reading a poll response";
                            Err(Error::new(ErrorKind::Body, why).with_source(e.into()))
                        }
                        Poll::Pending => match op.on_due(this.due.as_mut(), cx) {
                            Some(expired) => Err(expired),
                            None => return Poll::Pending,
                        },
                    };
                    match this.state.as_mut().project_replace(State::Done) {
                        StateReplace::Reading {
                            parts,
                            collector,
                            purpose,
                            ..
                        } => op.on_read(parts, collector, purpose, read),
                        _ => Step::Finish(Err(lost_state())),
                    }
                }
                StateProj::Done => {
                    let error = op.rejected.take();
                    return Poll::Ready(Err(
                        error.unwrap_or_else(|| Error::new(ErrorKind::PolledAfterCompletion, ""))
                    ));
                }
            };
            match step {
                Step::Finish(result) => {
                    op.conclude(&result);
                    this.state.set(State::Done);
                    return Poll::Ready(result);
                }
                Step::Sniff { parts, body, sniff } => {
                    this.state.set(State::Sniffing {
                        parts,
                        body,
                        collector: Collector::default(),
                        sniff,
                    });
                    // Reading the initial body is a round trip of its own: bounded like a poll.
                    op.due = op.request_deadline();
                }
                Step::Wait { drain: Some(body) } if !body.is_end_stream() => {
                    let budget = op.config.max_status_body;
                    this.state.set(State::Draining { body, budget });
                    op.due = op.drain_deadline();
                }
                Step::Wait { .. } => match op.wake_at {
                    Some(at) => {
                        this.state.set(State::Waiting);
                        set_sleep(this.wait.as_mut(), at);
                    }
                    // A zero wait (`Retry-After: 0`) needs no timer.
                    None => {
                        this.state.set(State::Ready);
                        op.due = op.deadline;
                    }
                },
                Step::Send => {
                    this.state.set(State::Ready);
                    op.due = op.deadline;
                }
                Step::Read {
                    parts,
                    body,
                    purpose,
                } => {
                    this.state.set(State::Reading {
                        body,
                        parts,
                        collector: Collector::default(),
                        purpose,
                    });
                }
            }
        }
    }
}

/// Sets a timer for `at`, resetting it rather than making a new one.
fn set_sleep(mut timer: Pin<&mut Option<Sleep>>, at: Instant) {
    match timer.as_mut().as_pin_mut() {
        Some(sleep) => sleep.reset(at),
        None => timer.set(Some(tokio::time::sleep_until(at))),
    }
}

fn fired(timer: Pin<&mut Option<Sleep>>, cx: &mut Context<'_>) -> bool {
    timer
        .as_pin_mut()
        .is_some_and(|sleep| sleep.poll(cx).is_ready())
}

fn lost_state() -> Error {
    // `project_replace` inside a state's own arm always finds that state.
    Error::new(ErrorKind::PolledAfterCompletion, "internal state lost")
}

/// The parts of the original request that polls repeat (PROTOCOL §5).
struct Original {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
}

impl Original {
    fn of<B>(req: &Request<B>, polling: Polling) -> Original {
        let (headers, extensions) = match polling {
            // Nothing will be repeated: copy nothing.
            Polling::Disabled => (HeaderMap::new(), Extensions::new()),
            Polling::Enabled | Polling::AcceptOnly => (
                headers::for_polls(req.headers().clone()),
                req.extensions().clone(),
            ),
        };
        Original {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers,
            extensions,
        }
    }
}

impl<S, ReqBody> Operation<S, ReqBody> {
    fn new(service: S, config: Arc<Config>, original: Original, polling: Polling) -> Self {
        let started = Instant::now();
        let deadline = deadline_after(started, config.timeout);
        Operation {
            service,
            deadline,
            config,
            polling,
            progress: None,
            started,
            method: original.method,
            uri: original.uri,
            version: original.version,
            headers: original.headers,
            extensions: original.extensions,
            via: None,
            base: None,
            monitor: None,
            monitor_reference: None,
            initial_location: None,
            target: Target::Poll,
            polls: 0,
            retries: 0,
            unhinted_waits: 0,
            status: None,
            last_http_status: None,
            percent_complete: None,
            operation_id: None,
            operation_name: None,
            final_uri: None,
            wake_at: None,
            due: deadline,
            due_set: None,
            rejected: None,
            #[cfg(feature = "tracing")]
            span: tracing::Span::none(),
            _request_body: PhantomData,
        }
    }

    /// Whether the current phase's deadline (`self.due`) has passed.
    fn due_passed(&mut self, mut timer: Pin<&mut Option<Sleep>>, cx: &mut Context<'_>) -> bool {
        let Some(due) = self.due else {
            return false;
        };
        if self.due_set.is_none_or(|set| set > due) {
            set_sleep(timer.as_mut(), due);
            self.due_set = Some(due);
        }
        // Twice at most: a timer that fired at an earlier phase's deadline is moved on to this
        // one's, which is in the future, so it is then pending.
        for _ in 0..2 {
            let Some(sleep) = timer.as_mut().as_pin_mut() else {
                return false;
            };
            if sleep.poll(cx).is_pending() {
                return false;
            }
            if Instant::now() >= due {
                return true;
            }
            set_sleep(timer.as_mut(), due);
            self.due_set = Some(due);
        }
        false
    }

    /// While something is in flight: `Some` error once its deadline passed.
    fn on_due(&mut self, timer: Pin<&mut Option<Sleep>>, cx: &mut Context<'_>) -> Option<Error> {
        if !self.due_passed(timer, cx) {
            return None;
        }
        self.due = None;
        let why = if self.past_deadline() {
            "the operation's deadline passed"
        } else {
            "no answer within the poll timeout"
        };
        Some(Error::new(ErrorKind::TimedOut, why))
    }

    fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// The deadline of a request being sent now: the poll timeout or the operation's deadline,
    /// whichever comes first.
    fn request_deadline(&self) -> Option<Instant> {
        earliest(
            deadline_after(Instant::now(), self.config.poll_timeout),
            self.deadline,
        )
    }

    /// How long an unneeded body may be drained: through the wait, and a short grace after it so a
    /// body still arriving can finish, within the request's own bounds.
    fn drain_deadline(&self) -> Option<Instant> {
        let grace = Instant::now().checked_add(DRAIN_GRACE);
        let until = match (self.wake_at, grace) {
            (Some(wake), Some(grace)) => Some(wake.max(grace)),
            (wake, grace) => wake.or(grace),
        };
        earliest(until, self.request_deadline())
    }

    fn info(&self) -> Option<OperationInfo> {
        let (kind, url) = self.monitor.as_ref()?;
        Some(OperationInfo {
            monitor: *kind,
            monitor_url: url.clone(),
            polls: self.polls,
            elapsed: self.started.elapsed(),
            status: self.status.clone(),
            last_http_status: self.last_http_status,
            percent_complete: self.percent_complete,
            operation_id: self.operation_id.clone(),
            operation_name: self.operation_name.clone(),
            final_uri: self.final_uri.clone(),
        })
    }

    fn token(&self) -> Option<ResumeToken> {
        let (kind, url) = self.monitor.as_ref()?;
        Some(ResumeToken::new(Snapshot {
            monitor: *kind,
            monitor_url: url,
            method: &self.method,
            uri: &self.uri,
            location: self.initial_location.as_ref(),
            via: self.via,
            final_uri: match &self.target {
                Target::Final(uri) => Some(uri),
                Target::Poll => None,
            },
            headers: &self.headers,
            polls: self.polls,
            elapsed: self.started.elapsed(),
            status: self.status.as_deref(),
        }))
    }

    /// Attaches what happened so far to an error that ends the operation and, unless the
    /// operation is known to have ended, a token to continue it.
    fn fail(&self, error: Error) -> Error {
        let Some(info) = self.info() else {
            return error;
        };
        let error = error.with_operation(info);
        match self.token() {
            Some(token) if !error.is_operation_error() => error.with_resume_token(token),
            _ => error,
        }
    }

    /// Tells the observers where the operation stands.
    fn observe(&self, next_poll_in: Option<Duration>, finished: bool) {
        let sender = self.progress.as_ref().filter(|p| p.is_observed());
        if sender.is_none() && self.config.on_poll.is_none() {
            return;
        }
        let (Some(operation), Some(resume_token)) = (self.info(), self.token()) else {
            return;
        };
        let progress = Progress {
            operation,
            next_poll_in,
            finished,
            resume_token,
        };
        if let Some(hook) = &self.config.on_poll {
            (hook.0)(&progress);
        }
        if let Some(sender) = sender {
            sender.send(progress);
        }
    }

    /// The future is about to complete with `result`.
    fn conclude<B>(&self, result: &Result<Response<B>, Error>) {
        // An accepted operation is handed off, not ended: its observers hear nothing more.
        if self.monitor.is_none() || self.polling == Polling::AcceptOnly {
            return;
        }
        #[cfg(feature = "tracing")]
        match result {
            Ok(response) => {
                tracing::debug!(parent: &self.span, polls = self.polls, status = %response.status(), "operation finished")
            }
            Err(error) => {
                tracing::debug!(parent: &self.span, polls = self.polls, %error, "operation ended with an error")
            }
        }
        #[cfg(not(feature = "tracing"))]
        let _ = result;
        self.observe(None, true);
    }

    fn finish<B>(&self, parts: response::Parts, body: ResponseBody<B>) -> Step<B> {
        let mut response = Response::from_parts(parts, body);
        if let Some(info) = self.info() {
            response.extensions_mut().insert(info);
        }
        Step::Finish(Ok(response))
    }

    fn base(&mut self) -> Result<&Base, Rejection> {
        let base = match self.base.take() {
            Some(base) => base,
            None => Base::new(&self.uri)?,
        };
        Ok(self.base.insert(base))
    }

    /// Resolves a URL the server named against the URI of the response that named it
    /// (`named_by`, else the original URI), validates it, and withholds credentials and extensions
    /// from it if it is on another origin (for good: they do not come back on a later hop).
    fn admit(&mut self, reference: &[u8], named_by: Option<&Uri>) -> Result<Uri, Error> {
        if let Some(uri) = url::admit_plain(&self.uri, reference) {
            return Ok(uri);
        }
        let config = Arc::clone(&self.config);
        let admitted = self
            .base()
            .and_then(|base| base.admit(reference, named_by, &config.origins))
            .map_err(|rejection| {
                let error = match rejection {
                    Rejection::Invalid(why) => Error::new(ErrorKind::InvalidMonitorUrl, why),
                    Rejection::CrossOrigin(why) => Error::new(ErrorKind::CrossOrigin, why),
                };
                self.fail(error)
            })?;
        if admitted.cross_origin {
            headers::strip_credentials(&mut self.headers);
            self.extensions.clear();
            self.extensions.insert(CredentialsWithheld);
        }
        Ok(admitted.uri)
    }

    fn trace_monitor(&mut self) {
        #[cfg(feature = "tracing")]
        if let Some((kind, url)) = &self.monitor {
            self.span = tracing::debug_span!(
                "long_running_operation",
                method = %self.method,
                uri = %self.uri,
                monitor = kind.as_str(),
                monitor_url = %url,
            );
        }
    }

    /// Takes over the operation a token describes. Its URLs pass this layer's origin policy, judged
    /// against the token's own original URI; its polls and time count against this layer's
    /// bounds, which are checked before anything is sent.
    fn adopt(&mut self, token: &ResumeToken) -> Result<(), Error> {
        let resumption = token.resumption()?;
        let mut headers = resumption.headers;
        for name in self.headers.keys() {
            headers.remove(name);
        }
        headers.extend(std::mem::take(&mut self.headers));
        self.headers = headers;
        self.method = resumption.method;
        self.uri = resumption.uri;
        self.via = resumption.via;
        self.initial_location = resumption.location;
        self.polls = resumption.polls;
        self.status = resumption.status;
        let now = Instant::now();
        self.started = now.checked_sub(resumption.elapsed).unwrap_or(now);
        self.deadline = deadline_after(self.started, self.config.timeout);
        self.due = self.deadline;
        let untrusted = |e: Error| {
            Error::new(ErrorKind::InvalidResumeToken, e.to_string()).with_source(Box::new(e))
        };
        let monitor_url = self
            .admit(resumption.monitor_url.to_string().as_bytes(), None)
            .map_err(untrusted)?;
        if let Some(final_uri) = resumption.final_uri {
            self.target = Target::Final(
                self.admit(final_uri.to_string().as_bytes(), None)
                    .map_err(untrusted)?,
            );
        }
        self.monitor = Some((resumption.monitor, monitor_url));
        self.trace_monitor();
        if matches!(self.target, Target::Poll) {
            self.poll_budget()?;
        }
        if self.past_deadline() {
            let why = "the operation's deadline passed before it was resumed";
            return Err(self.fail(Error::new(ErrorKind::TimedOut, why)));
        }
        Ok(())
    }

    /// Whether another poll may be sent.
    fn poll_budget(&self) -> Result<(), Error> {
        if self.polls < self.config.max_polls {
            return Ok(());
        }
        let why = format!("still running after {} polls", self.polls);
        Err(self.fail(Error::new(ErrorKind::TooManyPolls, why)))
    }

    /// The operation is still running: follow the monitor if this answer moved it (only a
    /// "running" answer can: a final one is the end), then schedule the next poll by its hint.
    fn keep_polling(&mut self, headers: &HeaderMap) -> Result<(), Error> {
        if let Some((kind, polled)) = &self.monitor {
            let kind = *kind;
            // Servers repeat the header on every answer: only a new value is admitted again.
            let moved = protocol::moved_monitor(kind, headers)
                .filter(|moved| self.monitor_reference.as_ref() != Some(*moved));
            if let Some(moved) = moved {
                // A relative reference is relative to the URL this answer came from.
                let polled = polled.clone();
                let uri = self.admit(moved.as_bytes(), Some(&polled))?;
                self.monitor = Some((kind, uri));
                self.monitor_reference = Some(moved.clone());
            }
        }
        self.schedule_poll(retry_after(headers, SystemTime::now))
    }

    /// Checks the bounds and sets the time of the next poll.
    fn schedule_poll(&mut self, hint: Option<Duration>) -> Result<(), Error> {
        self.poll_budget()?;
        let delay = self.config.delays.next_poll(hint, self.unhinted_waits);
        if hint.is_none() {
            self.unhinted_waits = self.unhinted_waits.saturating_add(1);
        }
        #[cfg(feature = "tracing")]
        tracing::debug!(
            parent: &self.span,
            status = self.status.as_deref(),
            percent_complete = self.percent_complete,
            http_status = self.last_http_status.map(|s| s.as_u16()),
            polls = self.polls,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "operation running"
        );
        self.wait(delay)
    }

    fn wait(&mut self, delay: Duration) -> Result<(), Error> {
        self.wake_at = None;
        if delay.is_zero() {
            // "Poll now" reads the clock only if there is a deadline to check.
            if self.past_deadline() {
                let why = "the operation's deadline passed";
                return Err(self.fail(Error::new(ErrorKind::TimedOut, why)));
            }
        } else {
            let now = Instant::now();
            let at = now.checked_add(delay).unwrap_or_else(|| far_future(now));
            if self.deadline.is_some_and(|deadline| at > deadline) {
                let why = format!(
                    "the next request would be after the operation's deadline (in {delay:?})"
                );
                return Err(self.fail(Error::new(ErrorKind::TimedOut, why)));
            }
            self.wake_at = Some(at);
        }
        self.observe(Some(delay), false);
        Ok(())
    }

    /// Starts following a monitor named by the initial response, or, for
    /// [`Polling::AcceptOnly`], hands the initial response back with a token.
    fn follow<B>(
        &mut self,
        kind: MonitorKind,
        reference: Option<&HeaderValue>,
        parts: response::Parts,
        body: InitialBody<B>,
    ) -> Step<B> {
        let uri = match reference {
            Some(reference) => match self.admit(reference.as_bytes(), None) {
                Ok(uri) => uri,
                Err(e) => return Step::Finish(Err(e)),
            },
            None => self.uri.clone(),
        };
        self.monitor = Some((kind, uri));
        self.monitor_reference = reference.cloned();
        self.trace_monitor();
        if self.polling == Polling::AcceptOnly {
            let body = match body {
                InitialBody::Unread(body) => ResponseBody::streaming(body),
                InitialBody::Read(bytes, trailers) => ResponseBody::buffered(bytes, trailers),
                InitialBody::Partial(prefix, body) => ResponseBody::resumed(prefix, body),
            };
            let mut response = Response::from_parts(parts, body);
            if let Some(token) = self.token() {
                response.extensions_mut().insert(token);
            }
            if let Some(info) = self.info() {
                response.extensions_mut().insert(info);
            }
            return Step::Finish(Ok(response));
        }
        // The initial response's hint governs the first poll (PROTOCOL §2).
        match self.schedule_poll(retry_after(&parts.headers, SystemTime::now)) {
            Ok(()) => Step::Wait {
                drain: match body {
                    InitialBody::Unread(body) => Some(body),
                    InitialBody::Read(..) | InitialBody::Partial(..) => None,
                },
            },
            Err(e) => Step::Finish(Err(e)),
        }
    }

    fn on_initial<B: Body<Data = Bytes>>(&mut self, response: Response<B>) -> Step<B> {
        if self.polling == Polling::Disabled {
            return Step::Finish(Ok(response.map(ResponseBody::streaming)));
        }
        let (parts, body) = response.into_parts();
        let limit = self.config.max_status_body;
        match protocol::classify(
            &self.method,
            parts.status,
            &parts.headers,
            self.config.follow_created_location,
        ) {
            Initial::PassThrough => Step::Finish(Ok(Response::from_parts(
                parts,
                ResponseBody::streaming(body),
            ))),
            Initial::Monitor {
                kind,
                reference,
                sniff,
            } => {
                let reference = reference.clone();
                if matches!(
                    kind,
                    MonitorKind::AzureAsyncOperation | MonitorKind::OperationLocation
                ) {
                    self.initial_location = parts.headers.get(LOCATION).cloned();
                }
                if sniff && !too_large(&parts.headers, &body, limit) {
                    Step::Sniff {
                        parts,
                        body: Box::pin(body),
                        sniff: Sniff::Monitor { kind, reference },
                    }
                } else {
                    self.follow(kind, Some(&reference), parts, InitialBody::Unread(body))
                }
            }
            Initial::MaybeResource if too_large(&parts.headers, &body, limit) => Step::Finish(Ok(
                Response::from_parts(parts, ResponseBody::streaming(body)),
            )),
            Initial::MaybeResource => Step::Sniff {
                parts,
                body: Box::pin(body),
                sniff: Sniff::Resource,
            },
        }
    }

    fn on_sniffed<B>(
        &mut self,
        parts: response::Parts,
        body: Pin<Box<B>>,
        collector: Collector,
        sniff: Sniff,
        sniffed: Sniffed,
    ) -> Step<B> {
        let broken = |e: BoxError| {
            let why = "the connection failed while reading the initial response";
            Step::Finish(Err(Error::new(ErrorKind::Body, why).with_source(e)))
        };
        match (sniff, sniffed) {
            (_, Sniffed::Expired(expired)) => Step::Finish(Err(expired)),
            (_, Sniffed::Broken(e)) if self.polling == Polling::AcceptOnly => broken(e),
            (Sniff::Resource, Sniffed::Broken(e)) => broken(e),
            // Only the initial body could have settled the operation inline; the monitor still can.
            (Sniff::Monitor { kind, reference }, Sniffed::Broken(_)) => self.follow(
                kind,
                Some(&reference),
                parts,
                InitialBody::Read(Bytes::new(), None),
            ),
            // Too large or too slow to be a resource with a state: the monitor decides.
            (Sniff::Monitor { kind, reference }, Sniffed::Stopped) => {
                let (prefix, _) = collector.finish();
                self.follow(
                    kind,
                    Some(&reference),
                    parts,
                    InitialBody::Partial(prefix, body),
                )
            }
            (Sniff::Resource, Sniffed::Stopped) => {
                let (prefix, _) = collector.finish();
                Step::Finish(Ok(Response::from_parts(
                    parts,
                    ResponseBody::resumed(prefix, body),
                )))
            }
            (sniff, Sniffed::Complete) => {
                let (bytes, trailers) = collector.finish();
                let (state, detail) = match status::parse_resource(&bytes) {
                    Ok(resource) => (resource.provisioning_state, resource.error),
                    // Without a monitor only this body could tell whether the operation is done:
                    // JSON that cannot be read is not "no state", it cannot be judged.
                    Err(malformed)
                        if matches!(sniff, Sniff::Resource)
                            && status::meant_as_json_object(
                                &bytes,
                                headers::declares_json(&parts.headers),
                            ) =>
                    {
                        let why = format!("the initial response cannot be judged: {malformed}");
                        return self.malformed(why, parts, bytes);
                    }
                    // With a monitor, the initial body could only have settled the operation
                    // early; unreadable, it leaves the decision to the monitor.
                    Err(_) => (None, status::ErrorDetail::default()),
                };
                let state = state.as_deref();
                match (sniff, state.map(Phase::of)) {
                    (_, Some(Phase::Succeeded)) | (Sniff::Resource, None) => Step::Finish(Ok(
                        Response::from_parts(parts, ResponseBody::buffered(bytes, trailers)),
                    )),
                    (_, Some(phase @ (Phase::Failed | Phase::Canceled))) => {
                        Step::Finish(Err(ended(phase, parts, detail, state, bytes.clone())))
                    }
                    (Sniff::Resource, Some(Phase::Running)) => {
                        self.status = state.map(str::to_owned);
                        self.follow(
                            MonitorKind::Resource,
                            None,
                            parts,
                            InitialBody::Read(bytes, trailers),
                        )
                    }
                    (Sniff::Monitor { kind, reference }, None | Some(Phase::Running)) => self
                        .follow(
                            kind,
                            Some(&reference),
                            parts,
                            InitialBody::Read(bytes, trailers),
                        ),
                }
            }
        }
    }

    fn next_request<B: Default>(&mut self) -> Request<B> {
        let uri = match &self.target {
            Target::Poll => {
                self.polls = self.polls.saturating_add(1);
                self.monitor
                    .as_ref()
                    .map_or_else(|| self.uri.clone(), |(_, uri)| uri.clone())
            }
            Target::Final(uri) => uri.clone(),
        };
        let mut request = Request::new(B::default());
        *request.uri_mut() = uri;
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        *request.extensions_mut() = self.extensions.clone();
        request
    }

    /// Whether one more transient failure would end the operation.
    fn transient_exhausted(&self) -> bool {
        self.retries >= self.config.max_transient_retries
    }

    /// A poll or final GET failed in a way worth retrying: wait and send the same GET again,
    /// unless that has happened too often in a row. The error is built only if it ends the
    /// operation.
    fn on_transient<B>(
        &mut self,
        hint: Option<Duration>,
        failure: impl FnOnce() -> Error,
        drain: Option<B>,
    ) -> Step<B> {
        self.retries = self.retries.saturating_add(1);
        if self.retries > self.config.max_transient_retries {
            return Step::Finish(Err(self.fail(failure())));
        }
        if matches!(self.target, Target::Poll) {
            if let Err(e) = self.poll_budget() {
                return Step::Finish(Err(e));
            }
        }
        let delay = self
            .config
            .delays
            .retry(hint, self.retries, protocol::schedule::jitter());
        #[cfg(feature = "tracing")]
        tracing::warn!(
            parent: &self.span,
            attempt = self.retries,
            error = %failure(),
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "transient failure while following an operation; retrying"
        );
        match self.wait(delay) {
            Ok(()) => Step::Wait { drain },
            Err(e) => Step::Finish(Err(e)),
        }
    }

    /// A request in flight failed (a timeout, a broken body): past the deadline that ends the
    /// operation, otherwise it is a transient failure.
    fn on_failed_request<B>(&mut self, failure: Error) -> Step<B> {
        if self.past_deadline() {
            return Step::Finish(Err(self.fail(failure)));
        }
        self.on_transient(None, || failure, None)
    }

    fn on_reply<B>(&mut self, response: Response<B>) -> Step<B>
    where
        B: Body<Data = Bytes>,
    {
        let (parts, body) = response.into_parts();
        let status = parts.status;
        let hint = retry_after(&parts.headers, SystemTime::now);
        if let Target::Final(uri) = &self.target {
            self.final_uri = Some(uri.clone());
            return if status.is_success() {
                self.finish(parts, ResponseBody::streaming(body))
            } else if protocol::is_transient(status) && !self.transient_exhausted() {
                let failure = move || unexpected(parts, "the final GET", None);
                self.on_transient(hint, failure, Some(body))
            } else {
                self.read(parts, body, Purpose::ErrorBody)
            };
        }
        self.last_http_status = Some(status);
        let Some((kind, _)) = self.monitor else {
            return Step::Finish(Err(lost_state()));
        };
        match protocol::poll_reply(kind, status) {
            PollReply::ReadStatus => self.read(parts, body, Purpose::Status),
            PollReply::ReadResource => self.read(parts, body, Purpose::Resource),
            PollReply::Running => {
                self.retries = 0;
                match self.keep_polling(&parts.headers) {
                    Ok(()) => Step::Wait { drain: Some(body) },
                    Err(e) => Step::Finish(Err(e)),
                }
            }
            PollReply::Final => {
                self.retries = 0;
                self.finish(parts, ResponseBody::streaming(body))
            }
            PollReply::NoStatusBody => {
                let why = "the status monitor answered without a body";
                let error = Error::new(ErrorKind::MalformedStatus, why).with_response(
                    status,
                    parts.headers,
                    None,
                );
                Step::Finish(Err(self.fail(error)))
            }
            // The last straw is read, not drained: its body says why the server kept failing.
            PollReply::Transient if self.transient_exhausted() => {
                self.read(parts, body, Purpose::ErrorBody)
            }
            PollReply::Transient => {
                let failure = move || unexpected(parts, "a poll", None);
                self.on_transient(hint, failure, Some(body))
            }
            PollReply::Failed => self.read(parts, body, Purpose::FailureBody),
            PollReply::Unexpected => self.read(parts, body, Purpose::ErrorBody),
        }
    }

    /// Starts reading a poll response body, unless its declared length is already over the limit.
    fn read<B: Body>(&mut self, parts: response::Parts, body: B, purpose: Purpose) -> Step<B> {
        if too_large(&parts.headers, &body, self.config.max_status_body) {
            let error = match purpose {
                Purpose::ErrorBody => unexpected(parts, self.request_name(), None),
                Purpose::FailureBody => self.failed_by_status(parts, None),
                Purpose::Status | Purpose::Resource => self.too_large(parts),
            };
            return Step::Finish(Err(self.fail(error)));
        }
        Step::Read {
            parts,
            body,
            purpose,
        }
    }

    fn request_name(&self) -> &'static str {
        match self.target {
            Target::Final(_) => "the final GET",
            Target::Poll => "a poll",
        }
    }

    /// A `Location` or resource monitor answered a client error: the operation failed, and the
    /// answer (its error envelope, else `x-ms-error-code`) says why.
    fn failed_by_status(&self, parts: response::Parts, body: Option<Bytes>) -> Error {
        let monitor = self.monitor.as_ref().map_or("", |(kind, _)| kind.as_str());
        let what = format!("the {monitor} monitor answered {}", parts.status);
        answered(ErrorKind::Failed, parts, what, body)
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
        parts: response::Parts,
        collector: Collector,
        purpose: Purpose,
        read: Result<Read, Error>,
    ) -> Step<B> {
        match (purpose, read) {
            // An error answer ends the operation whatever happens to its body: keep what arrived.
            (Purpose::ErrorBody | Purpose::FailureBody, _) => {
                let (bytes, _) = collector.finish();
                let body = bytes.slice(..bytes.len().min(self.config.max_status_body));
                let error = match purpose {
                    Purpose::FailureBody => self.failed_by_status(parts, Some(body)),
                    _ => unexpected(parts, self.request_name(), Some(body)),
                };
                Step::Finish(Err(self.fail(error)))
            }
            (_, Err(failure)) => self.on_failed_request(failure),
            (_, Ok(Read::TooLarge)) => {
                let error = self.too_large(parts);
                Step::Finish(Err(self.fail(error)))
            }
            (Purpose::Status, Ok(Read::Complete)) => {
                let (bytes, trailers) = collector.finish();
                self.on_status(parts, bytes, trailers)
            }
            (Purpose::Resource, Ok(Read::Complete)) => {
                let (bytes, trailers) = collector.finish();
                self.on_resource(parts, bytes, trailers)
            }
        }
    }

    fn malformed<B>(&self, why: String, parts: response::Parts, bytes: Bytes) -> Step<B> {
        let error = Error::new(ErrorKind::MalformedStatus, why).with_response(
            parts.status,
            parts.headers,
            Some(bytes),
        );
        Step::Finish(Err(self.fail(error)))
    }

    fn on_status<B>(
        &mut self,
        parts: response::Parts,
        bytes: Bytes,
        trailers: Option<Box<HeaderMap>>,
    ) -> Step<B> {
        let parsed = match status::parse_status(&bytes) {
            Ok(parsed) => parsed,
            Err(malformed) => return self.malformed(malformed.0, parts, bytes.clone()),
        };
        self.retries = 0;
        let phase = Phase::of(&parsed.status);
        remember(&mut self.status, &parsed.status);
        if let Some(percent) = parsed.percent_complete {
            self.percent_complete = Some(percent);
        }
        if let Some(id) = &parsed.id {
            remember(&mut self.operation_id, id);
        }
        if let Some(name) = &parsed.name {
            remember(&mut self.operation_name, name);
        }
        match phase {
            Phase::Running => match self.keep_polling(&parts.headers) {
                Ok(()) => Step::Wait { drain: None },
                Err(e) => Step::Finish(Err(e)),
            },
            Phase::Failed | Phase::Canceled => {
                let error = ended(
                    phase,
                    parts,
                    parsed.error,
                    Some(&parsed.status),
                    bytes.clone(),
                );
                Step::Finish(Err(self.fail(error)))
            }
            Phase::Succeeded => {
                let Some((kind, _)) = self.monitor else {
                    return Step::Finish(Err(lost_state()));
                };
                let initial_location = self.initial_location.clone();
                let target = protocol::final_target(
                    &self.method,
                    kind,
                    self.via,
                    initial_location.as_ref().map(HeaderValue::as_bytes),
                    parsed.resource_location.as_deref().map(str::as_bytes),
                );
                let uri = match target {
                    FinalTarget::LastStatus => {
                        return self.finish(parts, ResponseBody::buffered(bytes, trailers))
                    }
                    FinalTarget::OriginalUri => Ok(self.uri.clone()),
                    FinalTarget::InitialLocation(reference) => self.admit(reference, None),
                    // Named by the status body just read: relative to the monitor that answered.
                    FinalTarget::ResourceLocation(reference) => {
                        let polled = self.monitor.as_ref().map(|(_, uri)| uri.clone());
                        self.admit(reference, polled.as_ref())
                    }
                };
                match uri {
                    Ok(uri) => {
                        self.target = Target::Final(uri);
                        Step::Send
                    }
                    Err(e) => Step::Finish(Err(e)),
                }
            }
        }
    }

    fn on_resource<B>(
        &mut self,
        parts: response::Parts,
        bytes: Bytes,
        trailers: Option<Box<HeaderMap>>,
    ) -> Step<B> {
        let resource = match status::parse_resource(&bytes) {
            Ok(resource) => resource,
            Err(malformed) => return self.malformed(malformed.0, parts, bytes.clone()),
        };
        self.retries = 0;
        let state = resource.provisioning_state.as_deref();
        if let Some(state) = state {
            remember(&mut self.status, state);
        }
        match state.map(Phase::of) {
            None | Some(Phase::Succeeded) => {
                self.finish(parts, ResponseBody::buffered(bytes, trailers))
            }
            Some(phase @ (Phase::Failed | Phase::Canceled)) => {
                let error = ended(phase, parts, resource.error, state, bytes.clone());
                Step::Finish(Err(self.fail(error)))
            }
            Some(Phase::Running) => match self.keep_polling(&parts.headers) {
                Ok(()) => Step::Wait { drain: None },
                Err(e) => Step::Finish(Err(e)),
            },
        }
    }
}

/// An unneeded body is drained, so its connection can be reused, during the wait that follows
/// and for at most this long beyond it; a body still arriving then is dropped with its connection.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// `start + timeout`; no deadline when that is past what `Instant` can hold.
fn deadline_after(start: Instant, timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|timeout| start.checked_add(timeout))
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Keeps `value` in `slot`, allocating only when it changed since the last poll.
fn remember(slot: &mut Option<String>, value: &str) {
    if slot.as_deref() != Some(value) {
        *slot = Some(value.to_owned());
    }
}

fn far_future(now: Instant) -> Instant {
    // About 30 years: `Instant` has no MAX, and nothing waits that long after clamping anyway.
    now + Duration::from_secs(86_400 * 365 * 30)
}

/// Whether a body is declared larger than `limit`, so it need not be read to be refused.
fn too_large<B: Body>(headers: &HeaderMap, body: &B, limit: usize) -> bool {
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    let hint = body.size_hint();
    // A body that knows its length (hyper's, from `Content-Length`) need not have it looked up.
    hint.lower() > limit
        || hint.exact().is_none() && headers::content_length(headers).is_some_and(|len| len > limit)
}

fn unexpected(parts: response::Parts, what: &str, body: Option<Bytes>) -> Error {
    let what = format!("{what} answered {}", parts.status);
    answered(ErrorKind::UnexpectedStatus, parts, what, body)
}

/// The error of a response that ended the operation by its HTTP status, with the service's
/// details from the body's error envelope, else from `x-ms-error-code`.
fn answered(kind: ErrorKind, parts: response::Parts, what: String, body: Option<Bytes>) -> Error {
    let detail = body
        .as_deref()
        .map(status::parse_error_envelope)
        .unwrap_or_default();
    let code = error_code(detail.code, &parts.headers);
    let message = detail.message.map(Cow::into_owned);
    Error::new(kind, what)
        .with_detail(code, message)
        .with_response(parts.status, parts.headers, body)
}

/// The service's error code: the body's, else the `x-ms-error-code` header's.
fn error_code(from_body: Option<Cow<'_, str>>, headers: &HeaderMap) -> Option<String> {
    from_body.map(Cow::into_owned).or_else(|| {
        headers
            .get(headers::X_MS_ERROR_CODE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

/// The error of an operation that reported `Failed` or `Canceled`, with the response that said so.
fn ended(
    phase: Phase,
    parts: response::Parts,
    detail: status::ErrorDetail<'_>,
    reported: Option<&str>,
    body: Bytes,
) -> Error {
    let kind = if phase == Phase::Canceled {
        ErrorKind::Canceled
    } else {
        ErrorKind::Failed
    };
    let code = error_code(detail.code, &parts.headers);
    let context = reported
        .map(|status| format!("the server reported {status:?}"))
        .unwrap_or_default();
    Error::new(kind, context)
        .with_detail(code, detail.message.map(|m| m.into_owned()))
        .with_response(parts.status, parts.headers, Some(body))
}

impl<S, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Initial { .. } => "Initial",
            State::Sniffing { .. } => "Sniffing",
            State::Draining { .. } => "Draining",
            State::Waiting => "Waiting",
            State::Ready => "Ready",
            State::Requesting { .. } => "Requesting",
            State::Reading { .. } => "Reading",
            State::Done => "Done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("method", &self.op.method)
            .field("uri", &self.op.uri)
            .field("monitor", &self.op.monitor)
            .field("polls", &self.op.polls)
            .finish()
    }
}
