//! Every built-in dialect's verdicts on arbitrary bodies (PROTOCOL §3, §9, §10): never a panic,
//! and what they say obeys the rules every dialect keeps (a malformed verdict says why; an error
//! code or message, from a verdict or from `error_detail`, is never `Some("")` or blank).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_lro::fuzzing;

fuzz_target!(|body: &[u8]| {
    if let Err(broken) = fuzzing::dialect_verdicts(body) {
        panic!("{broken}");
    }
});
