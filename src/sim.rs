//! An in-process Azure-like long-running-operation server, for examples and tests.
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
//! use tower_lro::sim::{Scenario, Simulator, RetryAfter};
//! use tower_lro::sim::Monitor;
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

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::DuplexStream;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// How the simulated server hints the next poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAfter {
    /// No hint.
    None,
    /// `Retry-After: <seconds>`.
    Seconds(u64),
    /// `retry-after-ms: <milliseconds>`.
    Millis(u64),
    /// `x-ms-retry-after-ms: <milliseconds>`.
    XMsMillis(u64),
    /// `Retry-After: <HTTP-date>` this far in the future (whole seconds, as the format allows).
    HttpDate(Duration),
}

/// How a simulated operation ends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// `Succeeded`.
    Succeeded,
    /// `Failed`, with this error code and message.
    Failed {
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
    },
    /// `Canceled`.
    Canceled,
}

/// When a simulated operation reaches its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Completion {
    /// After this many status requests answered "running".
    AfterPolls(u32),
    /// Once this much time (tokio's clock) has passed since the initial request.
    AfterTime(Duration),
}

/// How a simulated operation is monitored; [`as_str`](Self::as_str) is the name the layer
/// reports in `OperationInfo::monitor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Monitor {
    /// `Azure-AsyncOperation`: a status monitor.
    AzureAsyncOperation,
    /// `Operation-Location`: a status monitor (the data-plane form).
    OperationLocation,
    /// The `Location` of a `202 Accepted`.
    Location,
    /// The resource itself, by its `provisioningState`.
    Resource,
    /// A Google AIP-151 `Operation`.
    GoogleOperation,
}

impl Monitor {
    /// The monitor's name in `OperationInfo::monitor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Monitor::AzureAsyncOperation => "azure-async-operation",
            Monitor::OperationLocation => "operation-location",
            Monitor::Location => "location",
            Monitor::Resource => "resource",
            Monitor::GoogleOperation => "google-operation",
        }
    }
}

/// A scripted long-running operation: what the initial request at a method and path starts.
#[derive(Debug, Clone)]
pub struct Scenario {
    method: Method,
    path: String,
    monitor: Monitor,
    initial_status: Option<StatusCode>,
    initial_body: Option<String>,
    completion: Completion,
    outcome: Outcome,
    running_status: String,
    terminal_status: Option<String>,
    retry_after: RetryAfter,
    percent_complete: bool,
    resource_body: Option<String>,
    location_header: bool,
    resource_location: bool,
    relative_monitor: bool,
    monitor_prefix: String,
    moves_monitor: bool,
    cancelable: bool,
    completes_when_canceled: bool,
}

impl Scenario {
    /// An operation started by `method` on `path` (no query) and followed through `monitor`.
    ///
    /// Defaults: `202 Accepted` (`201 Created` with a `provisioningState` body for a resource
    /// monitor), succeeds after 2 running polls, `Retry-After: 1`, status `InProgress`.
    ///
    /// With [`Monitor::GoogleOperation`] it plays a Google AIP-151 API instead: `path` is a
    /// collection such as `/v1/projects/p/locations/l/instances`; the initial request answers
    /// `200` with an `Operation` named `projects/p/locations/l/operations/op-{n}`, polled at
    /// `/v1/{name}` (`done` false, `metadata.progressPercent` when
    /// [`percent_complete`](Self::percent_complete)), then `done` with a `response`, or an
    /// `error` whose `code` is the [`Outcome::Failed`] code when it is a number (else 2,
    /// `UNKNOWN`), or 1 for [`Outcome::Canceled`]. No `Retry-After` unless one is set. `POST
    /// /v1/{name}:cancel` cancels it ([`cancelable`](Self::cancelable)).
    pub fn new(method: Method, path: impl Into<String>, monitor: Monitor) -> Self {
        Scenario {
            method,
            path: path.into(),
            monitor,
            initial_status: None,
            initial_body: None,
            completion: Completion::AfterPolls(2),
            outcome: Outcome::Succeeded,
            running_status: "InProgress".into(),
            terminal_status: None,
            retry_after: if monitor == Monitor::GoogleOperation {
                RetryAfter::None
            } else {
                RetryAfter::Seconds(1)
            },
            percent_complete: false,
            resource_body: None,
            location_header: false,
            resource_location: false,
            relative_monitor: false,
            monitor_prefix: "/operations".into(),
            moves_monitor: false,
            cancelable: true,
            completes_when_canceled: false,
        }
    }

    /// Whether the operation can be canceled (default yes): for a Google operation by
    /// `POST /v1/{name}:cancel` (else that answers `501 UNIMPLEMENTED`), for an Azure one by
    /// `POST {path}/cancel`, as an ARM deployment is (else that answers `404`). A canceled
    /// operation reports `Canceled` at its next status request.
    pub fn cancelable(mut self, cancelable: bool) -> Self {
        self.cancelable = cancelable;
        self
    }

    /// A cancel request is accepted but the operation completes anyway with its outcome, as a
    /// best-effort cancel may.
    pub fn completes_when_canceled(mut self, completes: bool) -> Self {
        self.completes_when_canceled = completes;
        self
    }

    /// The initial response's status code.
    pub fn initial_status(mut self, status: StatusCode) -> Self {
        self.initial_status = Some(status);
        self
    }

    /// The initial response's body (JSON).
    pub fn initial_body(mut self, body: impl Into<String>) -> Self {
        self.initial_body = Some(body.into());
        self
    }

    /// Succeed, fail or cancel after `polls` status requests answered "running".
    pub fn completes_after_polls(mut self, polls: u32) -> Self {
        self.completion = Completion::AfterPolls(polls);
        self
    }

    /// Reach the outcome once `duration` has passed since the initial request; polls before
    /// that answer "running".
    pub fn completes_after(mut self, duration: Duration) -> Self {
        self.completion = Completion::AfterTime(duration);
        self
    }

    /// How the operation ends (default [`Outcome::Succeeded`]).
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// The status reported while running (default `InProgress`; a resource reports it as its
    /// `provisioningState`).
    pub fn running_status(mut self, status: impl Into<String>) -> Self {
        self.running_status = status.into();
        self
    }

    /// Spell the terminal status this way (`SUCCEEDED`, `cancelled`, …) instead of the outcome's
    /// canonical name.
    pub fn terminal_status(mut self, status: impl Into<String>) -> Self {
        self.terminal_status = Some(status.into());
        self
    }

    /// The hint sent on the initial response and on every "running" answer.
    pub fn retry_after(mut self, retry_after: RetryAfter) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Report `percentComplete`, rising with each poll, in status bodies.
    pub fn percent_complete(mut self, report: bool) -> Self {
        self.percent_complete = report;
        self
    }

    /// The JSON of the resource (or action result) the operation produces.
    pub fn resource_body(mut self, body: impl Into<String>) -> Self {
        self.resource_body = Some(body.into());
        self
    }

    /// With a status monitor, also send a `Location` header naming the result (a POST's final
    /// response comes from there).
    pub fn location_header(mut self, send: bool) -> Self {
        self.location_header = send;
        self
    }

    /// Put `resourceLocation` in the final status body.
    pub fn resource_location(mut self, send: bool) -> Self {
        self.resource_location = send;
        self
    }

    /// Send monitor URLs as absolute paths (`/operations/7`) instead of absolute URLs.
    pub fn relative_monitor(mut self, relative: bool) -> Self {
        self.relative_monitor = relative;
        self
    }

    /// The path under which monitors of this operation live (default `/operations`).
    pub fn monitor_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.monitor_prefix = prefix.into();
        self
    }

    /// The first "running" answer moves the monitor to a new URL (in the same header the initial
    /// response used); the old URL keeps answering too.
    pub fn moves_monitor(mut self, moves: bool) -> Self {
        self.moves_monitor = moves;
        self
    }

    fn terminal_text(&self) -> String {
        self.terminal_status.clone().unwrap_or_else(|| {
            match self.outcome {
                Outcome::Succeeded => "Succeeded",
                Outcome::Failed { .. } => "Failed",
                Outcome::Canceled => "Canceled",
            }
            .into()
        })
    }
}

/// A request the simulator received.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// Its method.
    pub method: Method,
    /// Its URI (path and query).
    pub uri: Uri,
    /// Its HTTP version.
    pub version: http::Version,
    /// Its headers.
    pub headers: HeaderMap,
    /// When it arrived, on tokio's clock.
    pub at: Instant,
}

/// The simulated server. Dropping it stops the server and closes its connections.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Mutex<State>>,
    // The server's ends of in-memory connections, for the serve loop to accept.
    dialed: mpsc::UnboundedSender<DuplexStream>,
    server: JoinHandle<()>,
}

/// The buffer of each direction of an in-memory connection.
const IN_MEMORY_BUFFER: usize = 64 * 1024;

#[derive(Default)]
struct State {
    scenarios: Vec<Arc<Scenario>>,
    instances: Vec<Instance>,
    // Path → instance, for the URLs instances answer on besides the initial one.
    routes: HashMap<String, (usize, Route)>,
    requests: Vec<RecordedRequest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Monitor,
    Result,
    Resource,
    /// `POST`: the operation's cancel request.
    Cancel,
}

struct Instance {
    scenario: Arc<Scenario>,
    id: usize,
    started: Instant,
    running_answers: u32,
    api_version: Option<String>,
    origin: String,
    canceled: bool,
}

impl Simulator {
    /// Starts a simulator on `127.0.0.1` and an ephemeral port.
    pub async fn start() -> std::io::Result<Simulator> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(State::default()));
        let (dialed, incoming) = mpsc::unbounded_channel();
        let server = tokio::spawn(serve(listener, incoming, shared.clone()));
        Ok(Simulator {
            addr,
            shared,
            dialed,
            server,
        })
    }

    /// Opens a new connection to this simulator in memory, without a socket: the connection is
    /// served exactly as one accepted on [`addr`](Self::addr) (HTTP/1.1 or h2c, same scenarios,
    /// same request log) and closed with the other connections when the simulator is dropped.
    ///
    /// For tests on tokio's paused clock (`#[tokio::test(start_paused = true)]`): a loopback
    /// round trip can be slow enough that the paused clock jumps past a timeout meanwhile, while
    /// an in-memory one never waits on anything but the tasks of the test. Send requests over it
    /// with `hyper::client::conn`, or behind a connector that returns it for
    /// [`url`](Self::url)'s authority. Fails with [`io::ErrorKind::ConnectionRefused`] once the
    /// server is gone (its runtime shut down).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Method, Request, StatusCode};
    /// use http_body_util::Empty;
    /// use hyper_util::rt::TokioIo;
    /// use tower_lro::sim::{RetryAfter, Scenario, Simulator};
    /// use tower_lro::sim::Monitor;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sim = Simulator::start().await?;
    /// sim.add(
    ///     Scenario::new(Method::POST, "/vms/a/start", Monitor::AzureAsyncOperation)
    ///         .retry_after(RetryAfter::Seconds(30)),
    /// );
    /// let io = TokioIo::new(sim.connect_in_memory()?);
    /// let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    /// tokio::spawn(connection);
    /// let request = Request::post("/vms/a/start")
    ///     .header("host", sim.addr().to_string())
    ///     .body(Empty::<Bytes>::new())?;
    /// let response = sender.send_request(request).await?;
    /// assert_eq!(response.status(), StatusCode::ACCEPTED);
    /// assert_eq!(response.headers()["retry-after"], "30");
    /// assert_eq!(sim.count(&Method::POST, "/vms/a/start"), 1);
    /// # Ok(()) }
    /// ```
    pub fn connect_in_memory(&self) -> io::Result<DuplexStream> {
        let (client, server) = tokio::io::duplex(IN_MEMORY_BUFFER);
        if self.server.is_finished() || self.dialed.send(server).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "the simulator is no longer running",
            ));
        }
        Ok(client)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path_and_query>`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// Registers a scenario; later registrations for the same method and path take precedence.
    pub fn add(&self, scenario: Scenario) {
        lock(&self.shared).scenarios.insert(0, Arc::new(scenario));
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared).requests.clone()
    }

    /// How many requests with `method` arrived for `path` (query ignored).
    pub fn count(&self, method: &Method, path: &str) -> usize {
        lock(&self.shared)
            .requests
            .iter()
            .filter(|r| r.method == method && r.uri.path() == path)
            .count()
    }
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave the log half-written in a way that matters.
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn serve(
    listener: TcpListener,
    mut dialed: mpsc::UnboundedReceiver<DuplexStream>,
    shared: Arc<Mutex<State>>,
) {
    // Connections live in this set, so aborting the server task closes them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                connections.spawn(serve_connection(TokioIo::new(stream), shared.clone()));
            }
            Some(stream) = dialed.recv() => {
                connections.spawn(serve_connection(TokioIo::new(stream), shared.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one connection, from the socket or in memory.
async fn serve_connection<I>(io: I, shared: Arc<Mutex<State>>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let response = respond(&shared, &req);
        async move { Ok::<_, Infallible>(response) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // A client that goes away mid-request is the client's business.
    let _ = builder.serve_connection(io, service).await;
}

fn respond(shared: &Mutex<State>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut state = lock(shared);
    state.requests.push(RecordedRequest {
        method: req.method().clone(),
        uri: req.uri().clone(),
        version: req.version(),
        headers: req.headers().clone(),
        at: Instant::now(),
    });
    let path = req.uri().path();
    if let Some(&(index, route)) = state.routes.get(path) {
        let cancel = route == Route::Cancel;
        if req.method() == Method::GET && !cancel || req.method() == Method::POST && cancel {
            return state.instances[index].answer(route);
        }
    }
    let scenario = state
        .scenarios
        .iter()
        .find(|s| s.method == req.method() && s.path == path)
        .cloned();
    match scenario {
        Some(scenario) => start_instance(&mut state, scenario, req),
        None => json(
            StatusCode::NOT_FOUND,
            r#"{"error":{"code":"NotFound","message":"no such route"}}"#.into(),
        ),
    }
}

fn start_instance(
    state: &mut State,
    scenario: Arc<Scenario>,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let index = state.instances.len();
    let id = index + 1;
    let api_version = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("api-version="))
            .map(str::to_owned)
    });
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let instance = Instance {
        scenario: scenario.clone(),
        id,
        started: Instant::now(),
        running_answers: 0,
        api_version,
        origin: format!("http://{host}"),
        canceled: false,
    };
    if scenario.monitor == Monitor::GoogleOperation {
        let operation = format!("/{}", instance.google_name());
        let polled = format!("{}{operation}", google_version(&scenario.path));
        state
            .routes
            .insert(format!("{polled}:cancel"), (index, Route::Cancel));
        state.routes.insert(polled, (index, Route::Monitor));
        let response = instance.google_operation(false);
        state.instances.push(instance);
        return response;
    }
    state
        .routes
        .insert(format!("{}/cancel", scenario.path), (index, Route::Cancel));
    let monitor = instance.monitor_path(false);
    state.routes.insert(monitor, (index, Route::Monitor));
    if scenario.moves_monitor {
        state
            .routes
            .insert(instance.monitor_path(true), (index, Route::Monitor));
    }
    state
        .routes
        .insert(format!("/results/{id}"), (index, Route::Result));
    state
        .routes
        .insert(format!("/resources/{id}"), (index, Route::Result));
    // The resource itself answers GETs (final GETs, resource monitors) for its latest instance.
    state
        .routes
        .insert(scenario.path.clone(), (index, Route::Resource));
    let response = instance.initial();
    state.instances.push(instance);
    response
}

/// `/{version}` of a Google collection path (`/v1/projects/p/...` → `/v1`).
fn google_version(path: &str) -> String {
    let path = path.trim_start_matches('/');
    let version = path.split_once('/').map_or(path, |(version, _)| version);
    format!("/{version}")
}

impl Instance {
    /// The terminal status as spelled: the scenario's spelling, unless the operation was
    /// canceled.
    fn terminal_text(&self) -> String {
        if self.canceled {
            "Canceled".into()
        } else {
            self.scenario.terminal_text()
        }
    }

    fn monitor_path(&self, moved: bool) -> String {
        let suffix = if moved { "-moved" } else { "" };
        format!("{}/{}{}", self.scenario.monitor_prefix, self.id, suffix)
    }

    fn url(&self, path: &str, extra_query: &str) -> String {
        let mut query = extra_query.to_owned();
        if let Some(version) = &self.api_version {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str("api-version=");
            query.push_str(version);
        }
        let origin = if self.scenario.relative_monitor {
            ""
        } else {
            &self.origin
        };
        if query.is_empty() {
            format!("{origin}{path}")
        } else {
            format!("{origin}{path}?{query}")
        }
    }

    fn monitor_url(&self, moved: bool) -> String {
        let query = if self.scenario.monitor == Monitor::Location {
            "monitor=true"
        } else {
            ""
        };
        self.url(&self.monitor_path(moved), query)
    }

    fn monitor_header(&self) -> HeaderName {
        match self.scenario.monitor {
            Monitor::OperationLocation => HeaderName::from_static("operation-location"),
            Monitor::Location => LOCATION,
            _ => HeaderName::from_static("azure-asyncoperation"),
        }
    }

    /// Counts one status request and says whether the operation is still running.
    fn advance(&mut self) -> bool {
        if self.canceled {
            return false;
        }
        let running = match self.scenario.completion {
            Completion::AfterPolls(polls) => self.running_answers < polls,
            Completion::AfterTime(duration) => self.started.elapsed() < duration,
        };
        if running {
            self.running_answers += 1;
        }
        running
    }

    fn percent(&self) -> f64 {
        match self.scenario.completion {
            Completion::AfterPolls(polls) => {
                f64::from(self.running_answers) * 100.0 / f64::from(polls + 1)
            }
            Completion::AfterTime(duration) => {
                (self.started.elapsed().as_secs_f64() / duration.as_secs_f64() * 100.0).min(99.0)
            }
        }
    }

    fn resource(&self) -> String {
        self.scenario.resource_body.clone().unwrap_or_else(|| {
            format!(
                r#"{{"id":"{}","name":"resource-{}","properties":{{"provisioningState":"Succeeded"}}}}"#,
                self.scenario.path, self.id
            )
        })
    }

    fn initial(&self) -> Response<Full<Bytes>> {
        let scenario = &self.scenario;
        let mut response = match scenario.monitor {
            Monitor::Resource => {
                let body = scenario.initial_body.clone().unwrap_or_else(|| {
                    format!(
                        r#"{{"id":"{}","properties":{{"provisioningState":"{}"}}}}"#,
                        scenario.path, scenario.running_status
                    )
                });
                json(scenario.initial_status.unwrap_or(StatusCode::CREATED), body)
            }
            _ => {
                let default_status =
                    if scenario.method == Method::PUT && scenario.monitor != Monitor::Location {
                        StatusCode::CREATED
                    } else {
                        StatusCode::ACCEPTED
                    };
                let mut response = json(
                    scenario.initial_status.unwrap_or(default_status),
                    scenario.initial_body.clone().unwrap_or_default(),
                );
                insert(
                    &mut response,
                    self.monitor_header(),
                    &self.monitor_url(false),
                );
                if scenario.location_header && scenario.monitor != Monitor::Location {
                    insert(
                        &mut response,
                        LOCATION,
                        &self.url(&format!("/results/{}", self.id), ""),
                    );
                }
                response
            }
        };
        self.hint(&mut response);
        response
    }

    fn hint(&self, response: &mut Response<Full<Bytes>>) {
        let (name, value) = match self.scenario.retry_after {
            RetryAfter::None => return,
            RetryAfter::Seconds(s) => (RETRY_AFTER, s.to_string()),
            RetryAfter::Millis(ms) => (HeaderName::from_static("retry-after-ms"), ms.to_string()),
            RetryAfter::XMsMillis(ms) => (
                HeaderName::from_static("x-ms-retry-after-ms"),
                ms.to_string(),
            ),
            RetryAfter::HttpDate(after) => (
                RETRY_AFTER,
                httpdate::fmt_http_date(SystemTime::now() + after),
            ),
        };
        insert(response, name, &value);
    }

    fn answer(&mut self, route: Route) -> Response<Full<Bytes>> {
        match route {
            Route::Cancel => self.answer_cancel(),
            Route::Monitor if self.scenario.monitor == Monitor::GoogleOperation => {
                let running = self.advance();
                self.google_operation(!running)
            }
            Route::Monitor => self.answer_monitor(),
            Route::Result => json(StatusCode::OK, self.resource()),
            Route::Resource if self.scenario.monitor == Monitor::Resource => self.answer_resource(),
            Route::Resource => json(StatusCode::OK, self.resource()),
        }
    }

    /// The outcome the operation ends with: its scenario's, unless it was canceled.
    fn outcome(&self) -> Outcome {
        if self.canceled {
            Outcome::Canceled
        } else {
            self.scenario.outcome.clone()
        }
    }

    fn answer_cancel(&mut self) -> Response<Full<Bytes>> {
        let google = self.scenario.monitor == Monitor::GoogleOperation;
        if !self.scenario.cancelable {
            return if google {
                json(
                    StatusCode::NOT_IMPLEMENTED,
                    r#"{"error":{"code":501,"message":"this operation cannot be cancelled","status":"UNIMPLEMENTED"}}"#.into(),
                )
            } else {
                json(
                    StatusCode::NOT_FOUND,
                    r#"{"error":{"code":"NotFound","message":"no cancel for this operation"}}"#
                        .into(),
                )
            };
        }
        self.canceled = !self.scenario.completes_when_canceled;
        if google {
            json(StatusCode::OK, "{}".into())
        } else {
            json(StatusCode::NO_CONTENT, String::new())
        }
    }

    /// `projects/p/locations/l/operations/op-{id}`, under the collection's parent.
    fn google_name(&self) -> String {
        let path = self.scenario.path.trim_start_matches('/');
        let after_version = path.split_once('/').map_or("", |(_, rest)| rest);
        match after_version.rsplit_once('/') {
            Some((parent, _collection)) => format!("{parent}/operations/op-{}", self.id),
            None => format!("operations/op-{}", self.id),
        }
    }

    /// The operation as a Google API answers it.
    fn google_operation(&self, done: bool) -> Response<Full<Bytes>> {
        let name = serde_json::Value::from(self.google_name());
        let mut body = format!(r#"{{"name":{name}"#);
        if self.scenario.percent_complete {
            let percent = if done { 100.0 } else { self.percent() };
            body.push_str(&format!(
                r#","metadata":{{"@type":"type.googleapis.com/google.cloud.sim.v1.OperationMetadata","progressPercent":{percent}}}"#
            ));
        }
        if done {
            body.push_str(r#","done":true"#);
            match self.outcome() {
                Outcome::Succeeded => body.push_str(&format!(r#","response":{}"#, self.resource())),
                Outcome::Failed { code, message } => body.push_str(&format!(
                    r#","error":{{"code":{},"message":{}}}"#,
                    code.parse::<i32>().unwrap_or(2),
                    serde_json::Value::from(message)
                )),
                Outcome::Canceled => {
                    body.push_str(r#","error":{"code":1,"message":"the operation was cancelled"}"#)
                }
            }
        }
        body.push('}');
        let mut response = json(StatusCode::OK, body);
        if !done {
            self.hint(&mut response);
        }
        response
    }

    fn error_json(&self) -> String {
        match &self.outcome() {
            Outcome::Failed { code, message } => format!(
                r#"{{"code":{},"message":{}}}"#,
                serde_json::Value::from(code.as_str()),
                serde_json::Value::from(message.as_str())
            ),
            Outcome::Canceled => {
                r#"{"code":"OperationCanceled","message":"the operation was canceled"}"#.into()
            }
            Outcome::Succeeded => String::new(),
        }
    }

    fn answer_monitor(&mut self) -> Response<Full<Bytes>> {
        let first_running = self.running_answers == 0;
        let running = self.advance();
        if self.scenario.monitor == Monitor::Location {
            if running {
                let mut response = json(StatusCode::ACCEPTED, String::new());
                self.hint(&mut response);
                if first_running && self.scenario.moves_monitor {
                    insert(&mut response, LOCATION, &self.monitor_url(true));
                }
                return response;
            }
            return match self.outcome() {
                Outcome::Succeeded => json(StatusCode::OK, self.resource()),
                _ => json(
                    StatusCode::CONFLICT,
                    format!(r#"{{"error":{}}}"#, self.error_json()),
                ),
            };
        }
        let mut body = format!(
            r#"{{"id":"{}","name":"{}""#,
            self.monitor_path(false),
            self.id
        );
        let status = if running {
            self.scenario.running_status.clone()
        } else {
            self.terminal_text()
        };
        body.push_str(&format!(r#","status":{}"#, serde_json::Value::from(status)));
        if self.scenario.percent_complete {
            let percent = if running { self.percent() } else { 100.0 };
            body.push_str(&format!(r#","percentComplete":{percent}"#));
        }
        if !running {
            if self.outcome() != Outcome::Succeeded {
                body.push_str(&format!(r#","error":{}"#, self.error_json()));
            } else if self.scenario.resource_location {
                body.push_str(&format!(
                    r#","resourceLocation":"{}""#,
                    self.url(&format!("/resources/{}", self.id), "")
                ));
            }
        }
        body.push('}');
        let mut response = json(StatusCode::OK, body);
        if running {
            self.hint(&mut response);
            if first_running && self.scenario.moves_monitor {
                insert(
                    &mut response,
                    self.monitor_header(),
                    &self.monitor_url(true),
                );
            }
        }
        response
    }

    fn answer_resource(&mut self) -> Response<Full<Bytes>> {
        let running = self.advance();
        let state = if running {
            self.scenario.running_status.clone()
        } else {
            self.terminal_text()
        };
        let error = if !running && self.outcome() != Outcome::Succeeded {
            format!(r#","error":{}"#, self.error_json())
        } else {
            String::new()
        };
        let body = format!(
            r#"{{"id":"{}","name":"resource-{}","properties":{{"provisioningState":{}}}{}}}"#,
            self.scenario.path,
            self.id,
            serde_json::Value::from(state),
            error
        );
        let mut response = json(StatusCode::OK, body);
        if running {
            self.hint(&mut response);
        }
        response
    }
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn insert(response: &mut Response<Full<Bytes>>, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_connections_are_refused_once_the_server_is_gone() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sim = runtime.block_on(Simulator::start()).unwrap();
        assert!(sim.connect_in_memory().is_ok());
        // Shutting the runtime down drops the server task, as a panic in it would.
        drop(runtime);
        let err = sim.connect_in_memory().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }
}
