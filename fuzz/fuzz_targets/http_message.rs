//! A whole HTTP response carried as a body (`application/http`, PROTOCOL §13), from arbitrary
//! bytes. Never panics; an accepted message has a status in 100–599, at most 100 headers, and a
//! body that lies within the input after its head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_lro::fuzzing;

fuzz_target!(|data: &[u8]| {
    if let Ok((status, headers, body)) = fuzzing::http_message(data) {
        assert!((100..=599).contains(&status));
        assert!(headers.len() <= 100);
        assert!(body.start <= body.end && body.end <= data.len());
        assert!(data[..body.start].windows(2).any(|w| w == b"\n\n" || w == b"\r\n"));
    }
});
