//! Shared helpers for the fleet's tests: temporary directories, a PostgreSQL 15 server started
//! from the machine's own binaries, the HTTP client workers poll through, and a handler that
//! records every outcome it is given.
#![allow(dead_code)] // each test file uses its own subset

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower_lro::{ErrorKind, OperationInfo};
use tower_lro_fleet::Delivery;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// hyper-util's client over loopback sockets: what workers poll through.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A directory under the system's temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "tower-lro-fleet-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where Debian's PostgreSQL 15 server binaries live (`postgresql-15`); `PG_BIN` overrides.
fn pg_bin() -> PathBuf {
    let dir = std::env::var_os("PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
    assert!(
        dir.join("initdb").exists() && dir.join("pg_ctl").exists(),
        "PostgreSQL 15's initdb and pg_ctl are not in {} (install Debian's `postgresql` package, \
         as .ci/run does, or set PG_BIN)",
        dir.display()
    );
    dir
}

/// A throwaway PostgreSQL server: a fresh cluster in a temporary directory, on 127.0.0.1 and a
/// free port, trusting local connections, with the server's durable defaults (`fsync`,
/// `synchronous_commit`, `full_page_writes` on: the fleet's guarantees assume a commit
/// acknowledged is a commit kept). Stopped (immediately) and deleted on drop.
///
/// PostgreSQL refuses to run as root: when the tests run as root (CI), the cluster belongs to
/// the `postgres` user the package creates, and its commands run through `runuser`.
pub struct Postgres {
    dir: TempDir,
    port: u16,
}

impl Postgres {
    pub fn start() -> Postgres {
        let pg = Postgres::init();
        pg.start_again();
        pg
    }

    /// A fresh cluster on its own port, not started yet: [`start_again`](Self::start_again)
    /// starts it.
    pub fn init() -> Postgres {
        let bin = pg_bin();
        let dir = TempDir::new("pg");
        let data = dir.path().join("data");
        if is_root() {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path()));
        }
        run(as_postgres(&bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "-D",
            ])
            .arg(&data));
        let port = free_port();
        Postgres { dir, port }
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port and data.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -h 127.0.0.1 -k {} -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        run(as_postgres(&pg_bin().join("pg_ctl"))
            .args(["-w", "-t", "30", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-o", &options, "start"]));
    }

    /// Stops the server at once, dropping every connection (as a crash or a failover would).
    pub fn stop(&self) {
        run(as_postgres(&pg_bin().join("pg_ctl"))
            .args(["-w", "-t", "30", "-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("stop"));
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&pg_bin().join("pg_ctl"))
            .args(["-w", "-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command) {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One outcome as the recording handler saw it.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub key: String,
    /// The final response's status, or the error's kind.
    pub result: Result<u16, ErrorKind>,
    pub polls: Option<u32>,
    pub body: String,
    /// The error's code (the server's), if any.
    pub code: Option<String>,
    /// Whether the error carried a resume token.
    pub token: bool,
}

/// A handler that records every outcome; it can be told to fail its first calls.
#[derive(Clone, Default)]
pub struct Recorder {
    pub records: Arc<Mutex<Vec<Record>>>,
    pub calls: Arc<AtomicUsize>,
    fail_first: Arc<AtomicUsize>,
}

impl Recorder {
    /// A recorder whose first `n` calls fail (after reading the outcome).
    pub fn failing_first(n: usize) -> Recorder {
        let recorder = Recorder::default();
        recorder.fail_first.store(n, Ordering::SeqCst);
        recorder
    }

    pub fn handler(
        &self,
    ) -> impl tower::Service<Delivery<Incoming>, Response = (), Error = BoxError, Future = impl Send>
           + Clone
           + Send
           + Sync
           + 'static {
        let recorder = self.clone();
        tower::service_fn(move |delivery: Delivery<Incoming>| {
            let recorder = recorder.clone();
            async move { recorder.record(delivery).await }
        })
    }

    async fn record(&self, delivery: Delivery<Incoming>) -> Result<(), BoxError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let id = delivery.id().to_string();
        let key = delivery.key().to_owned();
        let record = match delivery.into_result() {
            Ok(response) => {
                let status = response.status().as_u16();
                let polls = response
                    .extensions()
                    .get::<OperationInfo>()
                    .map(|i| i.polls);
                let body = response.into_body().collect().await?.to_bytes();
                Record {
                    id,
                    key,
                    result: Ok(status),
                    polls,
                    body: String::from_utf8_lossy(&body).into_owned(),
                    code: None,
                    token: false,
                }
            }
            Err(error) => Record {
                id,
                key,
                result: Err(error.kind()),
                polls: error.operation().map(|i| i.polls),
                body: error.to_string(),
                code: error.code().map(str::to_owned),
                token: error.resume_token().is_some(),
            },
        };
        let failing = self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err("the handler failed, as told".into());
        }
        self.records.lock().unwrap().push(record);
        Ok(())
    }

    pub fn snapshot(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    /// Waits (on the real clock) until `n` outcomes were recorded, at most `limit`.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Record> {
        let deadline = Instant::now() + limit;
        loop {
            let records = self.snapshot();
            if records.len() >= n || Instant::now() > deadline {
                return records;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Never completes: a worker given it runs until its test ends.
pub async fn forever() {
    std::future::pending::<()>().await
}
