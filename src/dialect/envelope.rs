//! The details of an answer that ended an operation by its HTTP status.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};

use crate::dialect::ErrorDetail;
use crate::protocol::json::{detail_text, parse_error_envelope};

/// Azure's header for the service's error code, read by the default error detail: many APIs
/// modelled on Azure's send it.
const X_MS_ERROR_CODE: HeaderName = HeaderName::from_static("x-ms-error-code");

/// The service's code and message: the body's error envelope, else the `x-ms-error-code` header
/// as the code.
pub(crate) fn envelope<'a>(headers: &'a HeaderMap, body: Option<&'a [u8]>) -> ErrorDetail<'a> {
    let detail = body.map(parse_error_envelope).unwrap_or_default();
    ErrorDetail::default().with_detail(code_or_header(detail.code, headers), detail.message)
}

/// The service's error code: the body's, else the `x-ms-error-code` header's. An empty or blank
/// code, in the body or the header, is no code.
pub(crate) fn code_or_header<'a>(
    from_body: Option<Cow<'a, str>>,
    headers: &'a HeaderMap,
) -> Option<Cow<'a, str>> {
    detail_text(from_body).or_else(|| {
        let header = headers.get(X_MS_ERROR_CODE)?.to_str().ok();
        detail_text(header.map(Cow::Borrowed))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_code_leaves_the_header_to_speak() {
        let mut headers = HeaderMap::new();
        headers.insert(X_MS_ERROR_CODE, "FromHeader".parse().unwrap());
        let code = |body: &'static [u8], headers: &HeaderMap| {
            envelope(headers, Some(body)).code.map(Cow::into_owned)
        };
        #[rustfmt::skip]
        let rows: &[(&[u8], Option<&str>)] = &[
            (br#"{"error":{"code":"Conflict"}}"#, Some("Conflict")),
            (br#"{"error":{"code":""}}"#, Some("FromHeader")),
            (br#"{"error":{"code":"   ","message":"m"}}"#, Some("FromHeader")),
            (br#"{"code":""}"#, Some("FromHeader")),
            (b"", Some("FromHeader")),
        ];
        for (body, expected) in rows {
            assert_eq!(
                code(body, &headers).as_deref(),
                *expected,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        // A blank header is no code either.
        headers.insert(X_MS_ERROR_CODE, " ".parse().unwrap());
        assert_eq!(code(br#"{"error":{"code":""}}"#, &headers), None);
        assert_eq!(envelope(&headers, None), ErrorDetail::default());
    }
}
