//! The settings a layer shares with every operation it follows, and their defaults (documented,
//! with the reasons, on [`LongRunningLayer`](crate::LongRunningLayer)).

use std::time::Duration;

use http::header::HeaderName;

use crate::protocol::schedule::Delays;
use crate::protocol::url::OriginPolicy;

pub(crate) const INITIAL_DELAY: Duration = Duration::from_secs(1);
pub(crate) const MIN_DELAY: Duration = Duration::ZERO;
pub(crate) const MAX_DELAY: Duration = Duration::from_secs(60);
pub(crate) const MAX_POLLS: u32 = 5_000;
pub(crate) const POLL_TIMEOUT: Duration = Duration::from_secs(60);
pub(crate) const MAX_TRANSIENT_RETRIES: u32 = 8;
pub(crate) const MAX_STATUS_BODY: usize = 1024 * 1024;

/// The settings shared by every operation of a layer; cloned per call as one `Arc`.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) delays: Delays,
    pub(crate) max_polls: u32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) poll_timeout: Option<Duration>,
    pub(crate) max_status_body: usize,
    pub(crate) max_transient_retries: u32,
    pub(crate) origins: OriginPolicy,
    /// Credential headers beyond the built-in ones: the dialect's, and those the user added.
    pub(crate) withheld: Vec<HeaderName>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            delays: Delays {
                initial: INITIAL_DELAY,
                min: MIN_DELAY,
                max: MAX_DELAY,
            },
            max_polls: MAX_POLLS,
            timeout: None,
            poll_timeout: Some(POLL_TIMEOUT),
            max_status_body: MAX_STATUS_BODY,
            max_transient_retries: MAX_TRANSIENT_RETRIES,
            origins: OriginPolicy::SameOrigin,
            withheld: Vec::new(),
        }
    }
}

impl Config {
    /// The defaults, withholding `dialect`'s credential headers too.
    pub(crate) fn for_dialect<D: crate::dialect::Dialect>(dialect: &D) -> Config {
        Config {
            withheld: dialect.credential_headers().into_owned(),
            ..Config::default()
        }
    }
}
