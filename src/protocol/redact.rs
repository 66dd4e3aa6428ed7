//! URLs as they may be shown: in `Debug` output, errors and logs. A query value can be a
//! credential (an Azure SAS `sig=`, a Durable Functions `code=`, a signed Google URL's
//! `X-Goog-Signature=`, a `token=`), and so can userinfo; neither is shown.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether URLs are redacted: a process-wide switch (`telemetry::set_redact_urls`), because
/// `Debug` and `Display` have no configuration to read it from.
static ENABLED: AtomicBool = AtomicBool::new(true);

pub(crate) fn set_enabled(redact: bool) {
    ENABLED.store(redact, Ordering::Relaxed);
}

pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Query parameters whose values are shown: they say which API was called and hold no secret.
const SHOWN: [&str; 1] = ["api-version"];

/// What is shown instead of a hidden value.
pub(crate) const HIDDEN: &str = "REDACTED";

/// `url` with every query value but [`SHOWN`]'s replaced by [`HIDDEN`], userinfo dropped and the
/// fragment dropped. Text with neither a query, userinfo nor a fragment is returned as it is.
pub(crate) fn url(url: &str) -> Cow<'_, str> {
    if !enabled() {
        return Cow::Borrowed(url);
    }
    let authority_start = url.find("://").map(|i| i + 3);
    let userinfo_end = authority_start.and_then(|start| {
        let authority_len = url[start..]
            .find(['/', '?', '#'])
            .unwrap_or(url.len() - start);
        url[start..start + authority_len]
            .rfind('@')
            .map(|at| start + at + 1)
    });
    if userinfo_end.is_none() && !url.contains(['?', '#']) {
        return Cow::Borrowed(url);
    }
    let mut shown = String::with_capacity(url.len());
    let rest = match (authority_start, userinfo_end) {
        (Some(start), Some(end)) => {
            shown.push_str(&url[..start]);
            &url[end..]
        }
        _ => url,
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    shown.push_str(path);
    if let Some(query) = query {
        shown.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                shown.push('&');
            }
            match pair.split_once('=') {
                Some((name, value)) => {
                    shown.push_str(name);
                    shown.push('=');
                    if SHOWN.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                        shown.push_str(value);
                    } else {
                        shown.push_str(HIDDEN);
                    }
                }
                None => shown.push_str(pair),
            }
        }
    }
    Cow::Owned(shown)
}

/// `text` with every absolute `http`/`https` URL in it shown by [`url`]: for messages and
/// errors that may quote one (a server's error message, a client's error naming its request).
pub(crate) fn text(text: &str) -> Cow<'_, str> {
    if !enabled() || !contains_scheme(text) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = find_scheme(rest) {
        shown.push_str(&rest[..at]);
        let candidate = &rest[at..];
        // A URL ends where text that cannot be part of one begins; `,`, `)`, `'` and the like
        // can be inside one (`?ids=1,2`, OData's `Products(1)`), so only a trailing run of them
        // is taken for the text around it.
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '<' | '>' | '`'))
            .unwrap_or(candidate.len());
        let end = candidate[..end]
            .trim_end_matches(['.', ',', ')', ']', '}', '\'', ';', ':', '!', '?'])
            .len();
        shown.push_str(&url(&candidate[..end]));
        rest = &candidate[end..];
    }
    shown.push_str(rest);
    Cow::Owned(shown)
}

fn contains_scheme(text: &str) -> bool {
    find_scheme(text).is_some()
}

/// Where the first `http://` or `https://` (ASCII case-insensitive) in `text` begins.
fn find_scheme(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(colon) = text[from..].find("://").map(|i| from + i) {
        for scheme in ["https", "http"] {
            if let Some(start) = colon.checked_sub(scheme.len()) {
                let named = bytes[start..colon].eq_ignore_ascii_case(scheme.as_bytes());
                // `xhttps://` is not a URL this looks for; `(https://` is.
                let bounded = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
                if named && bounded {
                    return Some(start);
                }
            }
        }
        from = colon + 3;
    }
    None
}

/// Every string in `value` that holds a URL's query or userinfo, shown by [`url`].
pub(crate) fn json(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::String(text) => serde_json::Value::String(url(text).into_owned()),
        serde_json::Value::Array(items) => items.iter().map(json).collect(),
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(key, value)| (key.clone(), json(value)))
            .collect(),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_and_userinfo_are_hidden() {
        for (given, shown) in [
            ("https://a.example/ops/1", "https://a.example/ops/1"),
            ("/ops/1", "/ops/1"),
            (
                "https://a.example/ops/1?api-version=2024-01-01&sig=abc%2Bdef",
                "https://a.example/ops/1?api-version=2024-01-01&sig=REDACTED",
            ),
            (
                "https://f.example/runtime/webhooks/durabletask/instances/1?taskHub=h&connection=Storage&code=k3y==",
                "https://f.example/runtime/webhooks/durabletask/instances/1?taskHub=REDACTED&connection=REDACTED&code=REDACTED",
            ),
            (
                "https://storage.googleapis.com/b/o?X-Goog-Signature=ff00&X-Goog-Expires=900",
                "https://storage.googleapis.com/b/o?X-Goog-Signature=REDACTED&X-Goog-Expires=REDACTED",
            ),
            ("https://user:pass@a.example/x?token=t", "https://a.example/x?token=REDACTED"),
            ("https://a.example/x?flag&API-VERSION=1", "https://a.example/x?flag&API-VERSION=1"),
            ("https://a.example/x#frag", "https://a.example/x"),
            // An `@` in the path is not userinfo.
            ("https://a.example/users/@me", "https://a.example/users/@me"),
            ("not a url?secret=1", "not a url?secret=REDACTED"),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
    }

    #[test]
    fn urls_inside_text_are_hidden() {
        for (given, shown) in [
            ("no url here", "no url here"),
            ("", ""),
            (
                "error sending request for url (https://a.example/op?sig=s3cr3t&api-version=1)",
                "error sending request for url (https://a.example/op?sig=REDACTED&api-version=1)",
            ),
            (
                "see HTTPS://u:p@a.example/x?code=k and http://b.example/y?token=t.",
                "see HTTPS://a.example/x?code=REDACTED and http://b.example/y?token=REDACTED.",
            ),
            (
                "\"https://a.example/x?sig=1\",",
                "\"https://a.example/x?sig=REDACTED\",",
            ),
            ("xhttps://a.example/x?sig=1", "xhttps://a.example/x?sig=1"),
            (
                "(https://a.example/op?ids=1,2&sig=s3cr3t)",
                "(https://a.example/op?ids=REDACTED&sig=REDACTED)",
            ),
            (
                r#"url: "https://svc/odata/Products(1)/x?sig=s3cr3t""#,
                r#"url: "https://svc/odata/Products(1)/x?sig=REDACTED""#,
            ),
            (
                "https://a.example/x?f='a'&code=s3cr3t.",
                "https://a.example/x?f=REDACTED&code=REDACTED.",
            ),
            ("://?sig=1 https://", "://?sig=1 https://"),
        ] {
            assert_eq!(text(given), shown, "{given}");
        }
    }

    #[test]
    fn urls_inside_json_are_hidden_too() {
        let state = serde_json::json!({
            "kind": "durable",
            "terminate": "https://f.example/t?reason={text}&code=k3y",
            "urls": ["https://a.example/x?sig=s"],
            "n": 3,
        });
        let shown = json(&state).to_string();
        assert!(
            !shown.contains("k3y") && !shown.contains("sig=s"),
            "{shown}"
        );
        assert!(
            shown.contains(r#""kind":"durable""#) && shown.contains(r#""n":3"#),
            "{shown}"
        );
    }
}
