//! Header maps from fuzzer bytes, shared by the targets that need them.

use http::{HeaderMap, HeaderName, HeaderValue};

/// `selector value` lines: the first byte of each picks one of `names`, the rest is its value
/// (skipped when it is not a valid header value).
pub fn from_lines(bytes: &[u8], names: &[&'static str]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in bytes.split(|&b| b == b'\n') {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            let name = names[usize::from(selector) % names.len()];
            headers.append(HeaderName::from_static(name), value);
        }
    }
    headers
}
