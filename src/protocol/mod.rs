//! The mechanism's pure parts, shared by every dialect: which headers polls repeat, the wait
//! hint, the delay schedule, monitor URL admission, URLs as they may be shown, and error
//! envelopes.

pub(crate) mod headers;
pub(crate) mod json;
pub(crate) mod redact;
pub(crate) mod retry_after;
pub(crate) mod schedule;
pub(crate) mod url;
