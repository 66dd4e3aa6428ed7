//! Tower middleware that turns an HTTP long-running operation into one request.
//!
//! Azure Resource Manager, Azure data-plane services and many APIs modelled on them answer
//! slow requests with `201`/`202` and a URL to poll. [`LongRunningLayer`] follows that protocol
//! for you: the response future of the wrapped service resolves only with the **final**
//! response, or with an [`Error`] that says why the operation failed, was canceled or could not
//! be followed.
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
//! The original request is sent **exactly once**; only GETs are ever repeated.
//!
//! | initial response | what the layer does |
//! |---|---|
//! | not 200/201/202/204 | returns it untouched |
//! | 200/201 whose body has a terminal `provisioningState` | returns it (`Failed`/`Canceled` → error) |
//! | `Azure-AsyncOperation`, else `Operation-Location` | polls that status monitor until its `status` is terminal, then fetches the final response (by method, or [`FinalStateVia`]) |
//! | 202 with `Location` | polls it: 202 means running; 200/201/204 is the final response |
//! | PUT/PATCH 200/201 with a non-terminal `provisioningState` | polls the resource until the state is terminal |
//! | anything else | returns it untouched |
//!
//! Waits follow the latest response's `retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After`
//! (seconds or an HTTP-date), clamped to the layer's bounds. Status strings compare
//! case-insensitively; `Canceled` and `Cancelled` both count.
//!
//! # Other protocols
//!
//! The protocol above is the [`Azure`] dialect, the default. [`LongRunningLayer::with_dialect`]
//! follows another: [`Google`]'s AIP-151 operations, or a [`Dialect`] of your own (one `impl`;
//! see the trait). Every dialect gets the same guarantees: the original request sent once, only
//! GETs repeated, the bounds, origin policy and credential stripping below. The rules of each are
//! in the crate's protocol reference (`docs/PROTOCOL.md`).
//!
//! Every way in takes every dialect: [`LongRunning::with_dialect(inner, dialect)`](LongRunning::with_dialect)
//! without a layer, `LongRunningMiddleware::with_dialect(dialect)` for reqwest-middleware
//! (or `From` any `LongRunningLayer<D>`), and tower-lro-fleet's fleets, built from any
//! `LongRunningLayer<D>`. The dialect is chosen, never guessed: the default (Azure) layer hands a
//! Google `Operation` back as it came, not done.
//!
//! To stop an operation on the server, [`LongRunning::cancel`] sends its dialect's cancel
//! request (or a [`CancelVia`] attached when it started); to poll without keeping a future
//! alive, [`LongRunning::step`] does one poll at a time from a [`ResumeToken`].
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
//! # Clients
//!
//! Any `tower::Service<http::Request<B>>` works as it is (hyper-util's client, tower and axum
//! stacks). Optional features adapt the rest:
//!
//! | feature | what |
//! |---|---|
//! | `reqwest` | `ReqwestService`: a `reqwest::Client` (0.13) as the service below the layer |
//! | `reqwest-middleware` | `LongRunningMiddleware`: the layer as a reqwest-middleware (0.5) `Middleware` |
//!
//! Companion crates, each its own dependency:
//!
//! | crate | what |
//! |---|---|
//! | `tower-lro-auth` | `BearerTokenLayer`: a refreshing bearer token on every request below the layer; `AzureCredential` (its feature `azure-core`): an `azure_identity` credential as its token source |
//! | `tower-lro-sim` | `Simulator`: an Azure- and Google-like LRO server on 127.0.0.1 for examples and your own tests |
//! | `tower-lro-fleet` | operations as durable jobs, stepped by workers (SQLite, PostgreSQL) |
//!
//! # What the caller sees
//!
//! The final response carries an [`OperationInfo`] in its extensions (monitor, polls, elapsed
//! time, last status). Errors are one [`Error`] type whose [`ErrorKind`] tells a failed or
//! canceled operation (with the server's `code`, `message`, status and body) from a protocol or
//! transport problem.
//!
//! Per request, insert [`FinalStateVia`] to choose the final response, or [`Polling::Disabled`]
//! to pass one request through untouched.
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
mod token;

pub use body::ResponseBody;
pub use dialect::azure::{Azure, FinalStateVia};
pub use dialect::google::Google;
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
