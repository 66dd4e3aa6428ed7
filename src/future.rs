//! The response future: one state machine that sends the initial request once, then polls.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

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
use crate::options::{FinalStateVia, Polling};
use crate::protocol::status::{self, Phase};
use crate::protocol::url::{Base, Rejection};
use crate::protocol::{self, headers, retry_after::retry_after, FinalTarget, Initial, PollReply};

pin_project! {
    /// The future of [`LongRunning`](crate::LongRunning): resolves with the operation's final
    /// response, or the [`Error`] that ended it. Dropping it stops the operation's polling at once.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S::Future, ResBody>,
        // One timer serves every state: the next poll's time while waiting, the deadline (and
        // poll timeout) while a request is in flight. It is created on first use.
        #[pin]
        timer: Option<Sleep>,
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
        // Until `op.wake_at`, while draining a body we do not need so the connection is reused.
        Waiting { #[pin] drain: Option<B> },
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

/// Why a poll response body is being read.
#[derive(Debug, Clone, Copy)]
enum Purpose {
    Status,
    Resource,
    /// The body of an error response, kept (bounded) in the error.
    ErrorBody,
}

/// What the next request is.
#[derive(Debug)]
enum Target {
    Poll,
    Final(Uri),
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
    initial_location: Option<HeaderValue>,
    resource_location: Option<String>,
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
    // When the timer is set for, if it is.
    wake_at: Instant,
    timer_at: Option<Instant>,
    _request_body: PhantomData<fn() -> ReqBody>,
}

impl<S, ReqBody, ResBody> ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    /// Sends `req` through `service`, which the caller has driven to readiness.
    pub(crate) fn start(mut service: S, config: Arc<Config>, mut req: Request<ReqBody>) -> Self {
        let started = Instant::now();
        // Our own extensions steer this layer only; layers below never see them.
        let polling = req.extensions_mut().remove::<Polling>().unwrap_or_default();
        let via = req.extensions_mut().remove::<FinalStateVia>();
        let (headers, extensions) = match polling {
            Polling::Disabled => (HeaderMap::new(), Extensions::new()),
            Polling::Enabled => (
                headers::for_polls(req.headers().clone()),
                req.extensions().clone(),
            ),
        };
        let (method, uri, version) = (req.method().clone(), req.uri().clone(), req.version());
        let deadline = config.timeout.map(|t| started + t);
        let future = service.call(req);
        let mut op = Operation {
            service,
            config,
            polling,
            started,
            deadline,
            method,
            uri,
            version,
            headers,
            extensions,
            via,
            base: None,
            monitor: None,
            initial_location: None,
            resource_location: None,
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
            wake_at: started,
            timer_at: None,
            _request_body: PhantomData,
        };
        let timer = deadline.map(|at| {
            op.timer_at = Some(at);
            tokio::time::sleep_until(at)
        });
        ResponseFuture {
            state: State::Initial { future },
            timer,
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
        loop {
            let step = match this.state.as_mut().project() {
                StateProj::Initial { future } => match future.poll(cx) {
                    Poll::Ready(Ok(response)) => op.on_initial(response),
                    Poll::Ready(Err(e)) => Step::Finish(Err(Error::service(e))),
                    Poll::Pending => match op.on_timer(this.timer.as_mut(), cx) {
                        Some(expired) => Step::Finish(Err(expired)),
                        None => return Poll::Pending,
                    },
                },
                StateProj::Sniffing {
                    body, collector, ..
                } => match collector.poll_read(body.as_mut(), op.config.max_status_body, cx) {
                    Poll::Ready(read) => match this.state.as_mut().project_replace(State::Done) {
                        StateReplace::Sniffing {
                            parts,
                            body,
                            collector,
                            sniff,
                        } => op.on_sniffed(parts, body, collector, sniff, read),
                        _ => Step::Finish(Err(lost_state())),
                    },
                    Poll::Pending => match op.on_timer(this.timer.as_mut(), cx) {
                        Some(expired) => Step::Finish(Err(expired)),
                        None => return Poll::Pending,
                    },
                },
                StateProj::Waiting { mut drain } => {
                    if let Some(body) = drain.as_mut().as_pin_mut() {
                        let mut budget = op.config.max_status_body;
                        if poll_drain(body, &mut budget, cx).is_ready() {
                            drain.set(None);
                        }
                    }
                    if op.wake_at > Instant::now() && !op.timer_fired(this.timer.as_mut(), cx) {
                        return Poll::Pending;
                    }
                    Step::Send
                }
                StateProj::Ready => match op.service.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        let request = op.next_request();
                        let future = op.service.call(request);
                        this.state.set(State::Requesting { future });
                        op.arm(this.timer.as_mut(), op.request_deadline());
                        continue;
                    }
                    Poll::Ready(Err(e)) => Step::Finish(Err(op.fail(Error::service(e)))),
                    Poll::Pending => match op.on_timer(this.timer.as_mut(), cx) {
                        Some(expired) => Step::Finish(Err(expired)),
                        None => return Poll::Pending,
                    },
                },
                StateProj::Requesting { future } => match future.poll(cx) {
                    Poll::Ready(Ok(response)) => op.on_reply(response),
                    Poll::Ready(Err(e)) => op.on_transient(None, Error::service(e), None),
                    Poll::Pending => match op.on_timer(this.timer.as_mut(), cx) {
                        Some(expired) => op.on_request_timer(expired),
                        None => return Poll::Pending,
                    },
                },
                StateProj::Reading {
                    body,
                    parts,
                    collector,
                    purpose,
                } => {
                    let limit = op.config.max_status_body;
                    match collector.poll_read(body, limit, cx) {
                        Poll::Ready(Ok(read)) => {
                            let parts = std::mem::replace(parts, empty_parts());
                            let collector = std::mem::take(collector);
                            op.on_read(parts, collector, *purpose, read)
                        }
                        Poll::Ready(Err(e)) => {
                            let error = Error::new(
                                ErrorKind::Body,
                                "the connection failed while reading a poll response",
                            )
                            .with_source(e.into());
                            op.on_transient(None, error, None)
                        }
                        Poll::Pending => match op.on_timer(this.timer.as_mut(), cx) {
                            Some(expired) => op.on_request_timer(expired),
                            None => return Poll::Pending,
                        },
                    }
                }
                StateProj::Done => {
                    return Poll::Ready(Err(Error::new(ErrorKind::PolledAfterCompletion, "")))
                }
            };
            match step {
                Step::Finish(result) => {
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
                }
                Step::Wait { drain } => {
                    this.state.set(State::Waiting { drain });
                    op.arm(this.timer.as_mut(), Some(op.wake_at));
                }
                Step::Send => {
                    this.state.set(State::Ready);
                    op.arm(this.timer.as_mut(), op.deadline);
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

fn lost_state() -> Error {
    // `project_replace` inside a state's own arm always finds that state.
    Error::new(ErrorKind::PolledAfterCompletion, "internal state lost")
}

fn empty_parts() -> response::Parts {
    Response::new(()).into_parts().0
}

impl<S, ReqBody> Operation<S, ReqBody> {
    /// Arms the timer for `at` (or disarms it), resetting the one `Sleep` rather than making a new
    /// one.
    fn arm(&mut self, mut timer: Pin<&mut Option<Sleep>>, at: Option<Instant>) {
        if self.timer_at == at {
            return;
        }
        self.timer_at = at;
        if let Some(at) = at {
            match timer.as_mut().as_pin_mut() {
                Some(sleep) => sleep.reset(at),
                None => timer.set(Some(tokio::time::sleep_until(at))),
            }
        }
    }

    fn timer_fired(&self, timer: Pin<&mut Option<Sleep>>, cx: &mut Context<'_>) -> bool {
        self.timer_at.is_some()
            && timer
                .as_pin_mut()
                .is_some_and(|sleep| sleep.poll(cx).is_ready())
    }

    /// While a request is in flight: `Some` error once the timer fired.
    fn on_timer(&mut self, timer: Pin<&mut Option<Sleep>>, cx: &mut Context<'_>) -> Option<Error> {
        if !self.timer_fired(timer, cx) {
            return None;
        }
        self.timer_at = None;
        let past_deadline = self.deadline.is_some_and(|d| Instant::now() >= d);
        let error = if past_deadline {
            Error::new(ErrorKind::TimedOut, "the operation's deadline passed")
        } else {
            Error::new(
                ErrorKind::TimedOut,
                "a poll did not answer within the poll timeout",
            )
        };
        Some(self.fail(error))
    }

    /// The deadline of a request being sent now: the poll timeout or the operation's deadline,
    /// whichever comes first.
    fn request_deadline(&self) -> Option<Instant> {
        let poll_deadline = self.config.poll_timeout.map(|t| Instant::now() + t);
        match (poll_deadline, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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

    /// Attaches what happened so far to an error.
    fn fail(&self, error: Error) -> Error {
        match self.info() {
            Some(info) => error.with_operation(info),
            None => error,
        }
    }

    fn finish<B>(&self, parts: response::Parts, body: ResponseBody<B>) -> Step<B> {
        let mut response = Response::from_parts(parts, body);
        if let Some(info) = self.info() {
            response.extensions_mut().insert(info);
        }
        Step::Finish(Ok(response))
    }

    fn base(&mut self) -> Result<&Base, Rejection> {
        if self.base.is_none() {
            self.base = Some(Base::new(&self.uri)?);
        }
        match &self.base {
            Some(base) => Ok(base),
            None => Err(Rejection::Invalid(
                "the original URI could not be parsed".into(),
            )),
        }
    }

    /// Resolves and validates a URL the server named, and withholds credentials and extensions
    /// from it if it is on another origin (for good: they do not come back on a later hop).
    fn admit(&mut self, reference: &[u8]) -> Result<Uri, Error> {
        let policy = self.config.origins.clone();
        let admitted = self
            .base()
            .and_then(|base| base.admit(reference, &policy))
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
        }
        Ok(admitted.uri)
    }

    /// Checks the bounds and sets the time of the next poll.
    fn schedule_poll(&mut self, hint: Option<std::time::Duration>) -> Result<(), Error> {
        if self.polls >= self.config.max_polls {
            let why = format!("still running after {} polls", self.polls);
            return Err(self.fail(Error::new(ErrorKind::TooManyPolls, why)));
        }
        let delay = self.config.delays.next_poll(hint, self.unhinted_waits);
        if hint.is_none() {
            self.unhinted_waits = self.unhinted_waits.saturating_add(1);
        }
        self.wait(delay)
    }

    fn wait(&mut self, delay: std::time::Duration) -> Result<(), Error> {
        let at = Instant::now().checked_add(delay).unwrap_or_else(far_future);
        if let Some(deadline) = self.deadline {
            if at > deadline {
                let why = format!(
                    "the next request would be after the operation's deadline (in {delay:?})"
                );
                return Err(self.fail(Error::new(ErrorKind::TimedOut, why)));
            }
        }
        self.wake_at = at;
        Ok(())
    }

    /// Starts following a monitor named by the initial response.
    fn follow<B>(
        &mut self,
        kind: MonitorKind,
        reference: Option<&HeaderValue>,
        initial: &HeaderMap,
        drain: Option<B>,
    ) -> Step<B> {
        let uri = match reference {
            Some(reference) => match self.admit(reference.as_bytes()) {
                Ok(uri) => uri,
                Err(e) => return Step::Finish(Err(e)),
            },
            None => self.uri.clone(),
        };
        self.monitor = Some((kind, uri));
        // The initial response's hint governs the first poll (PROTOCOL §2).
        match self.schedule_poll(retry_after(initial, SystemTime::now())) {
            Ok(()) => Step::Wait { drain },
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
                    MonitorKind::AsyncOperation | MonitorKind::OperationLocation
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
                    self.follow(kind, Some(&reference), &parts.headers, Some(body))
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
        read: Result<Read, B::Error>,
    ) -> Step<B>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        match (sniff, read) {
            // Too large to be a status, or broken: not settled inline, so follow the monitor.
            (Sniff::Monitor { kind, reference }, Ok(Read::TooLarge) | Err(_)) => {
                self.follow(kind, Some(&reference), &parts.headers, None::<B>)
            }
            (Sniff::Monitor { kind, reference }, Ok(Read::Complete)) => {
                let (bytes, trailers) = collector.finish();
                // The initial body is not a status body: anything unreadable just means "no
                // inline state", and the monitor decides.
                let state = status::parse_resource(&bytes)
                    .ok()
                    .and_then(|r| Some((Phase::of(r.provisioning_state.as_deref()?), r)));
                match state {
                    Some((Phase::Succeeded, _)) => {
                        self.finish(parts, ResponseBody::buffered(bytes, trailers))
                    }
                    Some((phase @ (Phase::Failed | Phase::Canceled), resource)) => {
                        let error = operation_error(
                            phase,
                            &parts,
                            resource.error,
                            resource.provisioning_state.as_deref(),
                        );
                        Step::Finish(Err(error.with_response(
                            parts.status,
                            parts.headers,
                            Some(bytes.clone()),
                        )))
                    }
                    _ => self.follow(kind, Some(&reference), &parts.headers, None::<B>),
                }
            }
            (Sniff::Resource, Ok(Read::TooLarge)) => {
                let (prefix, _) = collector.finish();
                Step::Finish(Ok(Response::from_parts(
                    parts,
                    ResponseBody::resumed(prefix, body),
                )))
            }
            (Sniff::Resource, Err(e)) => Step::Finish(Err(Error::new(
                ErrorKind::Body,
                "the connection failed while reading the initial response",
            )
            .with_source(e.into()))),
            (Sniff::Resource, Ok(Read::Complete)) => {
                let (bytes, trailers) = collector.finish();
                let Ok(resource) = status::parse_resource(&bytes) else {
                    // Not JSON after all: an ordinary response.
                    return Step::Finish(Ok(Response::from_parts(
                        parts,
                        ResponseBody::buffered(bytes, trailers),
                    )));
                };
                match resource.provisioning_state.as_deref().map(Phase::of) {
                    None | Some(Phase::Succeeded) => Step::Finish(Ok(Response::from_parts(
                        parts,
                        ResponseBody::buffered(bytes, trailers),
                    ))),
                    Some(phase @ (Phase::Failed | Phase::Canceled)) => {
                        let error = operation_error(
                            phase,
                            &parts,
                            resource.error,
                            resource.provisioning_state.as_deref(),
                        );
                        Step::Finish(Err(error.with_response(
                            parts.status,
                            parts.headers,
                            Some(bytes.clone()),
                        )))
                    }
                    Some(Phase::Running) => {
                        self.status = resource.provisioning_state.map(|s| s.into_owned());
                        self.follow(MonitorKind::Resource, None, &parts.headers, None::<B>)
                    }
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

    /// A poll or final GET failed in a way worth retrying: wait and send the same GET again,
    /// unless that has happened too often in a row.
    fn on_transient<B>(
        &mut self,
        hint: Option<std::time::Duration>,
        failure: Error,
        drain: Option<B>,
    ) -> Step<B> {
        self.retries = self.retries.saturating_add(1);
        if self.retries > self.config.max_transient_retries {
            return Step::Finish(Err(self.fail(failure)));
        }
        if matches!(self.target, Target::Poll) && self.polls >= self.config.max_polls {
            let why = format!("still running after {} polls", self.polls);
            return Step::Finish(Err(self.fail(Error::new(ErrorKind::TooManyPolls, why))));
        }
        let delay = self
            .config
            .delays
            .retry(hint, self.retries, protocol::schedule::jitter());
        match self.wait(delay) {
            Ok(()) => Step::Wait { drain },
            Err(e) => Step::Finish(Err(e)),
        }
    }

    /// The timer fired while a request was in flight: the deadline ends the operation, a poll
    /// timeout is a transient failure.
    fn on_request_timer<B>(&mut self, expired: Error) -> Step<B> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Step::Finish(Err(expired));
        }
        self.on_transient(None, expired, None)
    }

    fn on_reply<B>(&mut self, response: Response<B>) -> Step<B>
    where
        B: Body<Data = Bytes>,
    {
        let (parts, body) = response.into_parts();
        let status = parts.status;
        let hint = || retry_after(&parts.headers, SystemTime::now());
        if let Target::Final(uri) = &self.target {
            self.final_uri = Some(uri.clone());
            return if status.is_success() {
                self.finish(parts, ResponseBody::streaming(body))
            } else if protocol::is_transient(status) {
                let failure = unexpected(&parts, "the final GET");
                self.on_transient(hint(), failure, Some(body))
            } else {
                self.read(parts, body, Purpose::ErrorBody)
            };
        }
        self.last_http_status = Some(status);
        let Some((kind, _)) = self.monitor else {
            return Step::Finish(Err(lost_state()));
        };
        let reply = protocol::poll_reply(kind, status);
        if !matches!(reply, PollReply::Transient | PollReply::Unexpected) {
            if let Some(moved) = protocol::moved_monitor(kind, &parts.headers) {
                match self.admit(moved.as_bytes()) {
                    Ok(uri) => self.monitor = Some((kind, uri)),
                    Err(e) => return Step::Finish(Err(e)),
                }
            }
        }
        match reply {
            PollReply::ReadStatus => self.read(parts, body, Purpose::Status),
            PollReply::ReadResource => self.read(parts, body, Purpose::Resource),
            PollReply::Running => {
                self.retries = 0;
                match self.schedule_poll(hint()) {
                    Ok(()) => Step::Wait { drain: Some(body) },
                    Err(e) => Step::Finish(Err(e)),
                }
            }
            PollReply::Final => {
                self.retries = 0;
                self.finish(parts, ResponseBody::streaming(body))
            }
            PollReply::NoStatusBody => {
                let error = Error::new(
                    ErrorKind::MalformedStatus,
                    "the status monitor answered without a body",
                )
                .with_response(status, parts.headers, None);
                Step::Finish(Err(self.fail(error)))
            }
            PollReply::Transient => {
                let failure = unexpected(&parts, "a poll");
                self.on_transient(hint(), failure, Some(body))
            }
            PollReply::Unexpected => self.read(parts, body, Purpose::ErrorBody),
        }
    }

    /// Starts reading a poll response body, unless its declared length is already over the limit.
    fn read<B: Body>(&mut self, parts: response::Parts, body: B, purpose: Purpose) -> Step<B> {
        let limit = self.config.max_status_body;
        if too_large(&parts.headers, &body, limit) {
            return match purpose {
                Purpose::ErrorBody => {
                    let error = unexpected(&parts, "a request").with_response(
                        parts.status,
                        parts.headers,
                        None,
                    );
                    Step::Finish(Err(self.fail(error)))
                }
                Purpose::Status | Purpose::Resource => Step::Finish(Err(self.too_large(parts))),
            };
        }
        Step::Read {
            parts,
            body,
            purpose,
        }
    }

    fn too_large(&self, parts: response::Parts) -> Error {
        let why = format!("over the limit of {} bytes", self.config.max_status_body);
        let error = Error::new(ErrorKind::StatusBodyTooLarge, why).with_response(
            parts.status,
            parts.headers,
            None,
        );
        self.fail(error)
    }

    fn on_read<B>(
        &mut self,
        parts: response::Parts,
        collector: Collector,
        purpose: Purpose,
        read: Read,
    ) -> Step<B> {
        match (purpose, read) {
            (Purpose::ErrorBody, _) => {
                let what = if matches!(self.target, Target::Final(_)) {
                    "the final GET"
                } else {
                    "a poll"
                };
                let (bytes, _) = collector.finish();
                let body = bytes.slice(..bytes.len().min(self.config.max_status_body));
                let error =
                    unexpected(&parts, what).with_response(parts.status, parts.headers, Some(body));
                Step::Finish(Err(self.fail(error)))
            }
            (Purpose::Status | Purpose::Resource, Read::TooLarge) => {
                Step::Finish(Err(self.too_large(parts)))
            }
            (Purpose::Status, Read::Complete) => {
                let (bytes, trailers) = collector.finish();
                self.on_status(parts, bytes, trailers)
            }
            (Purpose::Resource, Read::Complete) => {
                let (bytes, trailers) = collector.finish();
                self.on_resource(parts, bytes, trailers)
            }
        }
    }

    fn on_status<B>(
        &mut self,
        parts: response::Parts,
        bytes: Bytes,
        trailers: Option<HeaderMap>,
    ) -> Step<B> {
        let parsed = match status::parse_status(&bytes) {
            Ok(parsed) => parsed,
            Err(malformed) => {
                let error = Error::new(ErrorKind::MalformedStatus, malformed.0).with_response(
                    parts.status,
                    parts.headers,
                    Some(bytes.clone()),
                );
                return Step::Finish(Err(self.fail(error)));
            }
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
            Phase::Running => {
                match self.schedule_poll(retry_after(&parts.headers, SystemTime::now())) {
                    Ok(()) => Step::Wait { drain: None },
                    Err(e) => Step::Finish(Err(e)),
                }
            }
            Phase::Failed | Phase::Canceled => {
                let error = operation_error(phase, &parts, parsed.error, Some(&parsed.status));
                let error = error.with_response(parts.status, parts.headers, Some(bytes.clone()));
                Step::Finish(Err(self.fail(error)))
            }
            Phase::Succeeded => {
                self.resource_location = parsed.resource_location.map(|r| r.into_owned());
                let Some((kind, _)) = self.monitor else {
                    return Step::Finish(Err(lost_state()));
                };
                let target = protocol::final_target(
                    &self.method,
                    kind,
                    self.via,
                    self.initial_location.is_some(),
                    self.resource_location.is_some(),
                );
                let uri = match target {
                    FinalTarget::LastStatus => {
                        return self.finish(parts, ResponseBody::buffered(bytes, trailers));
                    }
                    FinalTarget::OriginalUri => Ok(self.uri.clone()),
                    FinalTarget::InitialLocation => {
                        let location = self
                            .initial_location
                            .clone()
                            .unwrap_or(HeaderValue::from_static(""));
                        self.admit(location.as_bytes())
                    }
                    FinalTarget::ResourceLocation => {
                        let location = self.resource_location.clone().unwrap_or_default();
                        self.admit(location.as_bytes())
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
        trailers: Option<HeaderMap>,
    ) -> Step<B> {
        let resource = match status::parse_resource(&bytes) {
            Ok(resource) => resource,
            Err(malformed) => {
                let error = Error::new(ErrorKind::MalformedStatus, malformed.0).with_response(
                    parts.status,
                    parts.headers,
                    Some(bytes.clone()),
                );
                return Step::Finish(Err(self.fail(error)));
            }
        };
        self.retries = 0;
        let phase = resource.provisioning_state.as_deref().map(Phase::of);
        if let Some(state) = &resource.provisioning_state {
            remember(&mut self.status, state);
        }
        match phase {
            None | Some(Phase::Succeeded) => {
                self.finish(parts, ResponseBody::buffered(bytes, trailers))
            }
            Some(phase @ (Phase::Failed | Phase::Canceled)) => {
                let error = operation_error(
                    phase,
                    &parts,
                    resource.error,
                    resource.provisioning_state.as_deref(),
                );
                let error = error.with_response(parts.status, parts.headers, Some(bytes.clone()));
                Step::Finish(Err(self.fail(error)))
            }
            Some(Phase::Running) => {
                match self.schedule_poll(retry_after(&parts.headers, SystemTime::now())) {
                    Ok(()) => Step::Wait { drain: None },
                    Err(e) => Step::Finish(Err(e)),
                }
            }
        }
    }
}

/// Keeps `value` in `slot`, allocating only when it changed since the last poll.
fn remember(slot: &mut Option<String>, value: &str) {
    if slot.as_deref() != Some(value) {
        *slot = Some(value.to_owned());
    }
}

fn far_future() -> Instant {
    // About 30 years: `Instant` has no MAX, and nothing waits that long after clamping anyway.
    Instant::now() + std::time::Duration::from_secs(86_400 * 365 * 30)
}

/// Whether a body is declared larger than `limit`, so it need not be read to be refused.
fn too_large<B: Body>(headers: &HeaderMap, body: &B, limit: usize) -> bool {
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    headers::content_length(headers).is_some_and(|len| len > limit)
        || body.size_hint().lower() > limit
}

fn unexpected(parts: &response::Parts, what: &str) -> Error {
    Error::new(
        ErrorKind::UnexpectedStatus,
        format!("{what} answered {}", parts.status),
    )
    .with_response(parts.status, parts.headers.clone(), None)
}

/// The error of an operation that reported `Failed` or `Canceled`.
fn operation_error(
    phase: Phase,
    parts: &response::Parts,
    detail: status::ErrorDetail<'_>,
    reported: Option<&str>,
) -> Error {
    let kind = if phase == Phase::Canceled {
        ErrorKind::Canceled
    } else {
        ErrorKind::Failed
    };
    let code = detail.code.map(|c| c.into_owned()).or_else(|| {
        parts
            .headers
            .get(headers::X_MS_ERROR_CODE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let context = match reported {
        Some(status) => format!("the server reported {status:?}"),
        None => String::new(),
    };
    Error::new(kind, context).with_detail(code, detail.message.map(|m| m.into_owned()))
}

impl<S, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Initial { .. } => "Initial",
            State::Sniffing { .. } => "Sniffing",
            State::Waiting { .. } => "Waiting",
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
