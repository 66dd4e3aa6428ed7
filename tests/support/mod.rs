//! Shared helpers for the end-to-end tests: a real hyper-util client, a scriptable raw loopback
//! server for responses the simulator does not produce, and body helpers.
#![allow(dead_code)] // each test file uses its own subset

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_lro::{LongRunning, LongRunningLayer};

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;
pub type Stack = LongRunning<HttpClient>;

/// A hyper-util legacy client over HTTP/1, with no timers of its own (paused-clock safe).
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The layer over a real client.
pub fn stack(layer: LongRunningLayer) -> Stack {
    ServiceBuilder::new().layer(layer).service(client())
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

/// A loopback hyper server whose every answer is scripted by a closure of (request number, request).
pub struct RawServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let log = seen.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (handler, log) = (handler.clone(), log.clone());
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let seen = Seen {
                            method: req.method().clone(),
                            uri: req.uri().clone(),
                            headers: req.headers().clone(),
                            at: Instant::now(),
                        };
                        let n = {
                            let mut log = log.lock().unwrap();
                            log.push(seen.clone());
                            log.len() - 1
                        };
                        let response = handler(n, &seen);
                        async move { Ok::<_, Infallible>(response.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RawServer { addr, seen, task }
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
        self.task.abort();
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
