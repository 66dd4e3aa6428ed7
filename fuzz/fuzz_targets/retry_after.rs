//! `Retry-After`, `retry-after-ms` and `x-ms-retry-after-ms` (PROTOCOL §2), from bytes: the first
//! eight bytes are "now" (seconds since the epoch, bounded), the rest is `name-selector value`
//! lines. Never panics; a hint read from `retry-after-ms` is the integer it says.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

mod headers;
use tower_lro::fuzzing;

const NAMES: [&str; 4] = [
    "retry-after",
    "retry-after-ms",
    "x-ms-retry-after-ms",
    "x-other",
];

fuzz_target!(|data: &[u8]| {
    let (now, rest) = data.split_at(data.len().min(8));
    let mut secs = [0u8; 8];
    secs[..now.len()].copy_from_slice(now);
    // Up to the year 9999, where HTTP-dates end.
    let now = UNIX_EPOCH + Duration::from_secs(u64::from_le_bytes(secs) % 253_402_300_800);

    let headers = headers::from_lines(rest, &NAMES);
    let hint = fuzzing::retry_after(&headers, now);

    // The first millisecond header that is all digits decides.
    let digits = |v: &HeaderValue| {
        let t = v.as_bytes().trim_ascii();
        (!t.is_empty() && t.iter().all(u8::is_ascii_digit)).then(|| {
            t.iter().fold(0u64, |acc, d| {
                acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            })
        })
    };
    let millis = ["retry-after-ms", "x-ms-retry-after-ms"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(digits));
    if let Some(ms) = millis {
        assert_eq!(hint, Some(Duration::from_millis(ms)));
    } else if headers.get("retry-after").is_none() {
        assert_eq!(hint, None);
    }
});
