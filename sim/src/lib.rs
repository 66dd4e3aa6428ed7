//! An in-process long-running-operation server, for the examples and tests of
//! [tower-lro](https://docs.rs/tower-lro) and for your own: it speaks Azure's protocol (and
//! Google's AIP-151 operations, Azure Durable Functions' HTTP API, the Asynchronous
//! Request-Reply pattern, OData's asynchronous requests, FHIR Bulk Data exports, and OpenAI-,
//! Anthropic- and Replicate-style job APIs) on `127.0.0.1`, with no account and no network. Which
//! one a scenario speaks is its [`Monitor`].
//!
//! [`Simulator::start`] binds `127.0.0.1:0` and serves HTTP/1.1 and HTTP/2 (h2c) from a tokio
//! task. Register [`Scenario`]s for a method and path; each request to that path starts a new
//! operation instance that answers as Azure does: the initial `201`/`202` with its monitor header
//! and `Retry-After`, status monitors that report `InProgress` (with `percentComplete` if asked)
//! and then `Succeeded`, `Failed` or `Canceled`, a `Location` that answers `202` until the result
//! is ready, or a resource whose `provisioningState` moves to a terminal value. Every request is
//! recorded, with its arrival time on tokio's clock, so tests can count requests and measure
//! waits (exactly, under a paused clock).
//!
//! On tokio's paused clock, talk to it through [`Simulator::connect_in_memory`] rather than its
//! socket: the paused clock jumps to the next timer whenever the runtime would otherwise wait,
//! and a real socket's round trip is such a wait, so over loopback a slow answer (a loaded
//! machine) can turn into a poll timeout. In-memory connections never wait on the kernel.
//!
//! ```
//! use std::time::Duration;
//! use http::Method;
//! use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let sim = Simulator::start().await?;
//! sim.add(
//!     Scenario::new(Method::PUT, "/accounts/a", Monitor::Location)
//!         .retry_after(RetryAfter::Seconds(17))
//!         .completes_after_polls(2),
//! );
//! let url = sim.url("/accounts/a?api-version=2016-01-01");
//! // ... send requests to `url` through your stack, then:
//! assert_eq!(sim.count(&Method::PUT, "/accounts/a"), 0);
//! # Ok(()) }
//! ```
//!
//! It depends on no part of tower-lro: it is a server, and what it serves is written out here
//! from the protocols' documents, so a test against it checks the client against the protocol
//! rather than against itself.

#![warn(
    missing_docs,
    rust_2018_idioms,
    unreachable_pub,
    missing_debug_implementations
)]
#![deny(unsafe_code)]

mod durable;
mod fhir;
mod instance;
mod job;
mod odata;
mod request_reply;
mod scenario;
mod server;

pub use scenario::{Completion, Ending, Monitor, RetryAfter, Scenario};
pub use server::{RecordedRequest, Simulator};
