//! Long-running operations that outlive the process: each operation is a durable job on
//! [apalis](https://docs.rs/apalis), stepped by any worker of a fleet, and its outcome goes to a
//! handler of yours.
//!
//! A control plane that starts Azure (or Google, or any [`Dialect`])
//! operations for its own users cannot hold a future open for the hour a deployment takes, nor
//! lose track of it when it restarts. With a [`Fleet`]:
//!
//! 1. **Start**: [`Fleet::start`] sends the request once, with
//!    [`Polling::AcceptOnly`], and enqueues the operation's
//!    [`ResumeToken`] before it returns; answer your own caller only after that.
//! 2. **Step**: a worker ([`Fleet::run_worker`], any number, in any process that reaches the
//!    store) takes the job, does one step (one poll, plus the final GET when that poll says
//!    succeeded) and enqueues the next step at the time the server asked for.
//! 3. **Deliver**: the step that ends the operation hands a [`Delivery`] (the operation's
//!    [`OperationId`] and your key, with the final response or the typed [`tower_lro::Error`])
//!    to your handler, a tower `Service`.
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower_lro::LongRunningLayer;
//! use tower_lro_fleet::{Delivery, FleetBuilder, Store};
//!
//! # async fn run(request: http::Request<Full<Bytes>>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let handler = tower::service_fn(|delivery: Delivery<hyper::body::Incoming>| async move {
//!     // Record it under delivery.id() (a second delivery carries the same id), then Ok.
//!     println!("{} {}: {:?}", delivery.id(), delivery.key(), delivery.result().as_ref().map(|r| r.status()));
//!     Ok::<_, std::convert::Infallible>(())
//! });
//! let fleet = FleetBuilder::new(Store::sqlite("operations.db").await?)
//!     .build(LongRunningLayer::new(), client, handler)?;
//!
//! // In the request handler: started and tracked before we answer our caller.
//! let started = fleet.start("order-17", request).await?;
//!
//! // In every worker process:
//! fleet.run_worker("worker", std::future::pending()).await;
//! # Ok(()) }
//! ```
//!
//! # Dialects
//!
//! A fleet follows the protocol of the layer it is built from: `LongRunningLayer::new()` for
//! Azure's, `LongRunningLayer::with_dialect(Google::new())` for Google's AIP-151 operations, or
//! a [`Dialect`] of your own; `D` in [`Fleet<S, H, ReqBody, D>`](Fleet)
//! names it. Tokens are resumed only by a layer of the dialect that issued them, so a token of
//! another dialect given to [`Fleet::track`] is delivered as an
//! [`InvalidResumeToken`](tower_lro::ErrorKind::InvalidResumeToken) error. For operations of
//! several dialects, build one fleet whose dialect is their [`Dialect::or`] when their initial
//! answers differ (Azure, Google, FHIR Bulk Data and the `JsonJob` presets do), and one fleet per
//! dialect, each on its own [`queue`](FleetBuilder::queue), for dialects that start alike (Durable
//! Functions, Request-Reply and OData all answer `202` with a `Location`, as Azure may).
//!
//! ```no_run
//! # use bytes::Bytes;
//! # use http_body_util::Full;
//! # use hyper_util::client::legacy::Client;
//! # use hyper_util::rt::TokioExecutor;
//! use tower_lro::{Google, LongRunningLayer};
//! use tower_lro_fleet::{Fleet, FleetBuilder, Store};
//!
//! # async fn run<H>(handler: H) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let fleet: Fleet<_, H, Full<Bytes>, Google> = FleetBuilder::new(Store::sqlite("operations.db").await?)
//!     .queue("google-operations")
//!     .build(LongRunningLayer::with_dialect(Google::new()), client, handler)?;
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! - **The initial request is sent once** and never by a worker: workers only resume tokens,
//!   and a token only ever sends GETs. [`Fleet::start`] returns only once the token is in the
//!   store; if the process dies after the server accepted and before the enqueue committed, the
//!   caller never got an answer (so it knows nothing was promised) and the server runs an
//!   operation nobody tracks; an enqueue that fails returns the token in
//!   [`FleetError::untracked`].
//! - **No operation is lost**: a step's successor is enqueued before the step is acknowledged,
//!   and a job held by a worker that died (or lost the database) comes back to the queue when
//!   its lease runs out (heartbeat × missed heartbeats). Each step has an idempotency key (the
//!   operation and the step's number), so a step that runs again enqueues nothing new: an
//!   operation never forks into two chains.
//! - **Each outcome is delivered once under normal operation, at least once across crashes.**
//!   Twice can happen only when the worker delivering it dies, or loses the database, after the
//!   handler returned and before the job's acknowledgement committed; or when a worker dies
//!   after enqueueing a step's successor and before acknowledging the step, the successors go
//!   on to the end, and the step (re-run after the lease) finds the operation ended too. Both
//!   deliveries carry the same [`OperationId`]. A handler that fails is retried by the engine
//!   (the whole step again, from the same kept token, backing off), up to `job_attempts` runs;
//!   then the job stays in the store as failed, token included.
//! - **Duplicate polls are bounded**: only a step that was running when its worker died is
//!   polled again, once, after the lease.
//! - **A retried start never forks an operation** when it names the operation: with an id of
//!   yours ([`OperationId::generate`], kept with your own record), [`Fleet::start_as`] sends
//!   the request only if the store holds no step of that operation (else
//!   [`Started::AlreadyTracked`]), and [`Fleet::track_as`] enqueues nothing new. This assumes
//!   the store acknowledges only durable commits (the databases' defaults: keep
//!   `synchronous_commit` on); two calls with one id at the same moment may both send.
//! - **No poll before the server's hint**: the first step waits for the initial response's
//!   hint ([`ResumeToken::next_poll_in`]) as every later step waits for its poll's, rounded
//!   up to the store's whole second; [jitter](FleetBuilder::jitter) only ever adds to a hint.
//! - **A cancel is sent once**: [`Fleet::cancel`] marks the operation's waiting step, and the
//!   worker that takes it marks it sent in the store before sending the dialect's cancel
//!   request through the layer; a worker that dies after that mark leaves it unsent rather
//!   than sent twice. The outcome (`Canceled`, or the final response if the operation
//!   completed first) reaches the handler as any other.
//!
//! # Errors that carry a token
//!
//! An error without a [`resume_token`](tower_lro::Error::resume_token) ends the operation: it
//! is the outcome. An error with one means the operation may still be running (the server
//! stayed unreachable through the layer's transient retries, answered a status the protocol
//! does not allow, a deadline passed): the fleet takes the step again from that token after
//! `step_retry_delay`, doubling, up to `step_retries` times in a row, and then delivers the
//! error (with its token, so it can be tracked again). `TooManyPolls` is delivered at once: more
//! steps cannot change a bound.
//!
//! # Operating a fleet
//!
//! - **Scheduling**: the stores schedule in whole seconds, so a step runs at the first whole
//!   second at or after the time the server asked for: rounded up, never early. The first
//!   step is due when the token says ([`ResumeToken::next_poll_in`]: the initial response's
//!   hint, else the layer's first delay). Each wait is spread by
//!   [`jitter`](FleetBuilder::jitter) (±10 % by default; a server's hint only grows), so
//!   operations started together do not poll together.
//! - **Seeing and steering**: [`Fleet::status`] (last reported state, percent complete, polls,
//!   when the next step is due, the runs of its job, the last error, a cancel's state),
//!   [`Fleet::in_flight`] (the operations in flight, a page at a time, by id) and
//!   [`Fleet::cancel`]. They read the store (any process that reaches it can ask); on
//!   PostgreSQL the fleet adds one index (`tower_lro_fleet_chains`) to find an operation's
//!   steps by its id.
//! - **Bad rows**: a stored token that is corrupt or foreign (another version, another origin,
//!   another dialect) becomes an [`InvalidResumeToken`](tower_lro::ErrorKind::InvalidResumeToken)
//!   delivery for its operation. A row the fleet cannot step at all (a job id that is not a
//!   ULID, metadata the engine cannot decode, a payload that is not a fleet job: foreign, not
//!   JSON, truncated, or of another payload version) is moved, in the transaction that claimed
//!   it, to a quarantine table and reported once: a warning, [`Fleet::quarantined`] (a count)
//!   and [`Fleet::quarantined_rows`] (the rows, payload byte for byte). Every other job of the
//!   batch is stepped as usual. The fleet claims with the engine's own claim and decodes the
//!   rows itself because apalis's stores decode a batch all or nothing: one such row failed
//!   every fetch (or, for a NULL hstore value, panicked apalis-postgres 1.0), and no good job
//!   was stepped again.
//! - **A database that goes away**: apalis's `Monitor` restarts the worker; the new one (with a
//!   fresh name) waits [`restart_delay`](FleetBuilder::restart_delay) before it touches the
//!   store, and so on until the database is back; its jobs come back to the queue after the
//!   lease. `Store::postgres` waits for a server that is not up yet (up to 30 s, or
//!   `Store::postgres_within`).
//! - **The store must keep what it acknowledged**: "no operation is lost" holds only if a
//!   commit the database acknowledged survives its crash. Keep PostgreSQL's durable defaults
//!   (`fsync`, `synchronous_commit`, `full_page_writes` on; the fleet's tests run with them)
//!   and SQLite's (`synchronous` not `OFF`). With `synchronous_commit=off`, an immediate
//!   PostgreSQL stop lost operations that `start` had reported tracked.
//! - **Finished rows**: each operation has exactly one live job row; apalis keeps every finished
//!   step's row (about 2 KB with its indexes) for inspection, and the workers prune them once
//!   older than [`retention`](FleetBuilder::retention) (7 days by default): one background task
//!   per fleet and worker process, in batches of 1,000 with pauses, touching only the `Done`
//!   rows of the fleet's queue. Waiting, running and failed jobs stay until removed on purpose.
//! - **TLS to a remote PostgreSQL** is your choice: enable `sqlx/tls-rustls` (or another TLS
//!   feature of sqlx) in your own manifest.
//!
//! # Features
//!
//! One per store, so an application builds only the driver it uses: `sqlite` (the default:
//! `Store::sqlite`) and `postgres` (`Store::postgres`). A PostgreSQL-only fleet:
//! `tower-lro-fleet = { version = "0.1", default-features = false, features = ["postgres"] }`.
//!
//! Throughput and memory at 1,000 to 100,000 operations in flight: `docs/PERFORMANCE.md` in the
//! repository.

#![warn(
    missing_docs,
    rust_2018_idioms,
    unreachable_pub,
    missing_debug_implementations
)]
#![deny(unsafe_code)]

/// The README's Rust blocks, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod backend;
mod delivery;
mod error;
mod jitter;
mod job;
mod quarantine;
mod retention;
mod settings;
mod status;
mod store;
mod worker;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apalis_core::error::BoxDynError;
use http::{Request, Response};
use http_body::Body;
use tower::{Layer, Service, ServiceExt};
use tower_lro::{
    Azure, BoxError, Dialect, Error, ErrorKind, LongRunningLayer, Polling, ResponseBody,
    ResumeToken,
};

pub use delivery::Delivery;
pub use error::{FleetError, FleetErrorKind};
pub use job::OperationId;
pub use quarantine::Quarantined;
pub use status::{CancelState, OperationPage, OperationStatus, Phase};
pub use store::Store;

use jitter::Jitter;
use job::Job;
use quarantine::Quarantine;
use settings::Settings;
use tower_lro::Step;

/// Tracks long-running operations as durable jobs; see the [crate documentation](crate).
///
/// `S` is the HTTP service polls go through (below the layer: a client, with auth), `H` the
/// handler deliveries go to, `ReqBody` the request body type of `S`, `D` the
/// [`Dialect`] of the layer it was built from ([`Azure`] unless the layer was made with
/// `LongRunningLayer::with_dialect`). Cheap to clone: clones share everything.
pub struct Fleet<S, H, ReqBody, D = Azure> {
    shared: Arc<Shared<S, H, ReqBody, D>>,
}

struct Shared<S, H, ReqBody, D> {
    store: Store,
    settings: Settings,
    jitter: Jitter,
    layer: LongRunningLayer<D>,
    inner: S,
    handler: H,
    /// Whether a worker of this fleet in this process runs the pruner.
    pruning: Arc<AtomicBool>,
    quarantine: Arc<Quarantine>,
    _body: PhantomData<fn(ReqBody)>,
}

impl<S, H, ReqBody, D> Clone for Fleet<S, H, ReqBody, D> {
    fn clone(&self) -> Self {
        Fleet {
            shared: self.shared.clone(),
        }
    }
}

impl<S, H, ReqBody, D: fmt::Debug> fmt::Debug for Fleet<S, H, ReqBody, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("store", &self.shared.store)
            .field("settings", &self.shared.settings)
            .field("layer", &self.shared.layer)
            .finish_non_exhaustive()
    }
}

/// Settings for a [`Fleet`], then [`build`](FleetBuilder::build).
///
/// | setting | default | why |
/// |---|---|---|
/// | [`queue`](Self::queue) | `tower-lro-fleet` | fleets with other handlers share a database under other names |
/// | [`heartbeat`](Self::heartbeat), [`missed_heartbeats`](Self::missed_heartbeats) | 30 s, 2 | the lease: a dead worker's jobs come back after a minute; a step takes a second or two |
/// | [`fetch_interval`](Self::fetch_interval) | 250 ms | how late a due step may start, at one cheap query per worker per interval |
/// | [`batch_size`](Self::batch_size) | 32 | jobs claimed per query |
/// | [`concurrency`](Self::concurrency) | 256 | steps in flight per worker: each is one HTTP request |
/// | [`step_retries`](Self::step_retries), [`step_retry_delay`](Self::step_retry_delay) | 5, 30 s doubling | an unreachable server is given about 15 minutes beyond the layer's own retries |
/// | [`job_attempts`](Self::job_attempts), [`retry_backoff`](Self::retry_backoff) | 10, 1 s – 60 s | a failing handler (or store) is retried for a few minutes |
/// | [`restart_delay`](Self::restart_delay) | 1 s | a worker whose database went away tries again every second |
/// | [`retention`](Self::retention), [`prune_interval`](Self::prune_interval) | 7 days, 60 s | finished steps' rows are kept a week for inspection, then pruned in the background |
/// | [`jitter`](Self::jitter) | 0.1 | operations started together spread their polls over ±10 % of each wait (a server's hint only grows) |
///
/// ```
/// use std::time::Duration;
/// # async fn run(store: tower_lro_fleet::Store) {
/// let builder = tower_lro_fleet::FleetBuilder::new(store)
///     .heartbeat(Duration::from_secs(5))
///     .concurrency(64);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FleetBuilder {
    store: Store,
    settings: Settings,
}

impl FleetBuilder {
    /// Settings with the defaults above, for a fleet on `store`.
    pub fn new(store: Store) -> FleetBuilder {
        FleetBuilder {
            store,
            settings: Settings::default(),
        }
    }

    /// The apalis queue (job type) the fleet's jobs use.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.settings.queue = queue.into();
        self
    }

    /// How often a worker tells the store it is alive (at least 1 s: the stores count seconds).
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.settings.heartbeat = interval;
        self
    }

    /// How many heartbeats a worker may miss before its jobs are given to others.
    pub fn missed_heartbeats(mut self, missed: usize) -> Self {
        self.settings.missed_heartbeats = missed;
        self
    }

    /// How often an idle worker asks the store for due steps.
    pub fn fetch_interval(mut self, interval: Duration) -> Self {
        self.settings.fetch_interval = interval;
        self
    }

    /// How many jobs a worker claims per query.
    pub fn batch_size(mut self, size: usize) -> Self {
        self.settings.batch_size = size;
        self
    }

    /// How many steps one worker runs at once.
    pub fn concurrency(mut self, steps: usize) -> Self {
        self.settings.concurrency = steps;
        self
    }

    /// How many times in a row a step that failed with a token is taken again before its error
    /// is delivered.
    pub fn step_retries(mut self, retries: u32) -> Self {
        self.settings.step_retries = retries;
        self
    }

    /// The wait before the first retried step, doubling for each further one (at most an hour);
    /// never less than the server's last hint.
    pub fn step_retry_delay(mut self, delay: Duration) -> Self {
        self.settings.step_retry_delay = delay;
        self
    }

    /// How many times the engine runs one step's job that fails (the handler failed, or the
    /// store refused the next step) before it keeps the job as failed.
    pub fn job_attempts(mut self, attempts: usize) -> Self {
        self.settings.job_attempts = attempts;
        self
    }

    /// The exponential backoff between runs of a failing job, from `min` up to `max`, jittered.
    pub fn retry_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.settings.retry_backoff = (min, max);
        self
    }

    /// The wait before a worker whose store failed starts again.
    pub fn restart_delay(mut self, delay: Duration) -> Self {
        self.settings.restart_delay = delay;
        self
    }

    /// How long the row of a finished step is kept (from when it finished) before the pruner
    /// deletes it. Every worker process prunes its fleet's queue in the background: one task
    /// per fleet and process, in batches of 1,000 rows with a pause after each, so stepping
    /// never waits on it. Only finished (`Done`) rows of the fleet's queue are deleted; waiting,
    /// running and failed jobs, and quarantined rows, stay until removed on purpose.
    /// `Duration::MAX` keeps every row. Whatever the setting, a row is kept at least three
    /// [leases](Fleet::lease): a step re-run after its worker died must still find its
    /// successor's idempotency key, or it would enqueue that step again.
    ///
    /// ```
    /// use std::time::Duration;
    /// # async fn run(store: tower_lro_fleet::Store) {
    /// let builder = tower_lro_fleet::FleetBuilder::new(store)
    ///     .retention(Duration::from_secs(24 * 3600)); // a day
    /// # }
    /// ```
    pub fn retention(mut self, age: Duration) -> Self {
        self.settings.retention = age;
        self
    }

    /// How often the pruner looks for finished rows older than the [`retention`](Self::retention)
    /// age (it goes on at once, with pauses, while it finds full batches).
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.settings.prune_interval = interval;
        self
    }

    /// How far each step's wait is spread at random, as a fraction of it (in `[0, 1)`; 0 turns
    /// it off), so that operations started together do not poll together. A wait the server
    /// asked for ([`ResumeToken::next_poll_hinted`]) is a floor: it only grows, up to
    /// `wait × (1 + fraction)`. The layer's own schedule and the fleet's retry delays move
    /// either way, within `wait × (1 ± fraction)`. Then the store rounds up to its whole second.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.settings.jitter = fraction;
        self
    }

    /// The fleet: steps go through `layer` over `inner` (the same stack `LongRunningLayer` would
    /// wrap), deliveries to `handler`. The layer's dialect is the fleet's: any
    /// `LongRunningLayer<D>` (`LongRunningLayer::new()` for Azure,
    /// `LongRunningLayer::with_dialect(Google::new())`, a dialect of your own). Fails with
    /// [`FleetErrorKind::Config`] for a setting out of range.
    ///
    /// The layer is a concrete type, so a wrong one is a type error at this argument ("expected
    /// `LongRunningLayer<_>`"), and a layer of a type that is not a [`Dialect`] fails this
    /// method's bound, not a later call:
    ///
    /// ```compile_fail,E0308
    /// # fn run<S, H>(builder: tower_lro_fleet::FleetBuilder, client: S, handler: H) {
    /// let fleet = builder.build::<S, H, (), _>(tower::layer::util::Identity::new(), client, handler);
    /// # }
    /// ```
    pub fn build<S, H, ReqBody, D: Dialect>(
        self,
        layer: LongRunningLayer<D>,
        inner: S,
        handler: H,
    ) -> Result<Fleet<S, H, ReqBody, D>, FleetError> {
        self.settings.check()?;
        Ok(Fleet {
            shared: Arc::new(Shared {
                store: self.store,
                settings: self.settings,
                jitter: Jitter::random(),
                layer,
                inner,
                handler,
                pruning: Arc::new(AtomicBool::new(false)),
                quarantine: Arc::default(),
                _body: PhantomData,
            }),
        })
    }
}

/// What [`Fleet::start`] did with the initial response.
#[derive(Debug)]
#[non_exhaustive]
pub enum Started<B> {
    /// The response started a long-running operation, now tracked as `id`: its outcome will go
    /// to the handler. `response` is the initial response (a `202`, say).
    Tracked {
        /// The operation's identity, as the handler will see it.
        id: OperationId,
        /// The initial response.
        response: Response<ResponseBody<B>>,
    },
    /// The response did not start an operation (a plain `200`, a `400`, an operation that was
    /// already over): nothing to track, and the handler will not hear of it.
    NotLongRunning(Response<ResponseBody<B>>),
    /// [`Fleet::start_as`] found operation `id` already in the store: an earlier call with
    /// that id got as far as the enqueue (its answer was lost, say). Nothing was sent; the
    /// handler hears of the operation once, as for any other.
    AlreadyTracked {
        /// The operation's identity, as given.
        id: OperationId,
    },
}

impl<S, H, ReqBody, D> Fleet<S, H, ReqBody, D> {
    /// The store the fleet's jobs live in.
    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    /// The lease: how long the jobs of a worker that stopped heartbeating stay with it.
    pub fn lease(&self) -> Duration {
        self.shared.settings.lease()
    }

    /// How many rows this fleet's workers moved to the quarantine since the fleet was built:
    /// rows in its queue they could not step (see [`Quarantined`]). Each row counts once, in
    /// the process whose worker claimed it; a metric to export and alert on.
    pub fn quarantined(&self) -> u64 {
        self.shared.quarantine.count()
    }

    /// The quarantined rows of the fleet's queue (whichever process quarantined them), oldest
    /// first, at most `limit`. They stay until you delete them from the quarantine table.
    pub async fn quarantined_rows(&self, limit: usize) -> Result<Vec<Quarantined>, FleetError> {
        self.shared
            .store
            .quarantined(&self.shared.settings.queue, limit)
            .await
    }

    /// Tracks the operation `token` describes under your `key`, from now on: a worker takes its
    /// first step when the token says its next poll is due
    /// ([`ResumeToken::next_poll_in`]: for the token of a `Polling::AcceptOnly` response, the
    /// initial response's hint), spread by [`jitter`](FleetBuilder::jitter), rounded up to the
    /// store's whole second; at once for a token that does not say. Returns the operation's id
    /// once the job is in the store. Each call tracks a new operation (a new id), whatever the
    /// key: to retry safely, use [`track_as`](Self::track_as).
    pub async fn track(
        &self,
        key: impl Into<String>,
        token: ResumeToken,
    ) -> Result<OperationId, FleetError> {
        self.enqueue_first(OperationId::generate(), key.into(), token)
            .await
    }

    /// [`track`](Self::track) under an id you chose ([`OperationId::generate`], kept with your
    /// own record), idempotently: when the store already holds a step of operation `id` (an
    /// earlier call committed and its answer was lost), nothing is enqueued and `id` is
    /// returned. Retrying after an error never forks the operation.
    ///
    /// ```no_run
    /// # async fn run<S, H, B, D>(fleet: tower_lro_fleet::Fleet<S, H, B, D>, token: tower_lro::ResumeToken) -> Result<(), tower_lro_fleet::FleetError> {
    /// let id = tower_lro_fleet::OperationId::generate(); // saved with the order first
    /// let mut tries = 0;
    /// while let Err(error) = fleet.track_as(id.clone(), "order-17", token.clone()).await {
    ///     tries += 1;
    ///     if tries == 5 {
    ///         return Err(error);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// The store must acknowledge only durable commits (PostgreSQL's and SQLite's defaults):
    /// an acknowledged enqueue the database then loses is an operation nobody tracks.
    pub async fn track_as(
        &self,
        id: OperationId,
        key: impl Into<String>,
        token: ResumeToken,
    ) -> Result<OperationId, FleetError> {
        let queue = &self.shared.settings.queue;
        let known = self.shared.store.latest(queue, id.as_str()).await;
        match known {
            Ok(Some(_)) => Ok(id),
            Ok(None) => self.enqueue_first(id, key.into(), token).await,
            Err(error) => Err(error.with_untracked(token)),
        }
    }

    async fn enqueue_first(
        &self,
        id: OperationId,
        key: String,
        token: ResumeToken,
    ) -> Result<OperationId, FleetError> {
        let wait = token.next_poll_in().unwrap_or_default();
        let job = Job::first(id.clone(), key, &token);
        // A second enqueue of step 0 of the same id (a retry racing the first) is a no-op.
        match self
            .shared
            .enqueue(job, wait, token.next_poll_hinted())
            .await
        {
            Ok(()) => Ok(id),
            Err(error) => Err(error.with_untracked(token)),
        }
    }

    /// Where operation `id` stands: its last reported state and percent complete, polls, when
    /// its next step is due, the runs of its current step, the last error; from its latest step
    /// in the store. Fails with [`FleetErrorKind::NotFound`] when the fleet's queue holds no
    /// step of it.
    pub async fn status(&self, id: &OperationId) -> Result<OperationStatus, FleetError> {
        let queue = &self.shared.settings.queue;
        let row = self.shared.store.latest(queue, id.as_str()).await?;
        row.as_ref()
            .and_then(OperationStatus::of)
            .ok_or_else(|| FleetError::new(FleetErrorKind::NotFound, "no such operation"))
    }

    /// The operations in flight (a step due or under way), by id, up to `limit` (at most
    /// 1,000) after the operation `after` (`None`: from the first). Page on with the returned
    /// [`next`](OperationPage::next).
    ///
    /// ```no_run
    /// # async fn run<S, H, B, D>(fleet: tower_lro_fleet::Fleet<S, H, B, D>) -> Result<(), tower_lro_fleet::FleetError> {
    /// let mut after = None;
    /// loop {
    ///     let page = fleet.in_flight(after.as_ref(), 100).await?;
    ///     for operation in &page.operations {
    ///         println!("{} {} {:?} {:?}", operation.id, operation.key, operation.phase, operation.state);
    ///     }
    ///     match page.next {
    ///         Some(next) => after = Some(next),
    ///         None => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn in_flight(
        &self,
        after: Option<&OperationId>,
        limit: usize,
    ) -> Result<OperationPage, FleetError> {
        let limit = limit.clamp(1, MAX_PAGE);
        // An operation has one live step, two for the moment between enqueueing a step's
        // successor and acknowledging the step: twice the page always holds `limit` of them.
        let fetch = limit * 2 + 1;
        let queue = &self.shared.settings.queue;
        let rows = self
            .shared
            .store
            .in_flight(queue, after.map(OperationId::as_str), fetch)
            .await?;
        let full = rows.len() == fetch;
        let mut latest: Vec<store::Row> = Vec::new();
        for row in rows {
            let id = |row: &store::Row| row.idempotency_key.split('/').next().map(str::to_owned);
            match latest.last_mut() {
                Some(last) if id(last) == id(&row) => {
                    if (row.idempotency_key.len(), &row.idempotency_key)
                        > (last.idempotency_key.len(), &last.idempotency_key)
                    {
                        *last = row;
                    }
                }
                _ => latest.push(row),
            }
        }
        let mut more = latest.len() > limit;
        latest.truncate(limit);
        if full && !more && latest.len() > 1 {
            // The last operation's rows may go on past this batch: it opens the next page.
            latest.pop();
            more = true;
        }
        let next = if more || full {
            latest
                .last()
                .and_then(|row| row.idempotency_key.split('/').next())
                .and_then(|id| id.parse().ok())
        } else {
            None
        };
        Ok(OperationPage {
            operations: latest.iter().filter_map(OperationStatus::of).collect(),
            next,
        })
    }

    /// Asks for operation `id` to be canceled: the worker that takes its next step (made due
    /// now) sends the dialect's cancel request (the token's
    /// [`into_cancel_request`](ResumeToken::into_cancel_request), through the fleet's layer)
    /// once, and the operation's outcome reaches the handler as usual: a `Canceled` error, or
    /// its final response if it completed first. Returns [`CancelState::Requested`], or
    /// [`CancelState::Sent`] when an earlier call's cancel already went out; calling again
    /// never sends a second.
    ///
    /// Fails with [`FleetErrorKind::NotFound`] (no such operation),
    /// [`FleetErrorKind::Ended`] (its outcome was delivered, or its job failed),
    /// [`FleetErrorKind::CancelUnsupported`] (its dialect has no cancel and none was attached,
    /// or the server refused an earlier one) and [`FleetErrorKind::Busy`] (a worker held its
    /// step for a whole lease).
    pub async fn cancel(&self, id: &OperationId) -> Result<CancelState, FleetError> {
        let settings = &self.shared.settings;
        let deadline = tokio::time::Instant::now() + settings.lease();
        loop {
            let row = self
                .shared
                .store
                .latest(&settings.queue, id.as_str())
                .await?;
            let Some(row) = row else {
                return Err(FleetError::new(
                    FleetErrorKind::NotFound,
                    "no such operation",
                ));
            };
            let job: Job = serde_json::from_slice(&row.job).map_err(|e| {
                FleetError::new(
                    FleetErrorKind::NotFound,
                    "the operation's step is not a fleet job",
                )
                .with_source(Box::new(e))
            })?;
            if !row.in_flight() {
                return Err(FleetError::new(
                    FleetErrorKind::Ended,
                    "the operation is no longer in flight",
                ));
            }
            match job.cancel {
                Some(CancelState::Refused) => {
                    let why = "the server refused an earlier cancel of this operation";
                    return Err(FleetError::new(FleetErrorKind::CancelUnsupported, why));
                }
                Some(state) => return Ok(state),
                None => {}
            }
            let token = job.token().map_err(|e| {
                FleetError::new(
                    FleetErrorKind::CancelUnsupported,
                    "the operation's token cannot be read",
                )
                .with_source(Box::new(e))
            })?;
            if !token.can_cancel() {
                let why = "the operation's dialect has no cancel request, and none was attached";
                return Err(FleetError::new(FleetErrorKind::CancelUnsupported, why));
            }
            let mut asked = job;
            asked.cancel = Some(CancelState::Requested);
            asked.due_at = row.run_at.and_then(|at| u64::try_from(at).ok());
            let store = &self.shared.store;
            if store
                .replace_waiting(&settings.queue, &row.idempotency_key, &asked)
                .await?
            {
                return Ok(CancelState::Requested);
            }
            // A worker holds the step: its successor (or its end) comes within a step's time.
            if tokio::time::Instant::now() >= deadline {
                let why = "a worker held the operation's step for a whole lease";
                return Err(FleetError::new(FleetErrorKind::Busy, why));
            }
            tokio::time::sleep(settings.fetch_interval.max(Duration::from_millis(20))).await;
        }
    }
}

/// A wait as the job keeps it.
fn millis(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)
}

/// The most operations [`Fleet::in_flight`] returns at once.
const MAX_PAGE: usize = 1_000;

impl<S, H, ReqBody, ResBody, D> Fleet<S, H, ReqBody, D>
where
    D: Dialect,
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ReqBody: Default + From<bytes::Bytes> + Send + 'static,
    ResBody: Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
    H: Service<Delivery<ResBody>> + Clone + Send + Sync + 'static,
    H::Future: Send,
    H::Error: Into<BoxError>,
{
    /// Sends `request` (exactly once) with [`Polling::AcceptOnly`] through the fleet's layer and
    /// service, and when its response starts an operation, tracks it under `key` before
    /// returning (its first step due when the initial response's hint says, see
    /// [`track`](Self::track)). Answer your own caller only after this returns: then every
    /// operation your callers were told about is in the store. Each call is a new operation: to
    /// retry safely, use [`start_as`](Self::start_as).
    ///
    /// Fails with [`FleetErrorKind::Start`] when the request itself failed (nothing to track),
    /// and with [`FleetErrorKind::Store`] when the server accepted but the enqueue failed: the
    /// error then carries the token ([`FleetError::untracked`]).
    pub async fn start(
        &self,
        key: impl Into<String>,
        request: Request<ReqBody>,
    ) -> Result<Started<ResBody>, FleetError> {
        self.send_and_track(OperationId::generate(), key.into(), request)
            .await
    }

    /// [`start`](Self::start) under an id you chose ([`OperationId::generate`], kept with your
    /// own record of the request), so that a retry never forks the operation: when the store
    /// already holds a step of operation `id` (an earlier call's enqueue committed and its
    /// answer was lost), the request is **not** sent again and the answer is
    /// [`Started::AlreadyTracked`]. After a [`FleetErrorKind::Store`] error that carries the
    /// token ([`FleetError::untracked`]), retry with [`track_as`](Self::track_as) and that token
    /// rather than sending the request again.
    ///
    /// Two calls with the same id at the same moment may both send the request: the check is
    /// for retries, not a lock. The store must acknowledge only durable commits (the databases'
    /// defaults).
    pub async fn start_as(
        &self,
        id: OperationId,
        key: impl Into<String>,
        request: Request<ReqBody>,
    ) -> Result<Started<ResBody>, FleetError> {
        let queue = &self.shared.settings.queue;
        if self
            .shared
            .store
            .latest(queue, id.as_str())
            .await?
            .is_some()
        {
            return Ok(Started::AlreadyTracked { id });
        }
        self.send_and_track(id, key.into(), request).await
    }

    async fn send_and_track(
        &self,
        id: OperationId,
        key: String,
        mut request: Request<ReqBody>,
    ) -> Result<Started<ResBody>, FleetError> {
        request.extensions_mut().insert(Polling::AcceptOnly);
        let service = self.shared.layer.layer(self.shared.inner.clone());
        let response = service.oneshot(request).await.map_err(|error| {
            FleetError::new(FleetErrorKind::Start, "the initial request failed")
                .with_source(Box::new(error))
        })?;
        let Some(token) = response.extensions().get::<ResumeToken>().cloned() else {
            return Ok(Started::NotLongRunning(response));
        };
        let id = self.enqueue_first(id, key, token).await?;
        Ok(Started::Tracked { id, response })
    }

    /// Runs one worker until `shutdown` completes, then stops it gracefully (steps in flight
    /// finish and are acknowledged). `name` names it in the store and the logs; each generation
    /// gets a unique suffix. A worker whose store fails (the database went away) starts again
    /// after `restart_delay`, for as long as it takes: it never gives up while `shutdown` is
    /// pending. Dropping the future stops the worker at once, as a crash would (its jobs come
    /// back after the lease).
    ///
    /// The first worker of the fleet running in this process also prunes the rows of finished
    /// steps, in the background (see [`FleetBuilder::retention`]).
    pub async fn run_worker(&self, name: impl Into<String>, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let _pruner = retention::claim(&self.shared.pruning).map(|claim| {
            retention::spawn(
                claim,
                self.shared.store.inner.clone(),
                self.shared.settings.clone(),
                stopped.clone(),
            )
        });
        let supervisor = worker::supervise(
            self.shared.clone(),
            self.shared.store.inner.clone(),
            self.shared.settings.clone(),
            self.shared.quarantine.clone(),
            name.into(),
            stopped,
        );
        tokio::pin!(supervisor);
        tokio::select! {
            () = &mut supervisor => return,
            () = shutdown => {}
        }
        // Nothing listens only if the supervisor is gone, and then there is nothing to stop.
        let _ = stop.send(true);
        supervisor.await;
    }
}

impl<S, H, ReqBody, ResBody, D> worker::RunJob for Shared<S, H, ReqBody, D>
where
    D: Dialect,
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ReqBody: Default + From<bytes::Bytes> + Send + 'static,
    ResBody: Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
    H: Service<Delivery<ResBody>> + Clone + Send + Sync + 'static,
    H::Future: Send,
    H::Error: Into<BoxError>,
{
    async fn run_job(self: Arc<Self>, job: Job) -> Result<(), BoxDynError> {
        let token = match job.token() {
            Ok(token) => token,
            Err(error) => return self.deliver(&job, Err(error)).await,
        };
        let (job, cancelling) = self.take_cancel(job).await?;
        let stepped = if cancelling {
            self.cancel_step(token.clone()).await
        } else {
            self.step(token.clone()).await
        };
        match stepped {
            Ok(Stepped::Done(response)) => self.deliver(&job, Ok(response)).await,
            Ok(Stepped::Running {
                token,
                wait,
                hinted,
                percent_complete,
            }) => {
                let mut next = job.next(&token, 0);
                next.percent_complete = percent_complete.or(job.percent_complete);
                self.enqueue(next, wait, hinted).await.map_err(Into::into)
            }
            // The server (or the token) has no cancel: the operation goes on, polled when it
            // was due before the cancel made it due now, so a server's hint still holds.
            Err(error) if cancelling && error.kind() == ErrorKind::CancelUnsupported => {
                let hinted = token.next_poll_hinted();
                let token = error.resume_token().cloned().unwrap_or(token);
                let mut next = job.next(&token, job.failures);
                next.cancel = Some(CancelState::Refused);
                next.last_error = Some(error.to_string());
                next.hint_ms = job.hint().map(millis);
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let wait = job.due_at.map_or(Duration::ZERO, |at| {
                    Duration::from_secs(at).saturating_sub(now)
                });
                self.enqueue(next, wait, hinted).await.map_err(Into::into)
            }
            Err(error) => match self.retry(&job, &error) {
                Some((token, wait, hint)) => {
                    let failures = job.failures.saturating_add(1);
                    let mut next = job.next(&token, failures);
                    next.last_error = Some(error.to_string());
                    next.hint_ms = hint.map(millis);
                    self.enqueue(next, wait, hint.is_some())
                        .await
                        .map_err(Into::into)
                }
                None => self.deliver(&job, Err(error)).await,
            },
        }
    }
}

/// Where one step left the operation: [`Step`], with what the fleet keeps of it.
// Returned once per step and matched at once, as the core's `Step` is: a box would be an
// allocation per step.
#[allow(clippy::large_enum_variant)]
enum Stepped<R> {
    Done(R),
    Running {
        token: ResumeToken,
        wait: Duration,
        hinted: bool,
        percent_complete: Option<f64>,
    },
}

impl<S, H, ReqBody, D> Shared<S, H, ReqBody, D> {
    /// Enqueues `job` after `wait`, spread by the jitter (a `hinted` wait only grows).
    async fn enqueue(&self, job: Job, wait: Duration, hinted: bool) -> Result<(), FleetError> {
        let settings = &self.settings;
        let wait = jitter::spread(wait, hinted, settings.jitter, self.jitter.unit());
        self.store
            .enqueue(&settings.queue, job, wait, settings.job_attempts)
            .await
    }

    /// Whether this run of `job` sends a cancel: the job asks for one and its stored row does
    /// not say it was sent. The row is marked sent first, so that a run that dies, or that the
    /// engine repeats (from the payload it fetched), never sends a second.
    async fn take_cancel(&self, job: Job) -> Result<(Job, bool), FleetError> {
        if job.cancel != Some(CancelState::Requested) {
            return Ok((job, false));
        }
        let mut sent = job;
        sent.cancel = Some(CancelState::Sent);
        let key = sent.idempotency_key();
        let before = self
            .store
            .swap_held(&self.settings.queue, &key, &sent)
            .await?;
        let asked = before
            .and_then(|payload| serde_json::from_slice::<Job>(&payload).ok())
            .is_some_and(|stored| stored.cancel == Some(CancelState::Requested));
        Ok((sent, asked))
    }
}

impl<S, H, ReqBody, D: Dialect> Shared<S, H, ReqBody, D> {
    /// One step of the operation `token` describes.
    async fn step<ResBody>(
        &self,
        token: ResumeToken,
    ) -> Result<Stepped<Response<ResponseBody<ResBody>>>, Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        S::Error: Into<BoxError>,
        ReqBody: Default,
        ResBody: Body<Data = bytes::Bytes>,
        ResBody::Error: Into<BoxError>,
    {
        Ok(
            match self.layer.layer(self.inner.clone()).step(token).await? {
                Step::Done(response) => Stepped::Done(response),
                Step::Running(next) => Stepped::Running {
                    wait: next.poll_in(),
                    hinted: next.token().next_poll_hinted(),
                    percent_complete: next.operation().percent_complete,
                    token: next.into_token(),
                },
            },
        )
    }

    /// The cancel request of the operation `token` describes, sent once through the layer,
    /// then the operation followed up to its first wait: a step that begins with a cancel.
    /// The layer's cancel follows to the end; its progress updates say when it first waits,
    /// with the token and the wait, and the step ends there.
    async fn cancel_step<ResBody>(
        &self,
        token: ResumeToken,
    ) -> Result<Stepped<Response<ResponseBody<ResBody>>>, Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        S::Error: Into<BoxError>,
        ReqBody: Default + From<bytes::Bytes>,
        ResBody: Body<Data = bytes::Bytes>,
        ResBody::Error: Into<BoxError>,
    {
        let (sender, mut updates) = tower_lro::progress::channel();
        let mut request = token.into_cancel_request::<ReqBody>();
        request.extensions_mut().insert(sender);
        let call = self.layer.layer(self.inner.clone()).oneshot(request);
        tokio::pin!(call);
        loop {
            tokio::select! {
                biased;
                result = &mut call => return result.map(Stepped::Done),
                changed = updates.changed() => {
                    if changed.is_err() {
                        // The operation ended: the call has its outcome.
                        return call.await.map(Stepped::Done);
                    }
                    let waiting = updates.borrow_and_update().as_ref().and_then(|progress| {
                        let wait = progress.next_poll_in.filter(|_| !progress.finished)?;
                        Some(Stepped::Running {
                            hinted: progress.resume_token.next_poll_hinted(),
                            percent_complete: progress.operation.percent_complete,
                            token: progress.resume_token.clone(),
                            wait,
                        })
                    });
                    if let Some(waiting) = waiting {
                        return Ok(waiting);
                    }
                }
            }
        }
    }

    /// Whether a step that ended with `error` is taken again, from which token, when, and the
    /// server's last hint: an error's token holds none, and the retry waits no less than it.
    fn retry(&self, job: &Job, error: &Error) -> Option<(ResumeToken, Duration, Option<Duration>)> {
        let token = error.resume_token()?;
        if error.kind() == ErrorKind::TooManyPolls || job.failures >= self.settings.step_retries {
            return None;
        }
        let hint = job.hint();
        let wait = self
            .settings
            .step_retry_wait(job.failures)
            .max(hint.unwrap_or_default());
        Some((token.clone(), wait, hint))
    }

    async fn deliver<B>(
        &self,
        job: &Job,
        result: Result<Response<ResponseBody<B>>, Error>,
    ) -> Result<(), BoxDynError>
    where
        H: Service<Delivery<B>> + Clone,
        H::Error: Into<BoxError>,
    {
        let delivery = Delivery::new(job.id.clone(), job.key.clone(), result);
        let mut handler = self.handler.clone();
        let ready = handler.ready().await.map_err(Into::into)?;
        ready.call(delivery).await.map_err(Into::into)?;
        Ok(())
    }
}
