//! The details of an answer that ended an operation by its HTTP status.

use std::borrow::Cow;

use http::HeaderMap;

use crate::dialect::Outcome;
use crate::protocol::headers;
use crate::protocol::json::parse_error_envelope;

/// The service's code and message: the body's error envelope, else the `x-ms-error-code` header
/// as the code.
pub(crate) fn envelope<'a>(headers: &'a HeaderMap, body: Option<&'a [u8]>) -> Outcome<'a> {
    let detail = body.map(parse_error_envelope).unwrap_or_default();
    Outcome::default().with_detail(code_or_header(detail.code, headers), detail.message)
}

/// The service's error code: the body's, else the `x-ms-error-code` header's.
pub(crate) fn code_or_header<'a>(
    from_body: Option<Cow<'a, str>>,
    headers: &'a HeaderMap,
) -> Option<Cow<'a, str>> {
    from_body.or_else(|| {
        headers
            .get(headers::X_MS_ERROR_CODE)
            .and_then(|v| v.to_str().ok())
            .map(Cow::Borrowed)
    })
}
