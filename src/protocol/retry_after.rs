//! The server's hint for when to poll next (PROTOCOL §2).

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName};

pub(crate) const RETRY_AFTER_MS: HeaderName = HeaderName::from_static("retry-after-ms");
pub(crate) const X_MS_RETRY_AFTER_MS: HeaderName = HeaderName::from_static("x-ms-retry-after-ms");

/// Reads the first usable hint among `retry-after-ms`, `x-ms-retry-after-ms` and `Retry-After`.
///
/// A header whose value cannot be parsed is skipped rather than fatal, so a garbage
/// `retry-after-ms` still lets a good `Retry-After` count. `now` is asked only for an HTTP-date,
/// and injected so dates can be tested against a fixed clock.
pub(crate) fn retry_after(
    headers: &HeaderMap,
    now: impl FnOnce() -> SystemTime,
) -> Option<Duration> {
    // One pass over the headers: measured cheaper per poll than three hashed look-ups. Like
    // `HeaderMap::get`, it reads the first value of each header only.
    let (mut millis, mut x_ms_millis, mut seconds) = (None, None, None);
    for (name, value) in headers {
        if *name == RETRY_AFTER_MS {
            millis.get_or_insert(value);
        } else if *name == X_MS_RETRY_AFTER_MS {
            x_ms_millis.get_or_insert(value);
        } else if name == http::header::RETRY_AFTER {
            seconds.get_or_insert(value);
        }
    }
    let millis = [millis, x_ms_millis]
        .into_iter()
        .find_map(|value| value.and_then(|v| parse_integer(v.as_bytes())));
    if let Some(ms) = millis {
        return Some(Duration::from_millis(ms));
    }
    let value = seconds?;
    if let Some(secs) = parse_integer(value.as_bytes()) {
        return Some(Duration::from_secs(secs));
    }
    let date = httpdate::parse_http_date(value.to_str().ok()?.trim()).ok()?;
    // A date in the past means "now" (RFC 9110 §10.2.3 gives no other reading).
    Some(date.duration_since(now()).unwrap_or(Duration::ZERO))
}

/// `1*DIGIT` with optional surrounding whitespace; huge values saturate instead of failing, so a
/// "wait forever" hint is still a hint (the caller clamps it).
fn parse_integer(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    // 1994-11-06T08:49:37Z, the RFC 9110 example date.
    const EXAMPLE: u64 = 784_111_777;

    #[test]
    fn seconds_millis_and_dates() {
        type Case<'a> = (&'a [(&'a str, &'a [u8])], Option<Duration>);
        let cases: &[Case<'_>] = &[
            (&[], None),
            (&[("retry-after", b"17")], Some(Duration::from_secs(17))),
            (&[("retry-after", b" 0 ")], Some(Duration::ZERO)),
            (
                &[("retry-after-ms", b"250")],
                Some(Duration::from_millis(250)),
            ),
            (
                &[("x-ms-retry-after-ms", b"1500")],
                Some(Duration::from_millis(1500)),
            ),
            // retry-after-ms wins over the others, x-ms-retry-after-ms over Retry-After.
            (
                &[
                    ("retry-after", b"9"),
                    ("x-ms-retry-after-ms", b"7"),
                    ("retry-after-ms", b"5"),
                ],
                Some(Duration::from_millis(5)),
            ),
            (
                &[("retry-after", b"9"), ("x-ms-retry-after-ms", b"7")],
                Some(Duration::from_millis(7)),
            ),
            // Garbage is skipped, the next header still counts.
            (
                &[("retry-after-ms", b"soon"), ("retry-after", b"3")],
                Some(Duration::from_secs(3)),
            ),
            // Only the first value of a repeated header counts, as with `HeaderMap::get`.
            (
                &[
                    ("retry-after-ms", b"soon"),
                    ("retry-after-ms", b"5"),
                    ("retry-after", b"3"),
                ],
                Some(Duration::from_secs(3)),
            ),
            (&[("retry-after", b"soon"), ("retry-after", b"3")], None),
            (&[("retry-after", b"-5")], None),
            (&[("retry-after", b"1.5")], None),
            (&[("retry-after", b"")], None),
            (&[("retry-after", b"\xff\xfe")], None),
            (&[("retry-after", b"later")], None),
            // Saturates instead of overflowing; the caller clamps it.
            (
                &[("retry-after", b"99999999999999999999999")],
                Some(Duration::from_secs(u64::MAX)),
            ),
            // The three HTTP-date forms of RFC 9110 §5.6.7, 10 s after `now`.
            (
                &[("retry-after", b"Sun, 06 Nov 1994 08:49:47 GMT")],
                Some(Duration::from_secs(10)),
            ),
            (
                &[("retry-after", b"Sunday, 06-Nov-94 08:49:47 GMT")],
                Some(Duration::from_secs(10)),
            ),
            (
                &[("retry-after", b"Sun Nov  6 08:49:47 1994")],
                Some(Duration::from_secs(10)),
            ),
            // A date in the past means now.
            (
                &[("retry-after", b"Sun, 06 Nov 1994 08:00:00 GMT")],
                Some(Duration::ZERO),
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(
                retry_after(&headers(pairs), || at(EXAMPLE)),
                *expected,
                "{pairs:?}"
            );
        }
    }
}
