//! `ReqwestService` end to end against the simulator, for each supported reqwest version: every
//! kind of monitor, a failed operation, resuming, progress, the final response's URL, and a URI
//! reqwest cannot send. Real loopback sockets on the real clock, with millisecond hints; time is
//! only bounded (by `max_polls` and a deadline), never asserted.

mod support;

// The same suite, compiled once per reqwest version: `suite.rs` names the version `reqwest`.
#[path = "."]
mod v0_13 {
    use ::reqwest;
    #[allow(clippy::duplicate_mod, reason = "one source, compiled per version")]
    #[path = "support/reqwest_suite.rs"]
    mod suite;
}
#[path = "."]
mod v0_12 {
    use ::reqwest_0_12 as reqwest;
    #[allow(clippy::duplicate_mod, reason = "one source, compiled per version")]
    #[path = "support/reqwest_suite.rs"]
    mod suite;
}
