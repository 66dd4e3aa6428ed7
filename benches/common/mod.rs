//! Shared by the benches: a lean loopback LRO server, the two hand-written polling loops the layer
//! is compared with (a minimal one, and one with the layer's guarantees), an in-memory inner
//! service, and CPU / memory probes.
#![allow(dead_code, unreachable_pub)] // each bench uses its own subset

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use tokio::net::TcpListener;
use tower::{Service, ServiceExt};
use tower_lro::{Google, LongRunning, LongRunningLayer};

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;
pub type HttpStack = LongRunning<HttpClient>;
pub type GoogleStack = LongRunning<HttpClient, Google>;

const AAO: HeaderName = HeaderName::from_static("azure-asyncoperation");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const ZERO: HeaderValue = HeaderValue::from_static("0");

/// A hyper-util legacy client over HTTP/1, as a user would build it.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The layer (default settings) over [`client`].
pub fn stack() -> HttpStack {
    tower::ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .service(client())
}

/// The layer for each dialect the lean server speaks, with the same settings.
pub struct Layers {
    pub azure: HttpStack,
    pub google: GoogleStack,
}

impl Layers {
    /// Both layers with their defaults, over [`client`]s.
    pub fn new() -> Layers {
        Layers {
            azure: stack(),
            google: tower::ServiceBuilder::new()
                .layer(LongRunningLayer::with_dialect(Google::new()))
                .service(client()),
        }
    }

    /// Both layers with `poll_timeout(None)`: no timer armed per request (a diagnostic).
    pub fn untimed() -> Layers {
        Layers {
            azure: tower::ServiceBuilder::new()
                .layer(LongRunningLayer::new().poll_timeout(None))
                .service(client()),
            google: tower::ServiceBuilder::new()
                .layer(LongRunningLayer::with_dialect(Google::new()).poll_timeout(None))
                .service(client()),
        }
    }

    /// One operation of `kind` through the layer of its dialect, its final body read.
    pub async fn operation(&mut self, kind: Kind, request: Request<Full<Bytes>>) -> Bytes {
        match kind {
            Kind::Google => layer_operation(&mut self.google, request).await,
            _ => layer_operation(&mut self.azure, request).await,
        }
    }
}

/// The monitor kinds the lean server scripts: Azure's three, and a Google operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `POST` → `202` + `Azure-AsyncOperation`; the last status response is final.
    AsyncOperation,
    /// `PUT` → `202` + `Location`; `202` while running, `200` + resource when done.
    Location,
    /// `PUT` → `201` + `provisioningState`; the resource is polled until terminal.
    Resource,
    /// `POST /v1/…` → `200` + a Google `Operation`; `/v1/{name}` is polled until `done`, and the
    /// last status response is final.
    Google,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::AsyncOperation,
        Kind::Location,
        Kind::Resource,
        Kind::Google,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::AsyncOperation => "aao-post",
            Kind::Location => "location-put",
            Kind::Resource => "resource-put",
            Kind::Google => "google-post",
        }
    }

    /// The kind a bench's `--profile` mode names by its suffix (none: Azure-AsyncOperation).
    pub fn from_suffix(mode: &str) -> Kind {
        if mode.ends_with("-location") {
            Kind::Location
        } else if mode.ends_with("-resource") {
            Kind::Resource
        } else if mode.ends_with("-google") {
            Kind::Google
        } else {
            Kind::AsyncOperation
        }
    }

    fn segment(self) -> &'static str {
        match self {
            Kind::AsyncOperation => "aao",
            Kind::Location => "loc",
            Kind::Resource => "res",
            Kind::Google => "v1/goo",
        }
    }

    fn method(self) -> Method {
        match self {
            Kind::AsyncOperation | Kind::Google => Method::POST,
            Kind::Location | Kind::Resource => Method::PUT,
        }
    }
}

/// The original request of operation `id` of `kind` whose monitor answers "running" `running`
/// times and then "succeeded" (so `running + 1` polls).
pub fn original(base: &str, kind: Kind, running: u32, id: u64) -> Request<Full<Bytes>> {
    Request::builder()
        .method(kind.method())
        .uri(format!("{base}/{}/{running}/{id}", kind.segment()))
        .header(CONTENT_TYPE, JSON)
        .body(Full::new(Bytes::from_static(br#"{"location":"westus"}"#)))
        .expect("a valid request")
}

fn get(uri: Uri) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::default());
    *request.uri_mut() = uri;
    request
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn read<B>(response: Response<B>) -> Bytes
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    response
        .into_body()
        .collect()
        .await
        .expect("a readable body")
        .to_bytes()
}

fn header_uri(response: &Response<Incoming>, name: &HeaderName) -> Uri {
    let value = response.headers().get(name).expect("the monitor header");
    Uri::try_from(value.as_bytes()).expect("an absolute monitor URL")
}

/// Client B: the hand-written polling loop. It sends exactly the requests the layer sends (the
/// original request once, bodiless GETs of the monitor, no final GET for these three kinds), reads
/// every body to the end so the connection is reused, and parses nothing beyond what tells it to
/// stop: a status code, or the bytes `"status":"Succeeded"` / `"provisioningState":"Succeeded"`.
pub async fn hand_operation(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    kind: Kind,
) -> Bytes {
    let uri = request.uri().clone();
    let initial = client.request(request).await.expect("the initial response");
    match kind {
        Kind::AsyncOperation => {
            let monitor = header_uri(&initial, &AAO);
            read(initial).await;
            loop {
                let reply = client.request(get(monitor.clone())).await.expect("a poll");
                let body = read(reply).await;
                if contains(&body, br#""status":"Succeeded""#) {
                    return body;
                }
            }
        }
        Kind::Location => {
            let monitor = header_uri(&initial, &LOCATION);
            read(initial).await;
            loop {
                let reply = client.request(get(monitor.clone())).await.expect("a poll");
                if reply.status() != StatusCode::ACCEPTED {
                    return read(reply).await;
                }
                read(reply).await;
            }
        }
        Kind::Resource => {
            let mut body = read(initial).await;
            while !contains(&body, br#""provisioningState":"Succeeded""#) {
                let reply = client.request(get(uri.clone())).await.expect("a poll");
                body = read(reply).await;
            }
            body
        }
        Kind::Google => {
            let body = read(initial).await;
            let monitor = google_monitor(&uri, name_in(&body));
            loop {
                let reply = client.request(get(monitor.clone())).await.expect("a poll");
                let body = read(reply).await;
                if contains(&body, br#""done":true"#) {
                    return body;
                }
            }
        }
    }
}

/// The bytes of the first `"name":"…"` string of a body (no escapes: the lean server's names have
/// none).
fn name_in(body: &[u8]) -> &[u8] {
    let key = br#""name":""#;
    let start = body
        .windows(key.len())
        .position(|w| w == key)
        .expect("a name")
        + key.len();
    let len = body[start..]
        .iter()
        .position(|&b| b == b'"')
        .expect("a closed name");
    &body[start..start + len]
}

/// `{origin}/v1/{name}` of an operation started by `original`.
fn google_monitor(original: &Uri, name: &[u8]) -> Uri {
    let mut path = b"/v1/".to_vec();
    path.extend_from_slice(name);
    let mut parts = original.clone().into_parts();
    parts.path_and_query =
        Some(http::uri::PathAndQuery::from_maybe_shared(Bytes::from(path)).expect("a valid path"));
    Uri::from_parts(parts).expect("a valid monitor URL")
}

/// Why the guarded loop stopped without a final response. The benches expect none; each variant
/// is a check the layer makes too, so the loop pays for it.
#[derive(Debug)]
pub enum Stopped {
    /// A request or its body did not finish within the poll timeout.
    TimedOut,
    /// The connection failed.
    Transport(String),
    /// A body was larger than the status-body limit, or broke.
    Body,
    /// A status body was not the JSON it must be.
    Malformed(serde_json::Error),
    /// The monitor URL is missing, not a URL, or on another origin.
    Monitor,
    /// The operation failed, was canceled, or answered an unexpected status code.
    Failed(StatusCode),
    /// More polls than the layer's default limit.
    TooManyPolls,
}

/// A status body of Azure-AsyncOperation / Operation-Location.
#[derive(Deserialize)]
struct AzureStatus<'a> {
    #[serde(borrow)]
    status: std::borrow::Cow<'a, str>,
}

/// A resource body's `properties.provisioningState`.
#[derive(Deserialize)]
struct AzureResource<'a> {
    #[serde(borrow, default)]
    properties: Option<AzureProperties<'a>>,
}

#[derive(Deserialize)]
struct AzureProperties<'a> {
    #[serde(borrow, rename = "provisioningState")]
    provisioning_state: Option<std::borrow::Cow<'a, str>>,
}

/// A Google `Operation`, as much of it as says whether and how it ended.
#[derive(Deserialize)]
struct GoogleOperation<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(default)]
    done: bool,
    #[serde(borrow, default)]
    error: Option<&'a serde_json::value::RawValue>,
}

/// Azure's terminal states (case-insensitive), and whether each is a success.
fn azure_terminal(state: &str) -> Option<bool> {
    if state.eq_ignore_ascii_case("Succeeded") {
        Some(true)
    } else if state.eq_ignore_ascii_case("Failed") || state.eq_ignore_ascii_case("Canceled") {
        Some(false)
    } else {
        None
    }
}

/// One request with the layer's guarantees: its response and whole body within the poll
/// timeout, the body within the status-body limit, and the `Retry-After` it asks for (seconds).
async fn guarded_request(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
) -> Result<(http::response::Parts, Bytes, Option<u64>), Stopped> {
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| Stopped::Transport(e.to_string()))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, 1024 * 1024)
            .collect()
            .await
            .map_err(|_| Stopped::Body)?
            .to_bytes();
        Ok((parts, body))
    };
    let (parts, body) = tokio::time::timeout(Duration::from_secs(60), exchange)
        .await
        .map_err(|_| Stopped::TimedOut)??;
    let retry_after = parts
        .headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    Ok((parts, body, retry_after))
}

/// Waits what the server asked for (nothing for `Retry-After: 0`, as the layer).
async fn wait(retry_after: Option<u64>) {
    match retry_after {
        Some(0) => {}
        Some(seconds) => tokio::time::sleep(Duration::from_secs(seconds)).await,
        None => tokio::time::sleep(Duration::from_secs(1)).await,
    }
}

/// The monitor URL in `header`: absolute, on the original request's origin.
fn same_origin_monitor(
    original: &Uri,
    parts: &http::response::Parts,
    header: &HeaderName,
) -> Result<Uri, Stopped> {
    let value = parts.headers.get(header).ok_or(Stopped::Monitor)?;
    let uri = Uri::try_from(value.as_bytes()).map_err(|_| Stopped::Monitor)?;
    if uri.scheme() == original.scheme() && uri.authority() == original.authority() {
        Ok(uri)
    } else {
        Err(Stopped::Monitor)
    }
}

/// Client C: the hand-written loop with the guarantees the layer gives, and no more: the original
/// request sent once, a `tokio::time::timeout` around every request and its body, every body
/// bounded, every status body parsed as JSON by serde_json into the fields that decide, terminal
/// failures told apart from success, the monitor URL checked to be on the original origin,
/// `Retry-After` obeyed, and the polls bounded by the layer's default limit. It sends exactly the
/// requests the minimal loop sends, so "layer / guarded" is the cost of the layer itself: its
/// generality (any dialect, every Azure rule), tokens, progress and tracing.
pub async fn guarded_operation(
    client: &HttpClient,
    request: Request<Full<Bytes>>,
    kind: Kind,
) -> Result<Bytes, Stopped> {
    let original = request.uri().clone();
    let (initial, body, mut retry_after) = guarded_request(client, request).await?;
    let monitor = match kind {
        Kind::AsyncOperation => same_origin_monitor(&original, &initial, &AAO)?,
        Kind::Location => same_origin_monitor(&original, &initial, &LOCATION)?,
        Kind::Resource => {
            let resource: AzureResource<'_> =
                serde_json::from_slice(&body).map_err(Stopped::Malformed)?;
            let state = resource.properties.and_then(|p| p.provisioning_state);
            match state.as_deref().and_then(azure_terminal) {
                Some(true) => return Ok(body),
                Some(false) => return Err(Stopped::Failed(initial.status)),
                None => original.clone(),
            }
        }
        Kind::Google => {
            let operation: GoogleOperation<'_> =
                serde_json::from_slice(&body).map_err(Stopped::Malformed)?;
            if operation.done {
                return Ok(body);
            }
            google_monitor(&original, operation.name.as_bytes())
        }
    };
    for _ in 0..5_000 {
        wait(retry_after).await;
        let (parts, body, hint) = guarded_request(client, get(monitor.clone())).await?;
        retry_after = hint;
        let succeeded = match kind {
            Kind::AsyncOperation => {
                if parts.status != StatusCode::OK {
                    return Err(Stopped::Failed(parts.status));
                }
                let status: AzureStatus<'_> =
                    serde_json::from_slice(&body).map_err(Stopped::Malformed)?;
                azure_terminal(&status.status)
            }
            Kind::Location => match parts.status {
                StatusCode::ACCEPTED => None,
                StatusCode::OK | StatusCode::CREATED | StatusCode::NO_CONTENT => Some(true),
                other => return Err(Stopped::Failed(other)),
            },
            Kind::Resource => {
                if parts.status != StatusCode::OK {
                    return Err(Stopped::Failed(parts.status));
                }
                let resource: AzureResource<'_> =
                    serde_json::from_slice(&body).map_err(Stopped::Malformed)?;
                let state = resource.properties.and_then(|p| p.provisioning_state);
                state.as_deref().and_then(azure_terminal)
            }
            Kind::Google => {
                if parts.status != StatusCode::OK {
                    return Err(Stopped::Failed(parts.status));
                }
                let operation: GoogleOperation<'_> =
                    serde_json::from_slice(&body).map_err(Stopped::Malformed)?;
                operation.done.then_some(operation.error.is_none())
            }
        };
        match succeeded {
            Some(true) => return Ok(body),
            Some(false) => return Err(Stopped::Failed(parts.status)),
            None => {}
        }
    }
    Err(Stopped::TooManyPolls)
}

/// Client A: the operation through any service (the layer's stack, by value or `&mut`), its final
/// body read to the end.
pub async fn layer_operation<T, B>(mut stack: T, request: Request<Full<Bytes>>) -> Bytes
where
    T: Service<Request<Full<Bytes>>, Response = Response<B>>,
    T::Error: std::fmt::Debug,
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let response = stack
        .ready()
        .await
        .expect("ready")
        .call(request)
        .await
        .expect("the final response");
    read(response).await
}

/// A loopback HTTP/1.1 server scripting the four kinds with `Retry-After: 0`, on its own thread
/// and current-thread runtime (so its CPU time is not the client thread's). It keeps only a
/// counter per operation, and counts requests: much leaner than the simulator, whose request log
/// and instance table make every round trip dearer and so would dilute the ratio being measured.
pub struct LeanServer {
    pub addr: SocketAddr,
    requests: Arc<AtomicU64>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct Script {
    // Operation id → "running" answers still to give.
    remaining: Mutex<HashMap<u64, u32>>,
}

impl LeanServer {
    pub fn start() -> LeanServer {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let thread = std::thread::Builder::new()
            .name("lean-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                rt.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                    let addr = listener.local_addr().expect("an address");
                    addr_tx.send(addr).expect("the address reaches the bench");
                    let origin: Arc<str> = format!("http://{addr}").into();
                    let script = Arc::new(Script::default());
                    loop {
                        tokio::select! {
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let _ = stream.set_nodelay(true);
                                let (script, origin, counter) =
                                    (script.clone(), origin.clone(), counter.clone());
                                tokio::spawn(async move {
                                    let service = hyper::service::service_fn(
                                        move |req: Request<Incoming>| {
                                            counter.fetch_add(1, Ordering::Relaxed);
                                            let response = script.answer(&origin, &req);
                                            async move { Ok::<_, Infallible>(response) }
                                        },
                                    );
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                                });
                            }
                            _ = &mut stop => break,
                        }
                    }
                });
            })
            .expect("a server thread");
        let addr = addr_rx.recv().expect("the server's address");
        LeanServer {
            addr,
            requests,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for LeanServer {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

fn with(
    mut response: Response<Full<Bytes>>,
    name: HeaderName,
    value: &str,
) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_str(value).expect("a header value"));
    response
}

fn running(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response.headers_mut().insert(RETRY_AFTER, ZERO);
    response
}

impl Script {
    /// Takes one "running" answer of `id`: `true` while the operation is still running.
    fn advance(&self, id: u64) -> bool {
        let mut remaining = self.remaining.lock().expect("not poisoned");
        match remaining.get_mut(&id) {
            Some(0) | None => {
                remaining.remove(&id);
                false
            }
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }

    fn answer(&self, origin: &str, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        let mut segments = path.trim_start_matches('/').split('/');
        let (first, second, third) = (segments.next(), segments.next(), segments.next());
        let fourth = segments.next();
        let id = |s: Option<&str>| s.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let operation = |id: u64, done: bool| {
            if done {
                format!(r#"{{"name":"operations/{id}","done":true,"response":{{"name":"r"}}}}"#)
            } else {
                format!(r#"{{"name":"operations/{id}","done":false}}"#)
            }
        };
        let resource = |state: &str| {
            format!(
                r#"{{"id":"{path}","name":"r","properties":{{"provisioningState":"{state}"}}}}"#
            )
        };
        match (req.method(), first) {
            (&Method::GET, Some("status")) => {
                let id = id(second);
                if self.advance(id) {
                    running(reply(
                        StatusCode::OK,
                        format!(r#"{{"id":"/status/{id}","name":"{id}","status":"InProgress"}}"#),
                    ))
                } else {
                    reply(
                        StatusCode::OK,
                        format!(r#"{{"id":"/status/{id}","name":"{id}","status":"Succeeded"}}"#),
                    )
                }
            }
            (&Method::GET, Some("monitor")) => {
                if self.advance(id(second)) {
                    running(reply(StatusCode::ACCEPTED, Bytes::new()))
                } else {
                    reply(StatusCode::OK, resource("Succeeded"))
                }
            }
            (&Method::GET, Some("res")) => {
                if self.advance(id(third)) {
                    running(reply(StatusCode::OK, resource("Creating")))
                } else {
                    reply(StatusCode::OK, resource("Succeeded"))
                }
            }
            (&Method::GET, Some("v1")) => {
                let id = id(third);
                let done = !self.advance(id);
                let response = reply(StatusCode::OK, operation(id, done));
                if done {
                    response
                } else {
                    running(response)
                }
            }
            (&Method::POST, Some("v1")) => {
                let (polls, op) = (id(third) as u32, id(fourth));
                self.remaining
                    .lock()
                    .expect("not poisoned")
                    .insert(op, polls);
                running(reply(StatusCode::OK, operation(op, false)))
            }
            (_, Some(kind)) => {
                let polls = id(second) as u32;
                let op = id(third);
                self.remaining
                    .lock()
                    .expect("not poisoned")
                    .insert(op, polls);
                match kind {
                    "aao" => running(with(
                        reply(StatusCode::ACCEPTED, Bytes::new()),
                        AAO,
                        &format!("{origin}/status/{op}"),
                    )),
                    "loc" => running(with(
                        reply(StatusCode::ACCEPTED, Bytes::new()),
                        LOCATION,
                        &format!("{origin}/monitor/{op}"),
                    )),
                    _ => running(reply(StatusCode::CREATED, resource("Creating"))),
                }
            }
            _ => reply(StatusCode::NOT_FOUND, Bytes::new()),
        }
    }
}

/// An in-memory inner service scripting `POST /ops/{id}` → `202` + `Azure-AsyncOperation`, then
/// `running` × `InProgress` and one `Succeeded` at `/status/{id}`, every "running" answer with
/// `hint` (a header name and value). Each answer first yields to the scheduler once, so that
/// thousands of operations really are in flight at once rather than finishing inside their first
/// poll.
#[derive(Clone)]
pub struct MemScript {
    running: u32,
    hint: (HeaderName, HeaderValue),
    answered: Arc<[AtomicU32]>,
}

pub const MEM_BASE: &str = "http://lro.test";

impl MemScript {
    pub fn new(operations: usize, running: u32, hint: (HeaderName, HeaderValue)) -> MemScript {
        MemScript {
            running,
            hint,
            answered: (0..operations).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    pub fn request(id: usize) -> Request<Full<Bytes>> {
        Request::post(format!("{MEM_BASE}/ops/{id}"))
            .header(CONTENT_TYPE, JSON)
            .body(Full::new(Bytes::from_static(br#"{"location":"westus"}"#)))
            .expect("a valid request")
    }

    pub fn id_of(uri: &Uri) -> usize {
        uri.path()
            .rsplit('/')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The answer to `req`, and whether it says "running".
    pub fn answer(&self, req: &Request<Full<Bytes>>) -> (Response<Full<Bytes>>, bool) {
        let id = Self::id_of(req.uri());
        if req.method() == Method::POST {
            self.answered[id].store(0, Ordering::Relaxed);
            let mut response = with(
                reply(StatusCode::ACCEPTED, Bytes::new()),
                AAO,
                &format!("{MEM_BASE}/status/{id}"),
            );
            response
                .headers_mut()
                .insert(self.hint.0.clone(), self.hint.1.clone());
            return (response, true);
        }
        let n = self.answered[id].fetch_add(1, Ordering::Relaxed);
        if n < self.running {
            let mut response = reply(
                StatusCode::OK,
                format!(r#"{{"id":"/status/{id}","name":"{id}","status":"InProgress"}}"#),
            );
            response
                .headers_mut()
                .insert(self.hint.0.clone(), self.hint.1.clone());
            (response, true)
        } else {
            let body = format!(r#"{{"id":"/status/{id}","name":"{id}","status":"Succeeded"}}"#);
            (reply(StatusCode::OK, body), false)
        }
    }
}

/// `Retry-After: 0`.
pub fn retry_now() -> (HeaderName, HeaderValue) {
    (RETRY_AFTER, ZERO)
}

/// The in-memory inner service over `script` (yields once per request).
pub fn mem_service(
    script: MemScript,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |req: Request<Full<Bytes>>| {
        let script = script.clone();
        async move {
            tokio::task::yield_now().await;
            Ok::<_, Infallible>(script.answer(&req).0)
        }
    })
}

/// The hand-written loop over an in-memory service: the original request, then GETs of the
/// `Azure-AsyncOperation` URL until the body says `"status":"Succeeded"`.
pub async fn hand_mem_operation<S>(mut service: S, request: Request<Full<Bytes>>) -> Bytes
where
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible>,
{
    let initial = service
        .ready()
        .await
        .expect("ready")
        .call(request)
        .await
        .expect("infallible");
    let value = initial.headers().get(&AAO).expect("a monitor");
    let monitor = Uri::try_from(value.as_bytes()).expect("an absolute monitor URL");
    read(initial).await;
    loop {
        let reply = service
            .ready()
            .await
            .expect("ready")
            .call(get(monitor.clone()))
            .await
            .expect("infallible");
        let body = read(reply).await;
        if contains(&body, br#""status":"Succeeded""#) {
            return body;
        }
    }
}

/// CPU time of the calling thread (`CLOCK_THREAD_CPUTIME_ID`, nanosecond resolution).
pub fn thread_cpu() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of the whole process, every thread (`CLOCK_PROCESS_CPUTIME_ID`).
pub fn process_cpu() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and the clock ids are valid on Linux.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn proc_status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// The `q`-quantile (0..=1) of `values`, sorting them.
pub fn quantile<T: Copy + Ord>(values: &mut [T], q: f64) -> T {
    values.sort_unstable();
    let index = ((values.len() - 1) as f64 * q).round() as usize;
    values[index]
}

/// The median of ratios.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}
