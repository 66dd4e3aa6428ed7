//! Watching an operation while it runs.
//!
//! Insert the [`ProgressSender`] of [`channel`] into a request's extensions and read the
//! [`watch::Receiver`](https://docs.rs/tokio/1/tokio/sync/watch/struct.Receiver.html): it holds
//! the latest [`Progress`] of that request's operation, updated after every poll. A slow reader
//! never slows polling and never makes memory grow: it only ever sees the latest update.
//!
//! ```
//! # async fn run(mut updates: tokio::sync::watch::Receiver<Option<tower_lro::progress::Progress>>) {
//! // let (sender, mut updates) = tower_lro::progress::channel();
//! // request.extensions_mut().insert(sender);
//! while updates.changed().await.is_ok() {
//!     if let Some(progress) = updates.borrow_and_update().as_ref() {
//!         println!(
//!             "{:?} {:?}% after {} polls",
//!             progress.operation.state, progress.operation.percent_complete, progress.operation.polls
//!         );
//!     }
//! }
//! // The channel closes when the operation ends.
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::info::OperationInfo;
use crate::token::ResumeToken;

/// Where an operation stands, sent after the initial response and after every poll.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Progress {
    /// Monitor, the state as the server spelled it, `percentComplete`, polls so far, elapsed time.
    pub operation: OperationInfo,
    /// When the next request goes out, from the time of this update; `None` once the
    /// operation has ended.
    pub next_poll_in: Option<Duration>,
    /// Whether this is the last update (the operation succeeded, failed or was given up on).
    pub finished: bool,
    /// Everything needed to continue the operation elsewhere; see
    /// [`LongRunning::resume`](crate::LongRunning::resume).
    pub resume_token: ResumeToken,
}

/// The sending half of a progress channel; insert it into a request's extensions.
///
/// The layer takes it out of the request (the inner service never sees it) and drops it when the
/// operation ends, which closes the channel.
#[derive(Clone)]
pub struct ProgressSender(Arc<watch::Sender<Option<Progress>>>);

impl ProgressSender {
    pub(crate) fn send(&self, progress: Progress) {
        self.0.send_replace(Some(progress));
    }

    /// Whether anyone still listens; updates are not built for nobody.
    pub(crate) fn is_observed(&self) -> bool {
        !self.0.is_closed()
    }
}

impl fmt::Debug for ProgressSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgressSender")
            .field("receivers", &self.0.receiver_count())
            .finish()
    }
}

/// A progress channel for one request: insert the sender into the request's extensions, read
/// updates from the receiver. The receiver holds `None` until the operation is known to be
/// long-running.
pub fn channel() -> (ProgressSender, watch::Receiver<Option<Progress>>) {
    let (sender, receiver) = watch::channel(None);
    (ProgressSender(Arc::new(sender)), receiver)
}
