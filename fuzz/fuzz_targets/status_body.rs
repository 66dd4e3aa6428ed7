//! Status-monitor and resource bodies (PROTOCOL §3): arbitrary bytes never panic, and what parses
//! obeys the protocol: a non-blank string `status` whose phase is the one `phase` gives, and an
//! `error.code` or `error.message` that is never empty (an empty one is absent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_lro::fuzzing;

fuzz_target!(|body: &[u8]| {
    if let Ok(reading) = fuzzing::status_body(body) {
        assert!(
            !reading.status.trim().is_empty(),
            "a blank status was accepted"
        );
        assert_eq!(reading.phase, fuzzing::phase(&reading.status));
        assert_eq!(
            reading.phase,
            fuzzing::phase(&reading.status.to_ascii_uppercase()),
            "phases are case-insensitive"
        );
        if let Some(percent) = reading.percent_complete {
            assert!(percent.is_finite());
        }
        for detail in [&reading.code, &reading.message] {
            assert!(
                !detail.as_deref().is_some_and(|text| text.trim().is_empty()),
                "an empty error code or message was kept: {detail:?}"
            );
        }
    }
    let _ = fuzzing::provisioning_state(body);
    // Status strings straight from bytes.
    let _ = fuzzing::phase(&String::from_utf8_lossy(body));
});
