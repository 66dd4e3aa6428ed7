//! A whole HTTP/1.1 response carried as a body (`Content-Type: application/http`, RFC 9112 §10.1):
//! its status, headers and a sub-slice of the bytes for its body, never a copy.
//!
//! A status monitor may answer with the whole final response this way (PROTOCOL §15). The bytes
//! come from a server: every way they can be wrong is a [`BadMessage`], never a panic. The whole body is already bounded by
//! the layer's `max_status_body`; the parser bounds the number of headers ([`MAX_HEADERS`]).

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// The most headers an embedded response may have, as hyper's client allows by default.
pub(crate) const MAX_HEADERS: usize = 100;

/// An embedded HTTP response: its status and headers, and its body as a sub-slice of the bytes
/// it was read from.
#[derive(Debug)]
pub(crate) struct Message<'a> {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: &'a [u8],
}

/// Why bytes are not one whole HTTP/1.1 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadMessage {
    /// It ends before its head, or before the body its `Content-Length` declares.
    Truncated,
    /// It is not an HTTP/1.x response (no status line, a bad header, a status out of range).
    NotHttp(String),
    /// More than [`MAX_HEADERS`] headers.
    TooManyHeaders,
    /// A `Content-Length` that is not one non-negative integer.
    BadLength,
    /// A `Transfer-Encoding`: a chunked body could only be handed on as a copy, and no server
    /// is known to frame an embedded response that way.
    TransferEncoding,
    /// Bytes other than line breaks after the body its `Content-Length` declares.
    TrailingBytes,
}

impl fmt::Display for BadMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadMessage::Truncated => f.write_str("the embedded HTTP response is truncated"),
            BadMessage::NotHttp(why) => write!(f, "the body is not an HTTP response: {why}"),
            BadMessage::TooManyHeaders => write!(
                f,
                "the embedded HTTP response has more than {MAX_HEADERS} headers"
            ),
            BadMessage::BadLength => {
                f.write_str("the embedded HTTP response's Content-Length is not a length")
            }
            BadMessage::TransferEncoding => {
                f.write_str("the embedded HTTP response has a Transfer-Encoding")
            }
            BadMessage::TrailingBytes => {
                f.write_str("bytes follow the embedded HTTP response's body")
            }
        }
    }
}

/// Parses `bytes` as one HTTP/1.x response. Its body is the `Content-Length` bytes after the
/// head when it declares one (line breaks after it are tolerated, anything else is not), none
/// for a status that has none (1xx, 204, 304), else the rest of the bytes (RFC 9112 §6.3: a
/// response without a length runs to the end of the connection, here the end of the wrapper).
pub(crate) fn parse_response(bytes: &[u8]) -> Result<Message<'_>, BadMessage> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut slots);
    let head_len = match head.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Err(BadMessage::Truncated),
        Err(httparse::Error::TooManyHeaders) => return Err(BadMessage::TooManyHeaders),
        Err(e) => return Err(BadMessage::NotHttp(e.to_string())),
    };
    let code = head.code.unwrap_or_default();
    let status = StatusCode::from_u16(code)
        .ok()
        .filter(|s| (100..=599).contains(&s.as_u16()))
        .ok_or_else(|| BadMessage::NotHttp(format!("status {code} is out of range")))?;
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for header in head.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| BadMessage::NotHttp(format!("bad header name {:?}", header.name)))?;
        let value = HeaderValue::from_bytes(header.value)
            .map_err(|_| BadMessage::NotHttp(format!("bad value of header {name}")))?;
        headers.append(name, value);
    }
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return Err(BadMessage::TransferEncoding);
    }
    let rest = &bytes[head_len..];
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let length = match content_length(&headers)? {
        _ if bodiless => Some(0),
        length => length,
    };
    let body = match length {
        None => rest,
        Some(length) => {
            let body = rest.get(..length).ok_or(BadMessage::Truncated)?;
            if !rest[length..].iter().all(|b| matches!(b, b'\r' | b'\n')) {
                return Err(BadMessage::TrailingBytes);
            }
            body
        }
    };
    Ok(Message {
        status,
        headers,
        body,
    })
}

/// The declared `Content-Length`: none, or one value (repeated identical values are one, RFC
/// 9112 §6.3); anything else is [`BadMessage::BadLength`].
fn content_length(headers: &HeaderMap) -> Result<Option<usize>, BadMessage> {
    let mut length = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(BadMessage::BadLength);
            }
            // Digits only: the text is ASCII, and a number past `usize` is longer than any body.
            let parsed = std::str::from_utf8(part)
                .ok()
                .and_then(|text| text.parse::<usize>().ok())
                .ok_or(BadMessage::BadLength)?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err(BadMessage::BadLength);
            }
            length = Some(parsed);
        }
    }
    Ok(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row's outcome as text: `status|header names|body`, or the error.
    fn parsed(bytes: &[u8]) -> String {
        match parse_response(bytes) {
            Ok(message) => {
                let names: Vec<_> = message.headers.keys().map(HeaderName::as_str).collect();
                format!(
                    "{}|{}|{}",
                    message.status.as_u16(),
                    names.join(","),
                    String::from_utf8_lossy(message.body)
                )
            }
            Err(e) => format!("{e:?}"),
        }
    }

    #[test]
    fn responses() {
        #[rustfmt::skip]
        let rows: &[(&[u8], &str)] = &[
            (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", "200|content-type,content-length|{}"),
            (b"HTTP/1.1 201 Created\r\nLocation: /a\r\n\r\n{\"id\":1}", "201|location|{\"id\":1}"),
            // Without a length the body is the rest, line breaks and all.
            (b"HTTP/1.1 200 OK\r\n\r\nrest\r\n", "200||rest\r\n"),
            (b"HTTP/1.0 500 Internal Server Error\r\n\r\n", "500||"),
            // Line breaks after a declared body are tolerated; anything else is not.
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\r\n\r\n", "200|content-length|ok"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK", "TrailingBytes"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok", "200|content-length|ok"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", "BadLength"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok", "BadLength"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok", "BadLength"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", "BadLength"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", "TransferEncoding"),
            // Statuses without a body have none, whatever follows is trailing.
            (b"HTTP/1.1 204 No Content\r\n\r\n", "204||"),
            (b"HTTP/1.1 204 No Content\r\n\r\nbody", "TrailingBytes"),
            (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", "304|content-length|"),
        ];
        for (bytes, expected) in rows {
            assert_eq!(
                parsed(bytes),
                *expected,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn truncated_non_http_and_oversized_messages_are_refused() {
        #[rustfmt::skip]
        let rows: &[(&[u8], &str)] = &[
            (b"", "Truncated"),
            (b"HTTP/1.1 200 OK\r\nContent-Type: applica", "Truncated"),
            (b"HTTP/1.1 200 OK\r\n", "Truncated"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "Truncated"),
            (b"HTTP/1.", "Truncated"),
        ];
        for (bytes, expected) in rows {
            assert_eq!(
                parsed(bytes),
                *expected,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        for bytes in [
            &b"{\"value\":[]}"[..],
            b"<html>502</html>",
            b"GET / HTTP/1.1\r\n\r\n",
            b"HTTP/2 200\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 099 Low\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
            b"\xff\xfe\x00",
        ] {
            assert!(
                parsed(bytes).starts_with("NotHttp"),
                "{:?}: {}",
                String::from_utf8_lossy(bytes),
                parsed(bytes)
            );
        }
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parsed(&many), "TooManyHeaders");
    }

    #[test]
    fn the_body_is_a_sub_slice_of_the_input() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody";
        let message = parse_response(bytes).unwrap();
        let start = bytes.len() - 4;
        assert!(std::ptr::eq(message.body.as_ptr(), bytes[start..].as_ptr()));
    }

    #[test]
    fn repeated_headers_keep_every_value_in_order() {
        let bytes = b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n";
        let message = parse_response(bytes).unwrap();
        let values: Vec<_> = message.headers.get_all("set-cookie").iter().collect();
        assert_eq!(values, ["a=1", "b=2"]);
    }
}
