//! The server: its sockets and in-memory connections, its request log, and the routing of each
//! request to the scenario or operation instance that answers it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::DuplexStream;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::instance::{json, Instance};
use crate::scenario::{Monitor, Scenario};

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
pub(crate) enum Route {
    Monitor,
    Result,
    Resource,
    /// `POST`: the operation's cancel request.
    Cancel,
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
    /// use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};
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
        if let Some(response) = state.instances[index].answer_request(req.method(), req.headers()) {
            return response;
        }
        let cancel = route == Route::Cancel;
        if req.method() == Method::GET && !cancel || req.method() == Method::POST && cancel {
            if state.instances[index].scenario.monitor == Monitor::DurableFunctions {
                return state.instances[index].durable_answer(route, req.uri());
            }
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
    let mut instance = Instance {
        scenario: scenario.clone(),
        id,
        started: Instant::now(),
        running_answers: 0,
        api_version,
        origin: format!("http://{host}"),
        canceled: false,
        reason: None,
    };
    match scenario.monitor {
        Monitor::DurableFunctions => {
            let status = instance.durable_path();
            state
                .routes
                .insert(format!("{status}/terminate"), (index, Route::Cancel));
            state.routes.insert(status, (index, Route::Monitor));
            let response = instance.durable_start();
            state.instances.push(instance);
            return response;
        }
        Monitor::AsyncRequestReply => {
            state
                .routes
                .insert(instance.reply_status_path(), (index, Route::Monitor));
            state
                .routes
                .insert(format!("/results/{id}"), (index, Route::Result));
            let response = instance.reply_start();
            state.instances.push(instance);
            return response;
        }
        _ => {}
    }
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
    if crate::job::is_job(scenario.monitor) {
        for (path, route) in crate::job::routes(&instance) {
            state.routes.insert(path, (index, route));
        }
        let response = crate::job::initial(&instance);
        state.instances.push(instance);
        return response;
    }
    if let Some(response) = instance.start(req.headers()) {
        // Only the monitor: the initial path keeps starting operations (a FHIR kick-off is a GET).
        state
            .routes
            .insert(instance.monitor_path(false), (index, Route::Monitor));
        if scenario.moves_monitor {
            state
                .routes
                .insert(instance.monitor_path(true), (index, Route::Monitor));
        }
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
