//! The job payload: one operation's identity, its token, and where its chain of steps is.

use std::fmt;

use serde::{Deserialize, Serialize};
use tower_lro::{Error, ResumeToken};

use crate::error::{FleetError, FleetErrorKind};
use crate::status::CancelState;

/// The identity of a tracked operation: unique across processes and machines (a ULID), given by
/// [`Fleet::track`](crate::Fleet::track) and [`Fleet::start`](crate::Fleet::start) and handed to
/// the handler with the outcome, so the handler can tell a second delivery from a first.
///
/// ```
/// # fn run(id: tower_lro_fleet::OperationId) {
/// let text: &str = id.as_str(); // 26 characters, sortable by creation time
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OperationId(String);

impl OperationId {
    /// A new id. Make one yourself, keep it with your own record of the request, and pass it
    /// to [`Fleet::start_as`](crate::Fleet::start_as) or
    /// [`Fleet::track_as`](crate::Fleet::track_as): a retry with the same id never forks the
    /// operation.
    ///
    /// ```
    /// let id = tower_lro_fleet::OperationId::generate();
    /// let again: tower_lro_fleet::OperationId = id.as_str().parse()?;
    /// assert_eq!(id, again);
    /// # Ok::<(), tower_lro_fleet::FleetError>(())
    /// ```
    pub fn generate() -> OperationId {
        OperationId(ulid::Ulid::generate().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Reads an id as [`as_str`](OperationId::as_str) wrote it: a ULID (case-insensitive), so ids
/// stay sortable by creation time and the store can find an operation's steps by its id.
impl std::str::FromStr for OperationId {
    type Err = FleetError;

    fn from_str(text: &str) -> Result<OperationId, FleetError> {
        ulid::Ulid::from_string(text)
            .map(|ulid| OperationId(ulid.to_string()))
            .map_err(|e| {
                FleetError::new(FleetErrorKind::InvalidId, "an operation id is a ULID")
                    .with_source(Box::new(e))
            })
    }
}

impl fmt::Display for OperationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// One step of one operation, as stored.
///
/// The token is kept as a JSON value rather than a typed field: a row whose token is corrupt or
/// foreign still decodes, and its step ends the operation with a typed `InvalidResumeToken`
/// outcome for its identity instead of a job nobody can name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Job {
    /// The payload's format. A row of another version is quarantined, not guessed at: its
    /// fields may mean something else. Rows written before the field existed are version 1.
    #[serde(default = "first_version")]
    pub(crate) version: u32,
    pub(crate) id: OperationId,
    pub(crate) key: String,
    pub(crate) token: serde_json::Value,
    /// The step's number in the operation's chain (0 for the first): the successor of step `n`
    /// is step `n + 1`, whoever enqueues it.
    #[serde(default)]
    pub(crate) step: u32,
    /// Steps in a row that ended with an error the fleet retries.
    #[serde(default)]
    pub(crate) failures: u32,
    /// Where a cancel asked for with `Fleet::cancel` stands; carried along the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cancel: Option<CancelState>,
    /// The last `percentComplete` the server reported, for `Fleet::status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) percent_complete: Option<f64>,
    /// Why the step before this one failed (retried), or why a cancel was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) last_error: Option<String>,
    /// When this step was due (seconds since the Unix epoch) before `Fleet::cancel` made it
    /// due now: a refused cancel goes back to that schedule, not to a poll at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) due_at: Option<u64>,
    /// The server's last wait hint (milliseconds), carried along retried steps, whose error
    /// tokens hold none: a retry never polls sooner than the server asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hint_ms: Option<u64>,
}

/// The version of [`Job`] this fleet writes and reads.
pub(crate) const PAYLOAD_VERSION: u32 = 1;

fn first_version() -> u32 {
    1
}

impl Job {
    pub(crate) fn first(id: OperationId, key: String, token: &ResumeToken) -> Job {
        Job {
            version: PAYLOAD_VERSION,
            id,
            key,
            token: token_value(token),
            step: 0,
            failures: 0,
            cancel: None,
            percent_complete: None,
            last_error: None,
            due_at: None,
            hint_ms: None,
        }
    }

    /// The job after this one, continuing from `token`; what it knows of the operation (the
    /// last error included, until a later one replaces it) carries on.
    pub(crate) fn next(&self, token: &ResumeToken, failures: u32) -> Job {
        Job {
            version: PAYLOAD_VERSION,
            id: self.id.clone(),
            key: self.key.clone(),
            token: token_value(token),
            step: self.step.saturating_add(1),
            failures,
            cancel: self.cancel,
            percent_complete: self.percent_complete,
            last_error: self.last_error.clone(),
            due_at: None,
            hint_ms: None,
        }
    }

    /// The last wait the server asked for that this step knows of: its token's, else the one
    /// carried from before a failed step.
    pub(crate) fn hint(&self) -> Option<std::time::Duration> {
        let token = self.token().ok();
        token
            .filter(ResumeToken::next_poll_hinted)
            .and_then(|token| token.next_poll_in())
            .or(self.hint_ms.map(std::time::Duration::from_millis))
    }

    /// The payload as the stores keep it (apalis's JSON codec).
    pub(crate) fn encode(&self) -> Vec<u8> {
        // A struct of strings, numbers and a JSON value always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Unique per operation and step: enqueueing the same step twice is a no-op.
    pub(crate) fn idempotency_key(&self) -> String {
        format!("{}/{}", self.id, self.step)
    }

    /// The stored token, checked as fully as any token from outside.
    pub(crate) fn token(&self) -> Result<ResumeToken, Error> {
        ResumeToken::from_json(&self.token.to_string()).map_err(Error::from)
    }
}

fn token_value(token: &ResumeToken) -> serde_json::Value {
    // A token serialises to a JSON object; `Null` cannot happen, and would be refused as a
    // token by the step that reads it.
    serde_json::from_str(&token.to_json()).unwrap_or(serde_json::Value::Null)
}
