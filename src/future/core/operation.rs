//! The operation's life before and around its polls: how the future starts (a request, a
//! resumed or canceled token, a step), what the initial response leads to, and the details every
//! error and progress update carries.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{response, HeaderMap, Request, Response};
use http_body::Body;
use tokio::time::Sleep;

use crate::body::{Collector, Read, ResponseBody};
use crate::config::Config;
use crate::dialect::{Dialect, ErrorDetail, Follow, InitialBody, InitialHead, Observer, PollAt};
use crate::error::{BoxError, Error, ErrorKind};
use crate::future::clock::Clock;
use crate::future::ledger::{Ledger, Target};
use crate::future::original::Original;
use crate::options::Polling;
use crate::progress::Progress;
use crate::protocol::headers;
use crate::telemetry::{Outcome, Start, Telemetry};
use crate::token::ResumeToken;

use super::{Begin, Follower, OpeningBody, Sniffed, Unjudged};

impl<D: Dialect> Follower<D> {
    pub(super) fn new<B>(
        config: Arc<Config>,
        dialect: D,
        req: &mut Request<B>,
        polling: Polling,
    ) -> Self {
        let original = Original::of(req, polling);
        Follower::with(config, dialect, original, polling)
    }

    pub(super) fn with(
        config: Arc<Config>,
        dialect: D,
        original: Original,
        polling: Polling,
    ) -> Self {
        Follower {
            clock: Clock::new(config.timeout, config.poll_timeout),
            dialect,
            config,
            original,
            polling,
            progress: None,
            telemetry: Telemetry::none(),
        }
    }

    /// The answer of a future polled after it completed.
    pub(super) fn after_completion() -> Error {
        Error::new(ErrorKind::PolledAfterCompletion, "")
    }

    /// Takes over the operation of `token` to cancel it, and makes `req` its cancel request:
    /// the URL admitted by the origin policy, the headers polls repeat. Nothing is sent.
    pub(super) fn cancel<R>(
        &mut self,
        token: &ResumeToken,
        req: &mut Request<R>,
    ) -> Result<Ledger<D::Monitor>, Error> {
        let mut ledger = self.adopt(token, Start::Cancel)?;
        let Some(spec) = token.cancel_spec() else {
            let why = "the operation's dialect has no cancel request, and none was attached";
            return Err(self.fail(&ledger, Error::new(ErrorKind::CancelUnsupported, why)));
        };
        let admitted = self
            .original
            .admit_reference(spec.url.as_bytes(), None, &self.config);
        *req.uri_mut() = admitted.map_err(|error| self.fail(&ledger, error))?;
        self.original.dress(req, &self.config.withheld);
        ledger.target = Target::Cancel;
        Ok(ledger)
    }

    /// Takes over the operation a token describes. Its URLs pass this layer's origin policy,
    /// judged against the token's own original URI; its polls and time count against this
    /// layer's bounds, which are checked before anything is sent.
    pub(super) fn adopt(
        &mut self,
        token: &ResumeToken,
        start: Start,
    ) -> Result<Ledger<D::Monitor>, Error> {
        let resumption = token.resumption(&self.dialect)?;
        self.original.adopt(
            resumption.method,
            resumption.uri,
            resumption.headers,
            &self.config.withheld,
        );
        let name = self.dialect.name();
        let (method, uri) = (&self.original.method, &self.original.uri);
        self.telemetry = Telemetry::start(name, start, method, uri);
        // Linked while the span is new, so that samplers see the link too.
        if let Some(start) = &resumption.trace {
            self.telemetry.link_to_start(start);
        }
        self.clock.rewind(resumption.elapsed);
        // The URL's own error (its kind, the URL) is the cause; this error says where it was.
        let untrusted = |e: Error| {
            let why = "a URL in the token is refused by this layer's origin policy";
            Error::new(ErrorKind::InvalidResumeToken, why).with_source(Box::new(e))
        };
        let policy = &self.config;
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
        ledger.observed.state = resumption.state;
        ledger.carried_cancel = resumption.cancel;
        ledger.trace = resumption.trace;
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

    pub(super) fn trace(&mut self, ledger: &Ledger<D::Monitor>) {
        let dialect = self.dialect.token_dialect(&ledger.monitor);
        self.telemetry
            .followed(dialect, ledger.kind, &ledger.url, ledger.polls);
    }

    /// The future ends before following an operation to its end: a response that is not an
    /// operation's, one handed back (`Polling::AcceptOnly`), or an error.
    pub(super) fn unfollowed_end<T>(&mut self, result: &Result<T, &Error>) {
        let outcome = match result {
            Ok(_) if self.telemetry.is_following() => Outcome::Running,
            Ok(_) => Outcome::NotLongRunning,
            Err(error) => Outcome::of_error(error),
        };
        let observed = Default::default();
        let elapsed = self.clock.elapsed();
        let error = result.as_ref().err().copied();
        // An error after a token was adopted counts the token's polls; nothing else has any.
        let polls = error
            .and_then(Error::operation)
            .map_or(0, |info| info.polls);
        self.telemetry
            .ended(outcome, error, polls, &observed, elapsed);
    }

    /// Attaches what happened so far to an error that ends the operation and, unless the
    /// operation is known to have ended, a token to continue it.
    pub(super) fn fail(&self, ledger: &Ledger<D::Monitor>, error: Error) -> Error {
        let error = error.with_operation(ledger.info(self.clock.elapsed()));
        if error.is_operation_error() {
            return error;
        }
        let token = ledger.token(
            &self.dialect,
            &self.original,
            &self.config,
            self.clock.elapsed(),
        );
        error.with_resume_token(token)
    }

    /// The result of following the operation: an error gets the operation's details, once, here.
    pub(super) fn exit<B>(
        &mut self,
        ledger: &Ledger<D::Monitor>,
        result: Result<Response<ResponseBody<B>>, Error>,
    ) -> Result<Response<ResponseBody<B>>, Error> {
        let result = result.map_err(|e| self.fail(ledger, e));
        self.conclude(ledger, &result);
        result
    }

    /// Tells the observers where the operation stands.
    pub(super) fn observe(
        &self,
        ledger: &Ledger<D::Monitor>,
        next_poll_in: Option<Duration>,
        finished: bool,
    ) {
        let Some(sender) = self.progress.as_ref().filter(|p| p.is_observed()) else {
            return;
        };
        let elapsed = self.clock.elapsed();
        let mut resume_token = ledger.token(&self.dialect, &self.original, &self.config, elapsed);
        if let Some(wait) = next_poll_in {
            resume_token = resume_token.with_next_poll(wait, ledger.hinted);
        }
        let progress = Progress {
            operation: ledger.info(elapsed),
            next_poll_in,
            finished,
            resume_token,
        };
        sender.send(progress);
    }

    /// The future is about to complete with `result`.
    pub(super) fn conclude<B>(
        &mut self,
        ledger: &Ledger<D::Monitor>,
        result: &Result<Response<B>, Error>,
    ) {
        let (outcome, error) = (Outcome::of(result), result.as_ref().err());
        let elapsed = self.clock.elapsed();
        self.telemetry
            .ended(outcome, error, ledger.polls, &ledger.observed, elapsed);
        self.observe(ledger, None, true);
    }

    /// Starts following the operation `follow` names.
    pub(super) fn track(
        &mut self,
        follow: Follow<'_, D::Monitor>,
    ) -> Result<Ledger<D::Monitor>, Error> {
        let url = self.original.admit(&follow.poll_at, None, &self.config)?;
        let reference = match follow.poll_at {
            PollAt::Reference(reference) | PollAt::FromOriginal(reference) => {
                Some(reference.into_owned())
            }
            PollAt::OriginalUri => None,
        };
        let kind = self.dialect.kind(&follow.monitor);
        let mut ledger = Ledger::new(follow.monitor, kind, url, reference);
        // The context of the span the operation started in, for every token to carry.
        ledger.trace = self.telemetry.start_context();
        self.trace(&ledger);
        Ok(ledger)
    }

    /// An operation is known: hand it back for [`Polling::AcceptOnly`], else schedule the first
    /// poll by the initial response's hint (PROTOCOL §2).
    pub(super) fn begin<B>(
        &mut self,
        mut ledger: Ledger<D::Monitor>,
        parts: response::Parts,
        body: OpeningBody<B>,
    ) -> Begin<B, D::Monitor> {
        if self.polling == Polling::AcceptOnly {
            let body = match body {
                OpeningBody::Unread(body) => ResponseBody::streaming(body),
                OpeningBody::Read(bytes, trailers) => ResponseBody::buffered(bytes, trailers),
                OpeningBody::Partial(prefix, body) => ResponseBody::resumed(prefix, body),
            };
            // The first poll's wait, as the layer would have scheduled it (PROTOCOL §2), rides
            // in the token: whoever resumes it (a fleet's first step) can honour the hint. The
            // count of unhinted waits is left as it was: a token resumed at once (the caller's
            // choice) waits the layer's first delay after its first poll.
            let hint = self.dialect.wait_hint(&parts.headers);
            let wait = self.config.delays.next_poll(hint, ledger.unhinted_waits);
            ledger.hinted = hint.is_some();
            let mut response = Response::from_parts(parts, body);
            let elapsed = self.clock.elapsed();
            let token = ledger
                .token(&self.dialect, &self.original, &self.config, elapsed)
                .with_next_poll(wait, ledger.hinted);
            response.extensions_mut().insert(token);
            response.extensions_mut().insert(ledger.info(elapsed));
            return Begin::Finish(Ok(response));
        }
        let hint = self.dialect.wait_hint(&parts.headers);
        match self.schedule_poll(&mut ledger, hint) {
            Ok(()) => Begin::Follow {
                ledger,
                drain: match body {
                    OpeningBody::Unread(body) => Some(body),
                    OpeningBody::Read(..) | OpeningBody::Partial(..) => None,
                },
            },
            Err(e) => Begin::Finish(Err(self.fail(&ledger, e))),
        }
    }

    pub(super) fn on_initial<B: Body<Data = Bytes>>(
        &mut self,
        response: Response<B>,
    ) -> Begin<B, D::Monitor> {
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
        let follow = match self.dialect.initial_head(&self.original.head(), &parts) {
            InitialHead::NotLongRunning => return pass(parts, body),
            InitialHead::Follow(follow) => follow,
            InitialHead::ReadBody { otherwise }
                if !too_large(&parts.headers, &body, self.config.max_status_body) =>
            {
                // Kept while the body is read, so that the head is judged once. It borrows from
                // the head, which the state is about to own: one copy of the URL reference, which
                // `track` keeps as it is when the dialect hands it back (Azure does).
                let unjudged = match otherwise {
                    Some(follow) => Unjudged::Follow(follow.into_owned()),
                    None => Unjudged::Pass,
                };
                return Begin::Sniff {
                    parts,
                    body: Box::pin(body),
                    unjudged,
                };
            }
            InitialHead::ReadBody {
                otherwise: Some(follow),
            } => follow,
            InitialHead::ReadBody { otherwise: None } => return pass(parts, body),
            InitialHead::RequireBody
                if too_large(&parts.headers, &body, self.config.max_status_body) =>
            {
                return Begin::Finish(Err(self.unjudged_initial(parts, None, None)));
            }
            InitialHead::RequireBody => {
                return Begin::Sniff {
                    parts,
                    body: Box::pin(body),
                    unjudged: Unjudged::Refuse,
                }
            }
        };
        match self.track(follow) {
            Ok(ledger) => self.begin(ledger, parts, OpeningBody::Unread(body)),
            Err(e) => Begin::Finish(Err(e)),
        }
    }

    pub(super) fn poll_sniff<B: Body<Data = Bytes>>(
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
                Poll::Ready(Ok(Read::TooLarge)) => Sniffed::TooLarge,
                Poll::Ready(Err(e)) => Sniffed::Broken(e.into()),
                Poll::Pending => match self.clock.on_due(due, cx) {
                    // Too slow to be judged: handled like a body too large to be.
                    Some(slow) if !self.clock.past_deadline() => Sniffed::TooSlow(slow),
                    Some(expired) => Sniffed::Expired(expired),
                    None => return Poll::Pending,
                },
            },
        )
    }

    pub(super) fn on_sniffed<B>(
        &mut self,
        parts: response::Parts,
        body: Pin<Box<B>>,
        collector: Collector,
        unjudged: Unjudged<D::Monitor>,
        sniffed: Sniffed,
    ) -> Begin<B, D::Monitor> {
        let (bytes, trailers) = collector.finish();
        let follow = match (unjudged, sniffed) {
            (Unjudged::Follow(follow), Sniffed::Complete) => {
                return self.on_initial_body(parts, bytes, trailers, Some(follow))
            }
            (_, Sniffed::Complete) => return self.on_initial_body(parts, bytes, trailers, None),
            (_, Sniffed::Expired(expired)) => return Begin::Finish(Err(expired)),
            (Unjudged::Follow(follow), Sniffed::Broken(_))
                if self.polling != Polling::AcceptOnly =>
            {
                follow
            }
            (_, Sniffed::Broken(e)) => {
                let why = "the connection failed while reading the initial response";
                return Begin::Finish(Err(Error::new(ErrorKind::Body, why).with_source(e)));
            }
            (Unjudged::Follow(follow), Sniffed::TooLarge | Sniffed::TooSlow(_)) => follow,
            // Too large or too slow to be judged, and nothing to follow: handed back whole.
            (Unjudged::Pass, Sniffed::TooLarge | Sniffed::TooSlow(_)) => {
                let body = ResponseBody::resumed(bytes, body);
                return Begin::Finish(Ok(Response::from_parts(parts, body)));
            }
            // ... unless the dialect must judge it: then it is an error, with what was read.
            (Unjudged::Refuse, Sniffed::TooLarge) => {
                return Begin::Finish(Err(self.unjudged_initial(parts, Some(bytes), None)))
            }
            (Unjudged::Refuse, Sniffed::TooSlow(slow)) => {
                return Begin::Finish(Err(self.unjudged_initial(parts, Some(bytes), Some(slow))))
            }
        };
        let ledger = match self.track(follow) {
            Ok(ledger) => ledger,
            Err(e) => return Begin::Finish(Err(e)),
        };
        self.begin(ledger, parts, OpeningBody::Partial(bytes, body))
    }

    /// The error of an initial response the dialect must judge by its body
    /// ([`InitialHead::RequireBody`]) when the body cannot be read whole: too large (its
    /// declared length, or what arrived), or too slow (`slow`, the poll timeout's error).
    pub(super) fn unjudged_initial(
        &self,
        parts: response::Parts,
        read: Option<Bytes>,
        slow: Option<Error>,
    ) -> Error {
        let error = match slow {
            Some(slow) => {
                let why = "the initial response's body, which decides whether it is long-running, \
                           was too slow to be read";
                Error::new(ErrorKind::TimedOut, why).with_source(Box::new(slow))
            }
            None => {
                let why = format!(
                    "the initial response's body, which decides whether it is long-running, is \
                     over the limit of {} bytes",
                    self.config.max_status_body
                );
                Error::new(ErrorKind::StatusBodyTooLarge, why)
            }
        };
        error.with_response(parts.status, parts.headers, read)
    }

    /// The initial body, read whole: the dialect judges it.
    pub(super) fn on_initial_body<B>(
        &mut self,
        parts: response::Parts,
        bytes: Bytes,
        trailers: Option<Box<HeaderMap>>,
        otherwise: Option<Follow<'static, D::Monitor>>,
    ) -> Begin<B, D::Monitor> {
        let mut observed = Default::default();
        let verdict = self.dialect.initial_body(
            &self.original.head(),
            &parts,
            &bytes,
            otherwise,
            &mut Observer {
                ledger: &mut observed,
            },
        );
        let error = match verdict {
            InitialBody::Final => {
                let body = ResponseBody::buffered(bytes, trailers);
                return Begin::Finish(Ok(Response::from_parts(parts, body)));
            }
            InitialBody::Follow(follow) => match self.track(follow) {
                Ok(mut ledger) => {
                    ledger.observed = observed;
                    return self.begin(ledger, parts, OpeningBody::Read(bytes, trailers));
                }
                Err(e) => e,
            },
            InitialBody::Failed(detail) => {
                return Begin::Finish(Err(self.ended(
                    ErrorKind::Failed,
                    detail.into_owned(),
                    parts,
                    bytes,
                )))
            }
            InitialBody::Canceled(detail) => {
                return Begin::Finish(Err(self.ended(
                    ErrorKind::Canceled,
                    detail.into_owned(),
                    parts,
                    bytes,
                )))
            }
            InitialBody::Malformed(why) => Error::new(ErrorKind::MalformedStatus, why),
        };
        let error = match error.kind() {
            ErrorKind::InvalidMonitorUrl | ErrorKind::CrossOrigin => error,
            _ => error.with_response(parts.status, parts.headers, Some(bytes)),
        };
        Begin::Finish(Err(error))
    }
}

/// The context of an error for a state the server reported.
pub(super) fn reported(detail: &ErrorDetail<'_>) -> String {
    detail
        .reported
        .as_ref()
        .map(|status| format!("the server reported {status:?}"))
        .unwrap_or_default()
}

/// Whether a body is declared larger than `limit`, so it need not be read to be refused.
pub(super) fn too_large<B: Body>(headers: &HeaderMap, body: &B, limit: usize) -> bool {
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    let hint = body.size_hint();
    // A body that knows its length (hyper's, from `Content-Length`) need not have it looked up.
    hint.lower() > limit
        || hint.exact().is_none() && headers::content_length(headers).is_some_and(|len| len > limit)
}
