//! Tower middleware that turns an HTTP long-running operation into one request.
//!
//! Azure Resource Manager, Azure data-plane services, Google's APIs and many APIs modelled on
//! them answer slow requests with `201`/`202` (or an `Operation`) and a URL to poll.
//! [`LongRunningLayer`] follows that protocol for you: the response future of the wrapped service
//! resolves only with the **final** response, or with an [`Error`] that says why the operation
//! failed, was canceled or could not be followed.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_lro::LongRunningLayer;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let service = ServiceBuilder::new().layer(LongRunningLayer::new()).service(client);
//!
//! let put_storage_account = http::Request::put(
//!     "http://127.0.0.1:8080/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a?api-version=2016-01-01",
//! )
//! .header("content-type", "application/json")
//! .body(Full::from(r#"{"location":"South Central US","sku":{"name":"Standard_LRS"},"kind":"Storage"}"#))?;
//!
//! // Resolves after the 202, the `Retry-After: 17` wait and the polls, with the 200 and the
//! // storage account's properties.
//! let response = service.oneshot(put_storage_account).await?;
//! # Ok(()) }
//! ```
//!
//! # The protocol
//!
//! The original request is sent **exactly once**; only GETs are repeated, at the server's
//! `Retry-After` (clamped), to monitor URLs on the request's own origin, a bounded number of
//! times. Which responses are followed, how each status is read, which response is final and
//! every bound: the [protocol reference](_protocol) (`docs/PROTOCOL.md` in the repository).
//! The settings and their defaults: [`LongRunningLayer`].
//!
//! The default protocol is the [`Azure`] dialect; [`LongRunningLayer::with_dialect`] follows
//! [`Google`]'s AIP-151 operations or a [`Dialect`] of your own, with the same guarantees. The
//! dialect is chosen, never guessed. Every way in takes every dialect:
//! [`LongRunning::with_dialect`] without a layer, `LongRunningMiddleware::with_dialect` for
//! reqwest-middleware, and tower-lro-fleet's fleets.
//!
//! # Where to put the layer
//!
//! Layers **below** `LongRunningLayer` (auth, user agent, per-request retry and timeout, the
//! HTTP client) see the original request and every poll; layers **above** it see the whole
//! operation as one call. So put authentication below it, so each poll is signed afresh, and a
//! whole-operation `TimeoutLayer` above it (or use [`LongRunningLayer::timeout`]).
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(hours))       // whole operation
//!     .layer(LongRunningLayer::new())        // follows the operation
//!     .layer(auth)                           // every request, polls included
//!     .service(client)
//! ```
//!
//! # Features
//!
//! Any `tower::Service<http::Request<B>>` works as it is (hyper-util's client, tower and axum
//! stacks). Optional features adapt the rest:
//!
//! | feature | default | what |
//! |---|---|---|
//! | `tracing` | on | an `INFO` span per operation and per poll, a warning per transient retry (docs/OBSERVABILITY.md) |
//! | `metrics` | off | operation metrics through the `metrics` facade (0.24): operations in flight, their durations and outcomes, polls, waits (docs/OBSERVABILITY.md) |
//! | `opentelemetry` | off | the W3C trace context of an operation's start in its resume tokens, and links to it from the spans of the steps, resumptions and cancels that continue it, in any process (opentelemetry 0.33 through tracing-opentelemetry 0.34; enables `tracing`) |
//! | `reqwest` | off | `ReqwestService`: a `reqwest::Client` (0.13) as the service below the layer |
//! | `reqwest-middleware` | off | `LongRunningMiddleware`: the layer as a reqwest-middleware (0.5) `Middleware` (enables `reqwest`) |
//!
//! None of them enables a TLS backend or any other reqwest feature: your own `reqwest` dependency
//! chooses (Cargo merges the features). Companion crates, each its own dependency:
//!
//! | crate | what |
//! |---|---|
//! | `tower-lro-sim` | `Simulator`: an LRO server on 127.0.0.1 for examples and your own tests, speaking every built-in dialect's protocol |
//! | `tower-lro-auth` | `BearerTokenLayer`: a refreshing bearer token on every request below the layer; with its feature `azure-core`, `AzureCredential`: an `azure_core`/`azure_identity` credential as its token source (Rust 1.88, as azure_core) |
//! | `tower-lro-fleet` | operations as durable jobs on apalis (SQLite, PostgreSQL), stepped by any number of workers |
//!
//! # What the caller sees
//!
//! The final response carries an [`OperationInfo`] in its extensions (monitor, polls, elapsed
//! time, the operation's last state). Errors are one [`Error`] type whose [`ErrorKind`] tells a
//! failed or canceled operation (with the server's `code`, `message`, status and body) from a
//! protocol or transport problem. An error's `Display` is its own message; its causes are its
//! [`source`](std::error::Error::source) chain.
//!
//! Per request, insert into the request's extensions [`FinalStateVia`] to choose the final
//! response, [`Polling::Disabled`] to pass one request through untouched,
//! [`Polling::AcceptOnly`] to get the initial response back at once with a [`ResumeToken`], or
//! a [`progress::channel`] sender to watch the operation. A [`ResumeToken`] continues an
//! operation elsewhere ([`LongRunning::resume`]), one poll at a time ([`LongRunning::step`]), or
//! cancels it on the server ([`LongRunning::cancel`]).
//!
//! # Runtime
//!
//! Waits use tokio timers, so the future must be polled inside a tokio runtime with the time
//! driver enabled.

#![warn(
    missing_docs,
    rust_2018_idioms,
    unreachable_pub,
    missing_debug_implementations
)]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod config;
pub mod dialect;
mod error;
pub mod future;
#[cfg(feature = "_fuzzing")]
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub)]
pub mod fuzzing;
mod info;
mod layer;
#[cfg(feature = "reqwest-middleware")]
mod middleware;
mod options;
pub mod progress;
mod protocol;
#[cfg(feature = "reqwest")]
mod reqwest;
mod service;
pub mod telemetry;
mod token;

#[cfg(doc)]
#[doc = include_str!("../docs/PROTOCOL.md")]
pub mod _protocol {}

/// The README's Rust blocks, compiled (and run unless `no_run`) by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use body::ResponseBody;
pub use dialect::async_request_reply::AsyncRequestReply;
pub use dialect::azure::{Azure, FinalStateVia};
pub use dialect::durable_functions::DurableFunctions;
pub use dialect::fhir_bulk_data::FhirBulkData;
pub use dialect::google::Google;
pub use dialect::json_job::JsonJob;
pub use dialect::odata_async::ODataAsync;
pub use dialect::Dialect;
pub use error::{BoxError, Error, ErrorKind};
pub use future::{NextStep, Step};
pub use info::OperationInfo;
pub use layer::{InvalidOrigin, LongRunningLayer, Origin};
pub use options::{CancelVia, CredentialsWithheld, Polling};
pub use service::LongRunning;
pub use token::{InvalidToken, ResumeToken};

#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub use self::reqwest::ReqwestService;
#[cfg(feature = "reqwest-middleware")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest-middleware")))]
pub use middleware::LongRunningMiddleware;
