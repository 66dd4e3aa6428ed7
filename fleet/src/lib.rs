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
//! several dialects, build one fleet per dialect, each on its own [`queue`](FleetBuilder::queue).
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
//!   second at or after the time the server asked for: rounded up, never early.
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
//! - **Finished rows**: each operation has exactly one live job row, but apalis keeps every
//!   finished step's row (about 2 KB with its indexes) until it is deleted: SQLite stores offer
//!   apalis's `Vacuum`; on PostgreSQL, delete `apalis.jobs` rows with status `Done` older than you
//!   care to keep.
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
mod job;
mod quarantine;
mod settings;
mod store;
mod worker;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

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
pub use store::Store;

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
    layer: LongRunningLayer<D>,
    inner: S,
    handler: H,
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

    /// The wait before the first retried step, doubling for each further one (at most an hour).
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
                layer,
                inner,
                handler,
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
    /// first step at once. Returns the operation's id once the job is in the store. Each call
    /// tracks a new operation (a new id), whatever the key.
    pub async fn track(
        &self,
        key: impl Into<String>,
        token: ResumeToken,
    ) -> Result<OperationId, FleetError> {
        let id = OperationId::generate();
        let job = Job::first(id.clone(), key.into(), &token);
        let settings = &self.shared.settings;
        match self
            .shared
            .store
            .enqueue(&settings.queue, job, Duration::ZERO, settings.job_attempts)
            .await
        {
            Ok(()) => Ok(id),
            Err(error) => Err(error.with_untracked(token)),
        }
    }
}

impl<S, H, ReqBody, ResBody, D> Fleet<S, H, ReqBody, D>
where
    D: Dialect,
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    ReqBody: Default + Send + 'static,
    ResBody: Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
    H: Service<Delivery<ResBody>> + Clone + Send + Sync + 'static,
    H::Future: Send,
    H::Error: Into<BoxError>,
{
    /// Sends `request` (exactly once) with [`Polling::AcceptOnly`] through the fleet's layer and
    /// service, and when its response starts an operation, tracks it under `key` before
    /// returning. Answer your own caller only after this returns: then every operation your
    /// callers were told about is in the store.
    ///
    /// Fails with [`FleetErrorKind::Start`] when the request itself failed (nothing to track),
    /// and with [`FleetErrorKind::Store`] when the server accepted but the enqueue failed: the
    /// error then carries the token ([`FleetError::untracked`]).
    pub async fn start(
        &self,
        key: impl Into<String>,
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
        let id = self.track(key, token).await?;
        Ok(Started::Tracked { id, response })
    }

    /// Runs one worker until `shutdown` completes, then stops it gracefully (steps in flight
    /// finish and are acknowledged). `name` names it in the store and the logs; each generation
    /// gets a unique suffix. A worker whose store fails (the database went away) starts again
    /// after `restart_delay`, for as long as it takes: it never gives up while `shutdown` is
    /// pending. Dropping the future stops the worker at once, as a crash would (its jobs come
    /// back after the lease).
    pub async fn run_worker(&self, name: impl Into<String>, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
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
    ReqBody: Default + Send + 'static,
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
        match self.step(token).await {
            Ok(Step::Done(response)) => self.deliver(&job, Ok(response)).await,
            Ok(Step::Running(next)) => {
                let wait = next.poll_in();
                self.enqueue(job.next(&next.into_token(), 0), wait).await
            }
            Err(error) => match self.retry(&job, &error) {
                Some((token, wait)) => {
                    let failures = job.failures.saturating_add(1);
                    self.enqueue(job.next(&token, failures), wait).await
                }
                None => self.deliver(&job, Err(error)).await,
            },
        }
    }
}

impl<S, H, ReqBody, D: Dialect> Shared<S, H, ReqBody, D> {
    /// One step of the operation `token` describes.
    async fn step<ResBody>(
        &self,
        token: ResumeToken,
    ) -> Result<Step<Response<ResponseBody<ResBody>>>, Error>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
        S::Error: Into<BoxError>,
        ReqBody: Default,
        ResBody: Body<Data = bytes::Bytes>,
        ResBody::Error: Into<BoxError>,
    {
        self.layer.layer(self.inner.clone()).step(token).await
    }

    /// Whether a step that ended with `error` is taken again, from which token and when.
    fn retry(&self, job: &Job, error: &Error) -> Option<(ResumeToken, Duration)> {
        let token = error.resume_token()?;
        if error.kind() == ErrorKind::TooManyPolls || job.failures >= self.settings.step_retries {
            return None;
        }
        Some((token.clone(), self.settings.step_retry_wait(job.failures)))
    }

    async fn enqueue(&self, job: Job, wait: Duration) -> Result<(), BoxDynError> {
        let settings = &self.settings;
        self.store
            .enqueue(&settings.queue, job, wait, settings.job_attempts)
            .await
            .map_err(Into::into)
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
