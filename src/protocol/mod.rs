//! The mechanism's pure parts, shared by every dialect: which headers polls repeat, the wait
//! hint, the delay schedule, monitor URL admission, error envelopes, and HTTP responses carried as
//! bodies.

pub(crate) mod headers;
pub(crate) mod http_message;
pub(crate) mod json;
pub(crate) mod retry_after;
pub(crate) mod schedule;
pub(crate) mod url;
