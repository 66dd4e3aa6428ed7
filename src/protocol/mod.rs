//! The mechanism's pure parts, shared by every dialect: which headers polls repeat, the wait
//! hint, the delay schedule, monitor URL admission, URLs as they may be shown, error envelopes,
//! HTTP responses carried as bodies, and the W3C trace context a token carries.

pub(crate) mod headers;
pub(crate) mod http_message;
pub(crate) mod json;
pub(crate) mod redact;
pub(crate) mod retry_after;
pub(crate) mod schedule;
pub(crate) mod trace_context;
pub(crate) mod url;
