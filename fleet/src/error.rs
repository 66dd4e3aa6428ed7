//! The fleet's error type.

use std::fmt;

use tower_lro::{BoxError, ResumeToken};

/// What went wrong; see [`FleetError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FleetErrorKind {
    /// The job store failed: the database could not be reached, or refused a query.
    Store,
    /// The request that starts an operation failed; nothing was enqueued. The error's
    /// [`source`](std::error::Error::source) is the [`tower_lro::Error`].
    Start,
    /// A setting is out of range (the message says which).
    Config,
    /// Not an [`OperationId`](crate::OperationId) (a ULID).
    InvalidId,
    /// The store holds no step of an operation with that id in the fleet's queue (never
    /// tracked, tracked on another queue, or its rows were deleted).
    NotFound,
    /// The operation is no longer in flight: its outcome was delivered, or its job failed and
    /// is kept ([`Fleet::status`](crate::Fleet::status) says which).
    Ended,
    /// The operation cannot be canceled: its dialect has no cancel request and none was
    /// attached, its token cannot be read, or the server refused an earlier cancel.
    CancelUnsupported,
    /// The operation's step stayed in a worker's hands for a whole lease; try again.
    Busy,
}

/// Why a fleet call failed.
///
/// When the server accepted an operation but its token could not be enqueued, the error carries
/// that token ([`untracked`](FleetError::untracked)): the operation is running and nobody tracks
/// it yet. Enqueue it again with [`Fleet::track`](crate::Fleet::track), or tell your caller.
///
/// ```
/// # async fn run(fleet: &tower_lro_fleet::Fleet<(), (), ()>, token: tower_lro::ResumeToken) {
/// if let Err(error) = fleet.track("order-17", token).await {
///     eprintln!("{error}");
///     if let Some(token) = error.untracked() {
///         eprintln!("still running, not tracked: {}", token.to_json());
///     }
/// }
/// # }
/// ```
pub struct FleetError {
    kind: FleetErrorKind,
    message: String,
    source: Option<BoxError>,
    untracked: Option<Box<ResumeToken>>,
}

impl FleetError {
    pub(crate) fn new(kind: FleetErrorKind, message: impl Into<String>) -> FleetError {
        FleetError {
            kind,
            message: message.into(),
            source: None,
            untracked: None,
        }
    }

    pub(crate) fn store(message: impl Into<String>, source: impl Into<BoxError>) -> FleetError {
        FleetError::new(FleetErrorKind::Store, message).with_source(source.into())
    }

    pub(crate) fn with_source(mut self, source: BoxError) -> FleetError {
        self.source = Some(source);
        self
    }

    pub(crate) fn with_untracked(mut self, token: ResumeToken) -> FleetError {
        self.untracked = Some(Box::new(token));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> FleetErrorKind {
        self.kind
    }

    /// The token of an operation the server accepted but the store did not take.
    pub fn untracked(&self) -> Option<&ResumeToken> {
        self.untracked.as_deref()
    }
}

impl fmt::Debug for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetError")
            .field("kind", &self.kind)
            .field("message", &self.message)
            .field("source", &self.source)
            .field("untracked", &self.untracked.is_some())
            .finish()
    }
}

impl fmt::Display for FleetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The cause is `source()`'s, as the core's errors leave it.
        f.write_str(&self.message)
    }
}

impl std::error::Error for FleetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
