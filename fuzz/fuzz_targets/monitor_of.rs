//! Classifying the initial response (PROTOCOL §1) from bytes: a method selector, a status code,
//! then `name-selector value` lines. Never panics, and only 200/201/202/204 are long-running.
#![no_main]

use http::{Method, StatusCode};
use libfuzzer_sys::fuzz_target;

mod headers;
use tower_lro::fuzzing;

const NAMES: [&str; 7] = [
    "azure-asyncoperation",
    "operation-location",
    "location",
    "content-type",
    "content-length",
    "retry-after",
    "x-other",
];
const METHODS: [Method; 6] = [
    Method::GET,
    Method::PUT,
    Method::PATCH,
    Method::POST,
    Method::DELETE,
    Method::HEAD,
];

fuzz_target!(|data: &[u8]| {
    let [m, s0, s1, rest @ ..] = data else {
        return;
    };
    let method = &METHODS[usize::from(*m) % METHODS.len()];
    let Ok(status) = StatusCode::from_u16(100 + u16::from_le_bytes([*s0, *s1]) % 900) else {
        return;
    };
    let headers = headers::from_lines(rest, &NAMES);
    let kind = fuzzing::monitor_of(method, status, &headers);
    if !matches!(status.as_u16(), 200 | 201 | 202 | 204) {
        assert_eq!(kind, None, "{status} is never long-running");
    }
    if kind.is_some() && headers.contains_key("azure-asyncoperation") {
        assert_eq!(
            kind,
            Some("azure-async-operation"),
            "Azure-AsyncOperation wins"
        );
    }
});
