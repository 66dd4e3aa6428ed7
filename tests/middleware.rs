//! `LongRunningMiddleware` end to end, for each supported reqwest-middleware version: the rest of
//! the chain sees every round trip, `with_extension` steers the layer, errors downcast to
//! `tower_lro::Error`, a token resumes, cross-origin polls are marked; and, for 0.5, what
//! reqwest-retry retries before and after it. Real loopback sockets on the real clock.

mod support;

// The same suite, compiled once per version: `middleware_suite.rs` names them `reqwest` and
// `reqwest_middleware`.
#[path = "."]
mod v0_5 {
    use ::reqwest;
    use ::reqwest_middleware;
    #[path = "support/middleware_retry.rs"]
    mod retry;
    #[allow(clippy::duplicate_mod, reason = "one source, compiled per version")]
    #[path = "support/middleware_suite.rs"]
    mod suite;
}
#[path = "."]
mod v0_4 {
    use ::reqwest_0_12 as reqwest;
    use ::reqwest_middleware_0_4 as reqwest_middleware;
    #[allow(clippy::duplicate_mod, reason = "one source, compiled per version")]
    #[path = "support/middleware_suite.rs"]
    mod suite;
}
