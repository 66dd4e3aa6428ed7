//! Shared helpers for the end-to-end tests: a real hyper-util client over an in-memory network
//! (and one over loopback), a scriptable raw server for responses the simulator does not
//! produce, and body helpers.
//!
//! Tests on tokio's paused clock must not wait on a real socket: the paused clock jumps to the
//! next timer whenever the runtime has nothing to run, and a loopback round trip that is merely
//! slow (a loaded machine) is exactly that, so a 60 s poll timeout can fire mid-request. So
//! [`client`] connects through [`MemoryConnector`] to servers registered in a process-wide
//! in-memory network under their `127.0.0.1:port` authority ([`RawServer`] and [`simulator`]
//! register themselves), and only tests on the real clock use [`loopback_client`].
#![allow(dead_code)] // each test file uses its own subset

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_lro::{LongRunning, LongRunningLayer, OperationInfo};
use tower_lro_sim::{RecordedRequest, Simulator};

/// The client of paused-clock tests: hyper-util's, over the in-memory network.
pub type HttpClient = Client<MemoryConnector, Full<Bytes>>;
pub type Stack = LongRunning<HttpClient>;
/// The client of real-clock tests: hyper-util's, over real loopback sockets.
pub type LoopbackClient = Client<HttpConnector, Full<Bytes>>;
pub type LoopbackStack = LongRunning<LoopbackClient>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of [`RawServer::start_streaming`] handlers.
pub type AnyBody = BoxBody<Bytes, BoxError>;

/// A hyper-util legacy client over HTTP/1 and the in-memory network, with no timers of its own:
/// paused-clock safe.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build(MemoryConnector)
}

/// The layer over the in-memory client.
pub fn stack(layer: LongRunningLayer) -> Stack {
    ServiceBuilder::new().layer(layer).service(client())
}

/// A hyper-util legacy client over HTTP/1 and real loopback sockets: for the real clock only.
pub fn loopback_client() -> LoopbackClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The layer over the loopback client: for the real clock only.
pub fn loopback_stack(layer: LongRunningLayer) -> LoopbackStack {
    ServiceBuilder::new()
        .layer(layer)
        .service(loopback_client())
}

// ---------------------------------------------------------------------------------------------
// The in-memory network
// ---------------------------------------------------------------------------------------------

/// Opens a new in-memory connection to a server.
pub type Dial = dyn Fn() -> io::Result<DuplexStream> + Send + Sync;

/// Authority (`127.0.0.1:port`) → how to reach the server registered under it. Servers hold a
/// real listener on that port while registered, so two live servers never share an authority.
static NETWORK: LazyLock<Mutex<HashMap<String, Arc<Dial>>>> = LazyLock::new(Mutex::default);

fn network() -> std::sync::MutexGuard<'static, HashMap<String, Arc<Dial>>> {
    // A test that panicked while holding the lock left the map whole.
    NETWORK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Makes `authority` reachable in memory through `dial`, replacing any earlier registration
/// (a server that is gone, whose port was reused). Returns the registration, for [`unregister`].
pub fn register(authority: String, dial: Arc<Dial>) -> Arc<Dial> {
    network().insert(authority, dial.clone());
    dial
}

/// Removes `authority` from the network if it is still registered through `dial`.
pub fn unregister(authority: &str, dial: &Arc<Dial>) {
    let mut network = network();
    if network.get(authority).is_some_and(|d| Arc::ptr_eq(d, dial)) {
        network.remove(authority);
    }
}

fn refused(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionRefused, why)
}

/// A new connection to the server registered under `uri`'s authority.
fn dial(uri: &http::Uri) -> io::Result<DuplexStream> {
    // As hyper-util's `HttpConnector` (`enforce_http`): only plain http is carried.
    if uri.scheme() != Some(&http::uri::Scheme::HTTP) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid URL, scheme is not http: {uri}"),
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("no host in {uri}")))?;
    let authority = format!("{host}:{}", uri.port_u16().unwrap_or(80));
    // Cloned out, so the lock is not held while dialing.
    let dial = network().get(&authority).cloned();
    match dial {
        Some(dial) => dial(),
        None => Err(refused(format!("nothing listens on {authority} in memory"))),
    }
}

/// A connector for hyper-util's legacy `Client` that reaches servers registered in the
/// in-memory network, and refuses (`ConnectionRefused`) any other authority.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryConnector;

impl tower::Service<http::Uri> for MemoryConnector {
    type Response = MemoryIo;
    type Error = io::Error;
    type Future = Ready<io::Result<MemoryIo>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        ready(dial(&uri).map(|stream| MemoryIo(TokioIo::new(stream))))
    }
}

/// The client's end of an in-memory connection, as hyper-util's `Client` wants it.
pub struct MemoryIo(TokioIo<DuplexStream>);

impl hyper::rt::Read for MemoryIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for MemoryIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl Connection for MemoryIo {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// A [`Simulator`] reachable in memory (through [`client`]) under the authority of its URLs, as
/// well as over its loopback socket. The network holds it weakly: once the test drops it, its
/// authority refuses connections.
pub async fn simulator() -> Arc<Simulator> {
    let sim = Arc::new(Simulator::start().await.expect("the simulator starts"));
    let weak: Weak<Simulator> = Arc::downgrade(&sim);
    let authority = sim.addr().to_string();
    let gone = authority.clone();
    register(
        authority,
        Arc::new(move || match weak.upgrade() {
            Some(sim) => sim.connect_in_memory(),
            None => Err(refused(format!("the simulator on {gone} was dropped"))),
        }),
    );
    sim
}

pub fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

/// A request; a non-empty body is declared as JSON, as Azure clients do.
pub fn request(method: Method, url: &str, body: &'static str) -> Request<Full<Bytes>> {
    let mut builder = Request::builder().method(method).uri(url);
    if !body.is_empty() {
        builder = builder.header("content-type", "application/json");
    }
    builder
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// The whole body of a response as text.
pub async fn text<B>(response: Response<B>) -> String
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// What the raw server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
    pub at: Instant,
}

type Handler = Arc<dyn Fn(usize, &Seen) -> Response<Full<Bytes>> + Send + Sync>;

/// A hyper server whose every answer is scripted by a closure of (request number, request). It
/// listens on 127.0.0.1 and is registered in the in-memory network under that authority.
pub struct RawServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    bodies: Arc<Mutex<Vec<(usize, Bytes)>>>,
    connections: Arc<AtomicUsize>,
    registration: Arc<Dial>,
    task: JoinHandle<()>,
}

impl RawServer {
    pub async fn start(
        handler: impl Fn(usize, &Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> RawServer {
        let handler: Handler = Arc::new(handler);
        Self::start_with(move |n, seen| {
            let response = handler(n, seen);
            async move { response }
        })
        .await
    }

    /// Like [`start`](Self::start), with an async handler (to answer late, or never).
    pub async fn start_with<F, Fut>(handler: F) -> RawServer
    where
        F: Fn(usize, &Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        Self::start_with_body(handler).await
    }

    /// Like [`start_with`](Self::start_with), with any body (a [`Generated`] one, say: huge,
    /// failing or stalling part-way).
    pub async fn start_streaming<F, Fut>(handler: F) -> RawServer
    where
        F: Fn(usize, &Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<AnyBody>> + Send + 'static,
    {
        Self::start_with_body(handler).await
    }

    /// Like [`start_with`](Self::start_with), with any response body (a [`ChannelBody`] to send
    /// a body piece by piece, say).
    pub async fn start_with_body<F, Fut, B>(handler: F) -> RawServer
    where
        F: Fn(usize, &Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<B>> + Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dialed, mut incoming) = mpsc::unbounded_channel::<DuplexStream>();
        let registration = register(
            addr.to_string(),
            Arc::new(move || {
                let (client, server) = tokio::io::duplex(64 * 1024);
                dialed
                    .send(server)
                    .map_err(|_| refused(format!("the raw server on {addr} is gone")))?;
                Ok(client)
            }),
        );
        let script = Arc::new(Script {
            handler,
            seen: Arc::new(Mutex::new(Vec::new())),
            bodies: Arc::new(Mutex::new(Vec::new())),
        });
        let (seen, bodies) = (script.seen.clone(), script.bodies.clone());
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                // TCP and in-memory connections are served, and counted, alike.
                tokio::select! {
                    stream = listener.accept() => {
                        let Ok((stream, _)) = stream else {
                            continue;
                        };
                        accepted.fetch_add(1, Ordering::SeqCst);
                        connections.spawn(script.clone().serve(stream));
                    }
                    Some(stream) = incoming.recv() => {
                        accepted.fetch_add(1, Ordering::SeqCst);
                        connections.spawn(script.clone().serve(stream));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        RawServer {
            addr,
            seen,
            bodies,
            connections,
            registration,
            task,
        }
    }

    /// How many connections the server accepted (over TCP or in memory).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The body of request number `n`, once it was read.
    pub fn body(&self, n: usize) -> Option<Bytes> {
        let bodies = self.bodies.lock().unwrap();
        bodies.iter().find(|(i, _)| *i == n).map(|(_, b)| b.clone())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self, method: &Method) -> usize {
        self.seen().iter().filter(|s| s.method == method).count()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        unregister(&self.addr.to_string(), &self.registration);
        self.task.abort();
    }
}

/// A [`RawServer`]'s handler and logs, shared by its connections.
struct Script<F> {
    handler: F,
    seen: Arc<Mutex<Vec<Seen>>>,
    bodies: Arc<Mutex<Vec<(usize, Bytes)>>>,
}

impl<F> Script<F> {
    /// Serves one connection, from the socket or in memory.
    async fn serve<I, Fut, B>(self: Arc<Self>, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        F: Fn(usize, &Seen) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<B>> + Send + 'static,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let seen = Seen {
                method: req.method().clone(),
                uri: req.uri().clone(),
                headers: req.headers().clone(),
                at: Instant::now(),
            };
            let n = {
                let mut log = self.seen.lock().unwrap();
                log.push(seen.clone());
                log.len() - 1
            };
            let response = (self.handler)(n, &seen);
            let body_log = self.bodies.clone();
            async move {
                // The request body, read before answering, for `RawServer::body`.
                let body = match req.into_body().collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(_) => Bytes::new(),
                };
                body_log.lock().unwrap().push((n, body));
                Ok::<_, Infallible>(response.await)
            }
        });
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(io), service)
            .await;
    }
}

/// A response with a JSON body and extra headers.
pub fn reply(
    status: u16,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_str(value).unwrap(),
        );
    }
    response
}

/// A response body fed through a channel: each `Bytes` sent is one data frame; dropping the
/// sender ends the body. Lets a server hold a body open to show the client streams it.
pub struct ChannelBody(mpsc::UnboundedReceiver<Bytes>);

impl ChannelBody {
    pub fn new() -> (mpsc::UnboundedSender<Bytes>, ChannelBody) {
        let (tx, rx) = mpsc::unbounded_channel();
        (tx, ChannelBody(rx))
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|data| data.map(|d| Ok(Frame::data(d))))
    }
}

/// An operation that leaves its origin: `origin` answers the first request `201` with an
/// `Azure-AsyncOperation` monitor on `status` (and a 1 ms hint), and every later one `200`;
/// `status` says `Succeeded`. Returns `(origin, status)`.
pub async fn cross_origin_operation() -> (RawServer, RawServer) {
    let status = RawServer::start(|_, _| reply(200, &[], r#"{"status":"Succeeded"}"#)).await;
    let monitor = status.url("/operations/1");
    let origin = RawServer::start(move |n, _| match n {
        0 => reply(
            201,
            &[
                ("azure-asyncoperation", monitor.as_str()),
                ("retry-after-ms", "1"),
            ],
            "{}",
        ),
        _ => reply(200, &[], r#"{"name":"a"}"#),
    })
    .await;
    (origin, status)
}

/// `(method, path and query)` of each request the raw server saw, in order.
pub fn trail(seen: &[Seen]) -> Vec<(Method, String)> {
    seen.iter()
        .map(|s| (s.method.clone(), path_and_query(&s.uri)))
        .collect()
}

/// `(method, path and query)` of each request the simulator saw, in order.
pub fn sim_trail(requests: &[RecordedRequest]) -> Vec<(Method, String)> {
    requests
        .iter()
        .map(|r| (r.method.clone(), path_and_query(&r.uri)))
        .collect()
}

fn path_and_query(uri: &http::Uri) -> String {
    uri.path_and_query()
        .map_or_else(|| uri.path().to_owned(), ToString::to_string)
}

/// The original request is the first one, arrived exactly once, and every later request is a GET
/// (only GETs are ever repeated).
pub fn assert_sent_once(trail: &[(Method, String)], method: &Method, path_and_query: &str) {
    let original = (method.clone(), path_and_query.to_owned());
    assert_eq!(
        trail.first(),
        Some(&original),
        "the original request comes first: {trail:?}"
    );
    if method != Method::GET {
        assert_eq!(
            trail.iter().filter(|r| **r == original).count(),
            1,
            "the original request arrived exactly once: {trail:?}"
        );
    }
    assert!(
        trail[1..].iter().all(|(m, _)| m == Method::GET),
        "only GETs follow the original request: {trail:?}"
    );
}

/// The [`OperationInfo`] of a followed operation's final response.
pub fn info<B>(response: &Response<B>) -> OperationInfo {
    response
        .extensions()
        .get::<OperationInfo>()
        .cloned()
        .expect("a followed operation's final response carries OperationInfo")
}

/// Like [`reply`], with raw header-value bytes (obs-text, non-UTF-8) and any body.
pub fn reply_raw(status: u16, headers: &[(&str, &[u8])], body: AnyBody) -> Response<AnyBody> {
    let mut response = Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    response
}

/// A whole body for [`RawServer::start_streaming`] handlers.
pub fn full(body: impl Into<Bytes>) -> AnyBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A port on 127.0.0.1 where the in-memory network refuses connections: it is never registered,
/// and stays bound for the rest of the process so that no server of a test running alongside
/// can take it meanwhile. (For [`client`]; over loopback a connection to it would hang.)
pub fn free_port() -> u16 {
    static RESERVED: Mutex<Vec<std::net::TcpListener>> = Mutex::new(Vec::new());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    RESERVED.lock().unwrap().push(listener);
    port
}

/// A body produced lazily, chunk by chunk, as the connection asks for it: `total` bytes of `fill`
/// that are never all in memory. It counts what it produced, can declare its length (so hyper
/// sends `Content-Length`), and can fail (the connection is cut mid-body) or stall for ever after
/// a number of bytes.
pub struct Generated {
    left: u64,
    total: u64,
    chunk: Bytes,
    exact: bool,
    fail_after: Option<u64>,
    stall_after: Option<u64>,
    paused: bool,
    produced: Arc<AtomicU64>,
}

impl Generated {
    pub fn new(total: u64, fill: u8) -> Generated {
        Generated {
            left: total,
            total,
            chunk: Bytes::from(vec![fill; 64 * 1024]),
            exact: false,
            fail_after: None,
            stall_after: None,
            paused: false,
            produced: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Declare the length: hyper then sends `Content-Length` instead of chunked encoding.
    pub fn with_length(mut self) -> Self {
        self.exact = true;
        self
    }

    /// Fail once `bytes` were produced: hyper closes the connection mid-body. The body pauses
    /// once first, so hyper flushes the head and the bytes so far: the client really gets a
    /// response cut part-way, not a connection closed before any answer.
    pub fn fail_after(mut self, bytes: u64) -> Self {
        self.fail_after = Some(bytes);
        self
    }

    /// Fail at once, before hyper has flushed anything: the connection closes before any answer.
    pub fn fail_before_head(mut self) -> Self {
        self.fail_after = Some(0);
        self.paused = true;
        self
    }

    /// Never produce anything more once `bytes` were produced.
    pub fn stall_after(mut self, bytes: u64) -> Self {
        self.stall_after = Some(bytes);
        self
    }

    /// The counter of bytes produced so far.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.produced.clone()
    }

    pub fn boxed_body(self) -> AnyBody {
        BodyExt::boxed(self)
    }
}

impl http_body::Body for Generated {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let produced = self.total - self.left;
        if self.fail_after.is_some_and(|at| produced >= at) {
            if !self.paused {
                self.paused = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            return Poll::Ready(Some(Err("the generated body was cut on purpose".into())));
        }
        if self.stall_after.is_some_and(|at| produced >= at) {
            // Never woken: the body stalls for good.
            return Poll::Pending;
        }
        if self.left == 0 {
            return Poll::Ready(None);
        }
        let mut n = (self.chunk.len() as u64).min(self.left);
        for limit in [self.fail_after, self.stall_after].into_iter().flatten() {
            if limit > produced {
                n = n.min(limit - produced);
            }
        }
        self.left -= n;
        self.produced.fetch_add(n, Ordering::Relaxed);
        let data = self.chunk.slice(..n as usize);
        Poll::Ready(Some(Ok(http_body::Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0 && self.fail_after.is_none() && self.stall_after.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        if self.exact {
            http_body::SizeHint::with_exact(self.left)
        } else {
            http_body::SizeHint::default()
        }
    }
}
