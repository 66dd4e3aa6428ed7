//! Applying the dialect's verdict on each answer: keep polling, fetch the final response, end
//! with the answer, or retry within the bounds.

use std::time::Duration;

use bytes::Bytes;
use http::{response, HeaderMap, Response, StatusCode};
use http_body::Body;

use crate::body::{Collector, Read, ResponseBody};
use crate::dialect::{
    CancelHead, Dialect, ErrorDetail, FinalHead, Observer, PollAt, Replacement, StatusHead, Verdict,
};
use crate::error::{Error, ErrorKind};
use crate::future::ledger::{Ledger, Target};
use crate::protocol::json::detail_text;
use crate::telemetry::PollResult;

use super::operation::{reported, too_large};
use super::{Answer, Follower, Next, Purpose};

impl<D: Dialect> Follower<D> {
    /// An answer arrived: the dialect judges it by what was asked.
    pub(super) fn on_reply<B: Body>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        response: Response<B>,
    ) -> Next<B> {
        let (parts, body) = response.into_parts();
        match &ledger.target {
            Target::Poll => {}
            Target::Final(uri) => {
                ledger.final_uri = Some(uri.clone());
                return self.on_final_head(ledger, parts, body);
            }
            Target::Cancel => return self.on_cancel_head(ledger, parts, body),
        }
        ledger.last_http_status = Some(parts.status);
        self.telemetry.answer_status(parts.status);
        let verdict = match self.dialect.status_head(&ledger.monitor, &parts) {
            StatusHead::ReadBody => return self.read(ledger, parts, body, Purpose::Verdict),
            StatusHead::Judged(verdict) => verdict,
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
            Verdict::Replace(replacement) => {
                ledger.retries = 0;
                let Replacement {
                    status,
                    headers,
                    body: named,
                } = replacement;
                // Judged by the head alone: a body it names is not part of one at hand.
                let own = named.map(Bytes::copy_from_slice);
                let parts = replaced(parts, status, headers);
                if !parts.status.is_success() {
                    let answer = Answer::ended(ErrorKind::Failed, ErrorDetail::default());
                    return match own {
                        Some(bytes) => {
                            Next::Finish(Err(self.answered_by(ledger, answer, parts, Some(bytes))))
                        }
                        None => self.read(ledger, parts, body, Purpose::Answer(answer)),
                    };
                }
                match own {
                    Some(bytes) => self.finish(ledger, parts, ResponseBody::buffered(bytes, None)),
                    None => self.finish(ledger, parts, ResponseBody::streaming(body)),
                }
            }
            Verdict::Failed(detail) => {
                let answer = Answer::ended(ErrorKind::Failed, detail);
                self.read(ledger, parts, body, Purpose::Answer(answer))
            }
            Verdict::Canceled(detail) => {
                let answer = Answer::ended(ErrorKind::Canceled, detail);
                self.read(ledger, parts, body, Purpose::Answer(answer))
            }
            // The last straw is read, not drained: its body says why the server kept failing.
            Verdict::Transient if self.transient_exhausted(ledger) => {
                self.read(ledger, parts, body, Purpose::Answer(Answer::unexpected()))
            }
            Verdict::Transient => {
                let hint = self.dialect.wait_hint(&parts.headers);
                let failure = move |op: &Self| op.unexpected("a poll", parts, None);
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

    pub(super) fn on_final_head<B: Body>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        parts: response::Parts,
        body: B,
    ) -> Next<B> {
        self.telemetry.answer_status(parts.status);
        match self.dialect.final_head(&ledger.monitor, parts.status) {
            FinalHead::Final => self.finish(ledger, parts, ResponseBody::streaming(body)),
            FinalHead::Transient if !self.transient_exhausted(ledger) => {
                let hint = self.dialect.wait_hint(&parts.headers);
                let failure = move |op: &Self| op.unexpected("the final GET", parts, None);
                self.on_transient(ledger, hint, failure, Some(body))
            }
            FinalHead::Transient | FinalHead::Unexpected => {
                self.read(ledger, parts, body, Purpose::Answer(Answer::unexpected()))
            }
        }
    }

    pub(super) fn on_cancel_head<B: Body>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        parts: response::Parts,
        body: B,
    ) -> Next<B> {
        match self.dialect.cancel_head(&ledger.monitor, parts.status) {
            CancelHead::Accepted => {
                self.dialect.cancel_accepted(&mut ledger.monitor);
                let hint = self.dialect.wait_hint(&parts.headers);
                match self.schedule_poll(ledger, hint) {
                    Ok(()) => Next::Wait { drain: Some(body) },
                    Err(e) => Next::Finish(Err(e)),
                }
            }
            CancelHead::Unsupported => {
                let answer = Answer {
                    kind: ErrorKind::CancelUnsupported,
                    detail: ErrorDetail::default(),
                };
                self.read(ledger, parts, body, Purpose::Answer(answer))
            }
            CancelHead::Unexpected => {
                self.read(ledger, parts, body, Purpose::Answer(Answer::unexpected()))
            }
        }
    }

    pub(super) fn finish<B>(
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
    pub(super) fn fetch(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        at: &PollAt<'_>,
    ) -> Result<(), Error> {
        ledger.retries = 0;
        let observed = &ledger.observed;
        self.telemetry.poll_result(PollResult::Done, observed);
        let uri = self.original.admit(at, Some(&ledger.url), &self.config)?;
        ledger.target = Target::Final(uri);
        Ok(())
    }

    /// Whether another poll may be sent.
    pub(super) fn poll_budget(&self, ledger: &Ledger<D::Monitor>) -> Result<(), Error> {
        if ledger.polls < self.config.max_polls {
            return Ok(());
        }
        let why = format!("still running after {} polls", ledger.polls);
        Err(Error::new(ErrorKind::TooManyPolls, why))
    }

    /// The operation is still running: follow the monitor if this answer moved it, then
    /// schedule the next poll by its hint.
    pub(super) fn keep_polling(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        moved: Option<&[u8]>,
        hint: Option<Duration>,
    ) -> Result<(), Error> {
        // Servers repeat the header on every answer: only a new value is admitted again.
        if let Some(moved) = moved.filter(|moved| ledger.reference.as_deref() != Some(*moved)) {
            // A relative reference is relative to the URL this answer came from.
            let uri = self
                .original
                .admit_reference(moved, Some(&ledger.url), &self.config)?;
            ledger.url = uri;
            ledger.reference = Some(moved.to_vec());
        }
        self.schedule_poll(ledger, hint)
    }

    /// Checks the bounds and sets the time of the next poll.
    pub(super) fn schedule_poll(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        hint: Option<Duration>,
    ) -> Result<(), Error> {
        self.poll_budget(ledger)?;
        let delay = self.config.delays.next_poll(hint, ledger.unhinted_waits);
        if hint.is_none() {
            ledger.unhinted_waits = ledger.unhinted_waits.saturating_add(1);
        }
        ledger.hinted = hint.is_some();
        self.telemetry.waiting(hint, delay, &ledger.observed);
        self.wait(ledger, delay)
    }

    pub(super) fn wait(
        &mut self,
        ledger: &Ledger<D::Monitor>,
        delay: Duration,
    ) -> Result<(), Error> {
        self.clock.schedule(delay)?;
        self.observe(ledger, Some(delay), false);
        Ok(())
    }

    /// Whether one more transient failure would end the operation.
    pub(super) fn transient_exhausted(&self, ledger: &Ledger<D::Monitor>) -> bool {
        ledger.retries >= self.config.max_transient_retries
    }

    /// A poll or final GET failed in a way worth retrying: wait and send the same GET again,
    /// unless that has happened too often in a row. The error is built only if it ends the
    /// operation.
    pub(super) fn on_transient<B>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        hint: Option<Duration>,
        failure: impl FnOnce(&Self) -> Error,
        drain: Option<B>,
    ) -> Next<B> {
        ledger.retries = ledger.retries.saturating_add(1);
        let observed = &ledger.observed;
        self.telemetry.poll_result(PollResult::Transient, observed);
        if ledger.retries > self.config.max_transient_retries {
            return Next::Finish(Err(failure(self)));
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
        ledger.hinted = hint.is_some();
        if self.telemetry.records_retries() {
            let error = failure(self);
            self.telemetry.retrying(ledger.retries, &error, delay);
        }
        self.telemetry.waiting(hint, delay, &ledger.observed);
        match self.wait(ledger, delay) {
            Ok(()) => Next::Wait { drain },
            Err(e) => Next::Finish(Err(e)),
        }
    }

    /// A request in flight failed (a timeout, a broken body): past the deadline, or for a cancel
    /// request (never repeated), that ends the operation; otherwise it is a transient failure.
    pub(super) fn on_failed_request<B>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        failure: Error,
    ) -> Next<B> {
        if self.clock.past_deadline() || matches!(ledger.target, Target::Cancel) {
            return Next::Finish(Err(failure));
        }
        self.on_transient(ledger, None, |_| failure, None)
    }

    /// Starts reading an answer's body, unless its declared length is already over the limit.
    pub(super) fn read<B: Body>(
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

    pub(super) fn too_large(&self, parts: response::Parts) -> Error {
        let why = format!("over the limit of {} bytes", self.config.max_status_body);
        Error::new(ErrorKind::StatusBodyTooLarge, why).with_response(
            parts.status,
            parts.headers,
            None,
        )
    }

    pub(super) fn on_read<B>(
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
    pub(super) fn on_body<B>(
        &mut self,
        ledger: &mut Ledger<D::Monitor>,
        parts: response::Parts,
        bytes: Bytes,
        trailers: Option<Box<HeaderMap>>,
    ) -> Next<B> {
        let verdict = self.dialect.status_body(
            &mut ledger.monitor,
            &self.original.head(),
            &parts,
            &bytes,
            &mut Observer {
                ledger: &mut ledger.observed,
            },
        );
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
            Verdict::Replace(replacement) => {
                ledger.retries = 0;
                let Replacement {
                    status,
                    headers,
                    body: named,
                } = replacement;
                let body = match named {
                    Some(part) => slice_of(&bytes, part),
                    None => bytes.clone(),
                };
                let parts = replaced(parts, status, headers);
                if parts.status.is_success() {
                    return self.finish(ledger, parts, ResponseBody::buffered(body, None));
                }
                let answer = Answer::ended(ErrorKind::Failed, ErrorDetail::default());
                return Next::Finish(Err(self.answered_by(ledger, answer, parts, Some(body))));
            }
            Verdict::Transient => {
                let hint = self.dialect.wait_hint(&parts.headers);
                let failure = move |op: &Self| op.unexpected("a poll", parts, Some(bytes));
                return self.on_transient(ledger, hint, failure, None);
            }
            Verdict::Failed(detail) => {
                return Next::Finish(Err(self.ended(
                    ErrorKind::Failed,
                    detail.into_owned(),
                    parts,
                    bytes,
                )))
            }
            Verdict::Canceled(detail) => {
                return Next::Finish(Err(self.ended(
                    ErrorKind::Canceled,
                    detail.into_owned(),
                    parts,
                    bytes,
                )))
            }
            Verdict::Unexpected => {
                return Next::Finish(Err(self.unexpected("a poll", parts, Some(bytes))));
            }
            Verdict::Malformed(why) => Error::new(ErrorKind::MalformedStatus, why),
        };
        Next::Finish(Err(error.with_response(
            parts.status,
            parts.headers,
            Some(bytes),
        )))
    }

    pub(super) fn request_name(&self, ledger: &Ledger<D::Monitor>) -> &'static str {
        match ledger.target {
            Target::Final(_) => "the final GET",
            Target::Poll => "a poll",
            Target::Cancel => "the cancel request",
        }
    }

    /// The error of an answer that ended the operation by its HTTP status, with the service's
    /// details from the verdict's detail, else from the dialect's reading of the answer.
    pub(super) fn answered_by(
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
            _ if answer.detail.reported.is_some() => reported(&answer.detail),
            ErrorKind::CancelUnsupported => format!("the cancel request answered {}", parts.status),
            _ => format!("the {} monitor answered {}", ledger.kind, parts.status),
        };
        self.detailed(answer, what, parts, body)
    }

    /// An answer the protocol does not allow here (`what` names the request), with the
    /// dialect's reading of its details. Built only when it ends the operation (or is logged).
    pub(super) fn unexpected(
        &self,
        what: &str,
        parts: response::Parts,
        body: Option<Bytes>,
    ) -> Error {
        let what = format!("{what} answered {}", parts.status);
        self.detailed(Answer::unexpected(), what, parts, body)
    }

    /// Every error of an answer that ended the operation is assembled here: the detail's code
    /// and message, else the dialect's [`Dialect::error_detail`] of the answer, never another
    /// dialect's.
    /// The error of a body that says the operation ended unsuccessfully: the dialect's reading
    /// of the body, completed by its `error_detail` as for an answer that ended it by status.
    pub(super) fn ended(
        &self,
        kind: ErrorKind,
        detail: ErrorDetail<'_>,
        parts: response::Parts,
        bytes: Bytes,
    ) -> Error {
        let what = reported(&detail);
        self.detailed(Answer::ended(kind, detail), what, parts, Some(bytes))
    }

    pub(super) fn detailed(
        &self,
        answer: Answer,
        what: String,
        parts: response::Parts,
        body: Option<Bytes>,
    ) -> Error {
        let Answer { kind, mut detail } = answer;
        // A blank code or message says nothing: the dialect's reading of the answer may.
        detail.code = detail_text(detail.code.take());
        detail.message = detail_text(detail.message.take());
        if detail.code.is_none() && detail.message.is_none() {
            let read = self
                .dialect
                .error_detail(&parts.headers, body.as_deref())
                .into_owned();
            detail = detail.with_detail(read.code, read.message);
        }
        Error::new(kind, what)
            .with_error_detail(detail)
            .with_response(parts.status, parts.headers, body)
    }
}

impl Answer {
    pub(super) fn unexpected() -> Answer {
        Answer {
            kind: ErrorKind::UnexpectedStatus,
            detail: ErrorDetail::default(),
        }
    }

    pub(super) fn ended(kind: ErrorKind, detail: ErrorDetail<'_>) -> Answer {
        Answer {
            kind,
            detail: detail.into_owned(),
        }
    }
}

/// The answer `parts` with a replacement's status and, when it names them, headers.
fn replaced(
    mut parts: response::Parts,
    status: StatusCode,
    headers: Option<HeaderMap>,
) -> response::Parts {
    parts.status = status;
    if let Some(headers) = headers {
        parts.headers = headers;
    }
    parts
}

/// `part` of `whole` without a copy when it is one (as a dialect is asked to hand it), else a
/// copy of it.
fn slice_of(whole: &Bytes, part: &[u8]) -> Bytes {
    let (start, end) = (
        whole.as_ptr() as usize,
        whole.as_ptr() as usize + whole.len(),
    );
    let at = part.as_ptr() as usize;
    if at >= start && at + part.len() <= end {
        whole.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}
