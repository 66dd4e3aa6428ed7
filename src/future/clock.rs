//! The operation's clock: its deadline, when the next request goes out, and the deadline of what
//! is in flight.

use std::pin::Pin;
use std::task::Context;
use std::time::Duration;

use std::future::Future;
use tokio::time::{Instant, Sleep};

use crate::error::{Error, ErrorKind};

/// An unneeded body is drained, so its connection can be reused, during the wait that follows
/// and for at most this long beyond it; a body still arriving then is dropped with its connection.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

pub(crate) struct Clock {
    started: Instant,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    poll_timeout: Option<Duration>,
    /// When the next request goes out; `None` for "at once".
    pub(crate) wake_at: Option<Instant>,
    /// The deadline of the current phase, and where the `due` timer is set.
    pub(crate) due: Option<Instant>,
    due_set: Option<Instant>,
}

impl Clock {
    pub(crate) fn new(timeout: Option<Duration>, poll_timeout: Option<Duration>) -> Clock {
        let started = Instant::now();
        let deadline = deadline_after(started, timeout);
        Clock {
            started,
            deadline,
            timeout,
            poll_timeout,
            wake_at: None,
            due: deadline,
            due_set: None,
        }
    }

    /// Counts `elapsed` (spent before a resume) as already past.
    pub(crate) fn rewind(&mut self, elapsed: Duration) {
        let now = Instant::now();
        self.started = now.checked_sub(elapsed).unwrap_or(now);
        self.deadline = deadline_after(self.started, self.timeout);
        self.due = self.deadline;
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Bounds a request sent now: the poll timeout or the operation's deadline, whichever comes
    /// first.
    pub(crate) fn start_request(&mut self) {
        self.due = self.request_deadline();
    }

    /// Bounds the wait for readiness or the next request by the operation's deadline alone.
    pub(crate) fn start_waiting(&mut self) {
        self.due = self.deadline;
    }

    fn request_deadline(&self) -> Option<Instant> {
        earliest(
            deadline_after(Instant::now(), self.poll_timeout),
            self.deadline,
        )
    }

    /// Bounds draining an unneeded body: through the wait, and a short grace after it so a body
    /// still arriving can finish, within the request's own bounds.
    pub(crate) fn start_draining(&mut self) {
        let grace = Instant::now().checked_add(DRAIN_GRACE);
        let until = match (self.wake_at, grace) {
            (Some(wake), Some(grace)) => Some(wake.max(grace)),
            (wake, grace) => wake.or(grace),
        };
        self.due = earliest(until, self.request_deadline());
    }

    /// Sets when the next request goes out, unless that would be past the deadline.
    pub(crate) fn schedule(&mut self, delay: Duration) -> Result<(), Error> {
        self.wake_at = None;
        if delay.is_zero() {
            // "Poll now" reads the clock only if there is a deadline to check.
            if self.past_deadline() {
                let why = "the operation's deadline passed";
                return Err(Error::new(ErrorKind::TimedOut, why));
            }
        } else {
            let now = Instant::now();
            let at = now.checked_add(delay).unwrap_or_else(|| far_future(now));
            if self.deadline.is_some_and(|deadline| at > deadline) {
                let why = format!(
                    "the next request would be after the operation's deadline (in {delay:?})"
                );
                return Err(Error::new(ErrorKind::TimedOut, why));
            }
            self.wake_at = Some(at);
        }
        Ok(())
    }

    /// Whether the current phase's deadline (`self.due`) has passed.
    pub(crate) fn due_passed(
        &mut self,
        mut timer: Pin<&mut Option<Sleep>>,
        cx: &mut Context<'_>,
    ) -> bool {
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
    pub(crate) fn on_due(
        &mut self,
        timer: Pin<&mut Option<Sleep>>,
        cx: &mut Context<'_>,
    ) -> Option<Error> {
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
}

/// Sets a timer for `at`, resetting it rather than making a new one.
pub(crate) fn set_sleep(mut timer: Pin<&mut Option<Sleep>>, at: Instant) {
    match timer.as_mut().as_pin_mut() {
        Some(sleep) => sleep.reset(at),
        None => timer.set(Some(tokio::time::sleep_until(at))),
    }
}

pub(crate) fn fired(timer: Pin<&mut Option<Sleep>>, cx: &mut Context<'_>) -> bool {
    timer
        .as_pin_mut()
        .is_some_and(|sleep| sleep.poll(cx).is_ready())
}

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

fn far_future(now: Instant) -> Instant {
    // About 30 years: `Instant` has no MAX, and nothing waits that long after clamping anyway.
    now + Duration::from_secs(86_400 * 365 * 30)
}
