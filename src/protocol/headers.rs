//! The headers that must not travel with polls (PROTOCOL §5), and what a body's headers declare.

use http::header::{self, HeaderMap, HeaderName};

/// Headers of the original request that a bodiless GET must not repeat: every `Content-*` (they
/// describe the original payload) and every `If-*` (conditions meant for the original write),
/// framing, one-shot expectations, preferences, and `Host` (the URI decides). The common ones are removed by
/// name; any other `content-`/`if-` header is found by a scan of what is left.
// Statics, not consts: a const array would be built, and its custom names dropped, on every use.
static NOT_FOR_POLLS: [HeaderName; 11] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::TRANSFER_ENCODING,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
    header::EXPECT,
    header::HOST,
    // A preference (RFC 7240) is the original request's: `respond-async` asked that request to
    // be answered asynchronously, `return=representation` shaped that request's answer.
    HeaderName::from_static("prefer"),
];

/// Headers that carry credentials; they never reach another origin and are never kept in
/// tokens: tower-http's `FilterCredentials` block list, and the API-key headers of OpenAI-style
/// and Anthropic-style job APIs (`api-key`: Azure OpenAI's; `x-api-key`: Anthropic's and many
/// gateways').
static CREDENTIALS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
    HeaderName::from_static("x-api-key"),
    HeaderName::from_static("api-key"),
];

/// The original request's headers as polls send them.
pub(crate) fn for_polls(mut headers: HeaderMap) -> HeaderMap {
    for name in &NOT_FOR_POLLS {
        headers.remove(name);
    }
    // Header names are lower case in a `HeaderMap`, so a prefix match is exact.
    let payload_or_condition = |name: &&HeaderName| {
        let name = name.as_str();
        name.starts_with("content-") || name.starts_with("if-")
    };
    if headers.keys().any(|name| payload_or_condition(&name)) {
        let rest: Vec<HeaderName> = headers
            .keys()
            .filter(payload_or_condition)
            .cloned()
            .collect();
        for name in rest {
            headers.remove(name);
        }
    }
    headers
}

/// Removes every credential header: the built-in ones and `more` (a dialect's, a layer's).
pub(crate) fn strip_credentials(headers: &mut HeaderMap, more: &[HeaderName]) {
    for name in CREDENTIALS.iter().chain(more) {
        headers.remove(name);
    }
}

/// Whether a body could be JSON: declared JSON (`application/json`, `…+json`) or undeclared.
pub(crate) fn may_be_json(headers: &HeaderMap) -> bool {
    !headers.contains_key(header::CONTENT_TYPE) || declares_json(headers)
}

/// Whether a body is declared JSON: `application/json`, `text/json` or `…+json`.
pub(crate) fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|v| {
            let mime = v.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("application/json")
                || mime.len() > 5 && mime[mime.len() - 5..].eq_ignore_ascii_case("+json")
                || mime.eq_ignore_ascii_case("text/json")
        })
}

/// The value of a `Content-Length` header, when there is exactly one well-formed one.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()?.trim().parse().ok()
}

/// `Prefer` (RFC 7240).
const PREFER: HeaderName = HeaderName::from_static("prefer");

/// Adds the `respond-async` preference (RFC 7240 §4.1) to a request's `Prefer`, merged into one
/// field with the preferences already there (some servers read only the first `Prefer` line);
/// nothing changes when it is there already.
pub(crate) fn prefer_respond_async(headers: &mut HeaderMap) {
    let mut merged = Vec::new();
    for value in headers.get_all(&PREFER) {
        let has_it = value.as_bytes().split(|&b| b == b',').any(|preference| {
            let token = preference.split(|&b| b == b';' || b == b'=').next();
            token.is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"respond-async"))
        });
        if has_it {
            return;
        }
        let value = value.as_bytes().trim_ascii();
        if !value.is_empty() {
            merged.extend_from_slice(value);
            merged.extend_from_slice(b", ");
        }
    }
    merged.extend_from_slice(b"respond-async");
    // Joined from values that were valid, with visible ASCII between them: still valid.
    if let Ok(value) = http::HeaderValue::from_bytes(&merged) {
        headers.insert(PREFER, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn polls_drop_payload_conditional_and_host_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("content-type", "application/json"),
            ("content-length", "12"),
            ("content-encoding", "gzip"),
            ("transfer-encoding", "chunked"),
            ("if-match", "\"etag\""),
            ("if-none-match", "*"),
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("expect", "100-continue"),
            ("prefer", "respond-async"),
            ("content-md5", "Q2hlY2sgSW50ZWdyaXR5IQ=="),
            ("content-language", "en"),
            ("content-disposition", "attachment"),
            ("if-range", "\"etag\""),
            ("if-schedule-tag-match", "x"),
            ("contents", "not a payload header"),
            ("host", "management.example"),
            ("x-ms-client-request-id", "abc"),
            ("authorization", "Bearer t"),
            ("x-api-key", "sk-1"),
            ("api-key", "k"),
            ("x-goog-api-key", "g"),
            ("user-agent", "me"),
            ("accept", "application/json"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let names = |h: &HeaderMap| {
            let mut names: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
            names.sort();
            names
        };
        let mut kept = for_polls(headers);
        assert_eq!(
            names(&kept),
            [
                "accept",
                "api-key",
                "authorization",
                "contents",
                "user-agent",
                "x-api-key",
                "x-goog-api-key",
                "x-ms-client-request-id"
            ]
        );
        // The built-in credentials, and the ones a dialect or layer adds.
        strip_credentials(&mut kept, &[HeaderName::from_static("x-goog-api-key")]);
        assert_eq!(
            names(&kept),
            ["accept", "contents", "user-agent", "x-ms-client-request-id"]
        );
    }

    #[test]
    fn json_content_types() {
        let with = |ct: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            may_be_json(&h)
        };
        assert!(may_be_json(&HeaderMap::new()));
        assert!(with("application/json"));
        assert!(with("application/json; charset=utf-8"));
        assert!(with("Application/JSON"));
        assert!(with("application/problem+json"));
        assert!(with("text/json"));
        assert!(!with("text/html"));
        assert!(!with("application/octet-stream"));
        assert!(!with("json"));
        assert!(
            !declares_json(&HeaderMap::new()),
            "undeclared is not declared"
        );
    }

    #[test]
    fn respond_async_is_merged_into_the_preferences() {
        let prefer = |existing: &[&'static str]| {
            let mut headers = HeaderMap::new();
            for value in existing {
                headers.append(PREFER, HeaderValue::from_static(value));
            }
            prefer_respond_async(&mut headers);
            let values: Vec<_> = headers.get_all(PREFER).iter().cloned().collect();
            values
        };
        for (existing, expected) in [
            (&[][..], "respond-async"),
            (&["return=minimal"][..], "return=minimal, respond-async"),
            (
                &["return=minimal", "wait=10"][..],
                "return=minimal, wait=10, respond-async",
            ),
            (&["respond-async, wait=10"][..], "respond-async, wait=10"),
            (&["wait=5", "Respond-Async"][..], "wait=5"),
            (&["respond-async;x=1"][..], "respond-async;x=1"),
            (
                &["respond-asynchronously"][..],
                "respond-asynchronously, respond-async",
            ),
            (&[""][..], "respond-async"),
        ] {
            let values = prefer(existing);
            assert_eq!(values[0], expected, "{existing:?}");
        }
        // A preference already there leaves every line as it was.
        assert_eq!(prefer(&["wait=5", "respond-async"]).len(), 2);
        assert_eq!(prefer(&["a", "b"]).len(), 1, "merged into one field");
    }

    #[test]
    fn content_length_is_read_strictly() {
        let mut h = HeaderMap::new();
        assert_eq!(content_length(&h), None);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("42"));
        assert_eq!(content_length(&h), Some(42));
        h.append(header::CONTENT_LENGTH, HeaderValue::from_static("42"));
        assert_eq!(content_length(&h), None);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("-1"));
        assert_eq!(content_length(&h), None);
    }
}
