//! A scripted server and a client for the layer's tests, over loopback on the real clock: a hyper
//! server on `127.0.0.1` whose every answer a closure of (request number, request) chooses, and
//! hyper-util's client.
#![allow(dead_code)] // each test file uses its own subset

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The client of the tests: hyper-util's, over HTTP/1 and loopback sockets.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What the raw server saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: http::Uri,
    pub headers: http::HeaderMap,
}

type Handler = dyn Fn(usize, &Seen) -> Response<Full<Bytes>> + Send + Sync;

/// A hyper server on 127.0.0.1 whose every answer is scripted by a closure of (request number,
/// request). Dropping it stops it.
pub struct RawServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl RawServer {
    pub async fn start(
        handler: impl Fn(usize, &Seen) -> Response<Full<Bytes>> + Send + Sync + 'static,
    ) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            // Connections live in this set, so aborting the server task closes them all.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let (handler, log) = (handler.clone(), log.clone());
                        connections.spawn(serve(TokioIo::new(stream), handler, log));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
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

async fn serve(
    io: TokioIo<tokio::net::TcpStream>,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<Seen>>>,
) {
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let seen = Seen {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
        };
        let n = {
            let mut log = log.lock().unwrap();
            log.push(seen.clone());
            log.len() - 1
        };
        let response = handler(n, &seen);
        async move { Ok::<_, Infallible>(response) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
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
