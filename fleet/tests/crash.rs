//! Two worker processes share one PostgreSQL database; one is killed with SIGKILL mid-run. Every
//! operation still reaches its right outcome (succeeded, failed or canceled, as the server
//! ended it, or canceled when the caller asked with `Fleet::cancel`), every initial request
//! reached the server once, workers sent nothing but GETs and the cancels asked for (each once),
//! and the polls sent twice are bounded by what the killed worker had in flight.
//!
//! Every built-in dialect takes part. Azure (its four monitor shapes), Google, FHIR Bulk Data and
//! the three job-API presets go through one fleet whose dialect is their [`Dialect::or`]: their
//! initial answers differ, so each operation is taken by its own dialect. Durable Functions, the
//! Asynchronous Request-Reply pattern and OData's asynchronous requests all start with a `202`
//! and a `Location`, as Azure's `Location` shape does: a combined dialect cannot tell them apart
//! (the dialect is chosen, never guessed), so each has a fleet of its own, on its own queue.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use tower_lro::{
    AsyncRequestReply, Azure, Dialect, DurableFunctions, ErrorKind, FhirBulkData, Google, JsonJob,
    LongRunningLayer, ODataAsync, OperationInfo, ResumeToken,
};
use tower_lro_fleet::{Delivery, FleetBuilder, Started, Store};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

use support::{client, Postgres, Recorder};

/// Operations of each kind: one fails, one is canceled by the server (where its protocol has
/// those endings), the others succeed after one to six polls.
const PER_KIND: usize = 6;
const OPERATIONS: usize = PER_KIND * Kind::ALL.len();

/// The fleets every process runs, each on its own queue (a worker takes every job of its queue,
/// and a fleet resumes only its own dialect's tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Mixed,
    Durable,
    Reply,
    OData,
}

impl Queue {
    const ALL: [Queue; 4] = [Queue::Mixed, Queue::Durable, Queue::Reply, Queue::OData];

    fn name(self) -> &'static str {
        match self {
            Queue::Mixed => "crash-mixed",
            Queue::Durable => "crash-durable-functions",
            Queue::Reply => "crash-async-request-reply",
            Queue::OData => "crash-odata-async",
        }
    }

    /// Steps in flight per worker: the mixed fleet carries most operations.
    fn concurrency(self) -> usize {
        match self {
            Queue::Mixed => 6,
            _ => 2,
        }
    }
}

/// The dialects the mixed fleet follows, tried in this order on each initial answer.
fn mixed() -> impl Dialect {
    Azure::new()
        .or(Google::new())
        .or(FhirBulkData::new())
        .or(JsonJob::openai())
        .or(JsonJob::anthropic())
        .or(JsonJob::replicate())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AzureAsyncOperation,
    AzureOperationLocation,
    AzureLocation,
    AzureResource,
    Google,
    FhirBulkData,
    OpenAi,
    Anthropic,
    Replicate,
    DurableFunctions,
    AsyncRequestReply,
    ODataAsync,
}

/// How an operation ends on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Succeeded,
    Failed,
    Canceled,
    /// Running until the caller cancels it with `Fleet::cancel`, before the workers start.
    CanceledByCaller,
}

impl Kind {
    const ALL: [Kind; 12] = [
        Kind::AzureAsyncOperation,
        Kind::AzureOperationLocation,
        Kind::AzureLocation,
        Kind::AzureResource,
        Kind::Google,
        Kind::FhirBulkData,
        Kind::OpenAi,
        Kind::Anthropic,
        Kind::Replicate,
        Kind::DurableFunctions,
        Kind::AsyncRequestReply,
        Kind::ODataAsync,
    ];

    fn queue(self) -> Queue {
        match self {
            Kind::DurableFunctions => Queue::Durable,
            Kind::AsyncRequestReply => Queue::Reply,
            Kind::ODataAsync => Queue::OData,
            _ => Queue::Mixed,
        }
    }

    /// The dialect its tokens name: the one that took the initial answer.
    fn dialect(self) -> &'static str {
        match self {
            Kind::AzureAsyncOperation
            | Kind::AzureOperationLocation
            | Kind::AzureLocation
            | Kind::AzureResource => "azure",
            Kind::Google => "google",
            Kind::FhirBulkData => "fhir-bulk-data",
            Kind::OpenAi => "openai-job",
            Kind::Anthropic => "anthropic-batch",
            Kind::Replicate => "replicate-prediction",
            Kind::DurableFunctions => "durable-functions",
            Kind::AsyncRequestReply => "async-request-reply",
            Kind::ODataAsync => "odata-async",
        }
    }

    /// The method, the path (unique to the operation where the protocol lets the path vary) and
    /// the simulator's monitor.
    fn start(self, n: usize) -> (Method, String, Monitor) {
        match self {
            Kind::AzureAsyncOperation => (
                Method::POST,
                format!("/vms/{n}/start"),
                Monitor::AzureAsyncOperation,
            ),
            Kind::AzureOperationLocation => (
                Method::POST,
                format!("/jobs/{n}/run"),
                Monitor::OperationLocation,
            ),
            Kind::AzureLocation => (Method::POST, format!("/vms/{n}/restart"), Monitor::Location),
            Kind::AzureResource => (Method::PUT, format!("/accounts/{n}"), Monitor::Resource),
            Kind::Google => (
                Method::POST,
                format!("/v1/projects/p{n}/locations/l/instances"),
                Monitor::GoogleOperation,
            ),
            Kind::FhirBulkData => (
                Method::POST,
                format!("/fhir/{n}/$export"),
                Monitor::FhirBulkData,
            ),
            Kind::OpenAi => (Method::POST, format!("/v1/{n}/batches"), Monitor::OpenAiJob),
            Kind::Anthropic => (
                Method::POST,
                "/v1/messages/batches".into(),
                Monitor::AnthropicBatch,
            ),
            Kind::Replicate => (
                Method::POST,
                format!("/v1/models/sim/m{n}/predictions"),
                Monitor::ReplicatePrediction,
            ),
            Kind::DurableFunctions => (
                Method::POST,
                format!("/api/orchestrators/Hello{n}"),
                Monitor::DurableFunctions,
            ),
            Kind::AsyncRequestReply => (
                Method::POST,
                format!("/api/work/{n}"),
                Monitor::AsyncRequestReply,
            ),
            Kind::ODataAsync => (
                Method::POST,
                format!("/odata/{n}/Orders"),
                Monitor::ODataAsync,
            ),
        }
    }

    /// Whether its dialect cancels with no help (Azure's and Request-Reply's cancels are
    /// the caller's `CancelVia`, which a fleet's `cancel` does not take).
    fn cancels(self) -> bool {
        !matches!(
            self,
            Kind::AzureAsyncOperation
                | Kind::AzureOperationLocation
                | Kind::AzureLocation
                | Kind::AzureResource
                | Kind::AsyncRequestReply
        )
    }

    /// How the `j`th operation of this kind ends.
    fn end(self, j: usize) -> End {
        match j {
            0 => End::Failed,
            1 => End::Canceled,
            2 if self.cancels() => End::CanceledByCaller,
            _ => End::Succeeded,
        }
    }

    /// The outcome the handler must be given, as the protocol reads the server's ending: the
    /// final status, or the error's kind.
    fn outcome(self, end: End) -> String {
        let failed = format!("{:?}", ErrorKind::Failed);
        let canceled = format!("{:?}", ErrorKind::Canceled);
        match (self, end) {
            // An Anthropic batch has no failed state (its requests fail one by one), and ends
            // canceled only when someone asked it to: the server's ending is a finished batch.
            (Kind::Anthropic, End::Failed | End::Canceled) => "200".into(),
            // OData's result of a POST is the `201` of the created entity.
            (Kind::ODataAsync, End::Succeeded) => "201".into(),
            (_, End::Succeeded) => "200".into(),
            (_, End::Failed) => failed,
            // Protocols without a canceled state answer the server's cancel with an error
            // status: Azure's `Location` an error, Request-Reply a `409`, FHIR a `404` (the
            // export is gone), OData a `503` result.
            (
                Kind::AzureLocation
                | Kind::AsyncRequestReply
                | Kind::FhirBulkData
                | Kind::ODataAsync,
                End::Canceled,
            ) => failed,
            (_, End::Canceled | End::CanceledByCaller) => canceled,
        }
    }
}

fn builder(store: Store, queue: Queue) -> FleetBuilder {
    FleetBuilder::new(store)
        .queue(queue.name())
        .heartbeat(Duration::from_secs(1))
        .missed_heartbeats(2)
        .fetch_interval(Duration::from_millis(50))
        .batch_size(4)
        .concurrency(queue.concurrency())
        .retry_backoff(Duration::from_millis(100), Duration::from_millis(400))
}

/// One outcome line a child printed: the key, the outcome, and the polls it reports.
#[derive(Debug, Clone)]
struct Line {
    child: &'static str,
    key: String,
    outcome: String,
    polls: u32,
}

fn spawn_child(name: &'static str, url: &str, lines: Arc<Mutex<Vec<Line>>>) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_worker",
            "--include-ignored",
            "--nocapture",
        ])
        .env("FLEET_CHILD_DB", url)
        .env("FLEET_CHILD_NAME", name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let ["OUTCOME", key, outcome, polls] = fields[..] {
                lines.lock().unwrap().push(Line {
                    child: name,
                    key: key.to_owned(),
                    outcome: outcome.to_owned(),
                    polls: polls.parse().unwrap(),
                });
            }
        }
    });
    child
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// What the test knows of one started operation.
#[derive(Debug)]
struct Operation {
    method: Method,
    path: String,
    /// The path its polls go to, as its token names it.
    monitor: String,
    expected: String,
}

/// Starts `request` on `fleet` and returns its id and token (the operation must be tracked).
macro_rules! start {
    ($fleet:expr, $key:expr, $request:expr) => {
        match $fleet.start($key, $request).await.unwrap() {
            Started::Tracked { id, response } => (
                id,
                response.extensions().get::<ResumeToken>().cloned().unwrap(),
            ),
            other => panic!("{} was not tracked: {other:?}", $key),
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_run_loses_no_operation_of_any_dialect() {
    let pg = Postgres::start();
    let store = Store::postgres(&pg.url()).await.unwrap();
    let sim = Simulator::start().await.unwrap();
    // The caller's side: it starts the operations and runs no worker.
    let handler = Recorder::default().handler();
    let mixed_starter = builder(store.clone(), Queue::Mixed)
        .build(
            LongRunningLayer::with_dialect(mixed()),
            client(),
            handler.clone(),
        )
        .unwrap();
    let durable_starter = builder(store.clone(), Queue::Durable)
        .build(
            LongRunningLayer::with_dialect(DurableFunctions::new()),
            client(),
            handler.clone(),
        )
        .unwrap();
    let reply_starter = builder(store.clone(), Queue::Reply)
        .build(
            LongRunningLayer::with_dialect(AsyncRequestReply::new()),
            client(),
            handler.clone(),
        )
        .unwrap();
    let odata_starter = builder(store, Queue::OData)
        .build(
            LongRunningLayer::with_dialect(ODataAsync::new()),
            client(),
            handler,
        )
        .unwrap();

    let mut started: HashMap<String, Operation> = HashMap::new();
    let mut cancels = 0;
    for (k, kind) in Kind::ALL.into_iter().enumerate() {
        for j in 0..PER_KIND {
            let n = k * PER_KIND + j;
            let (method, path, monitor) = kind.start(n);
            let end = kind.end(j);
            let ending = match end {
                End::Succeeded | End::CanceledByCaller => Ending::Succeeded,
                End::Failed => Ending::Failed {
                    code: "Conflict".into(),
                    message: "it failed, as told".into(),
                },
                End::Canceled => Ending::Canceled,
            };
            // From 1 to 6 polls: whenever the victim dies, some operations are mid-way. One to
            // be canceled runs until it is.
            let polls = match end {
                End::CanceledByCaller => 1_000,
                _ => u32::try_from((j + k) % 6).unwrap() + 1,
            };
            sim.add(
                Scenario::new(method.clone(), &path, monitor)
                    .retry_after(RetryAfter::Millis(10))
                    .ending(ending)
                    .completes_after_polls(polls),
            );
            let key = format!("{kind:?}-{j}");
            let request = Request::builder()
                .method(method.clone())
                .uri(sim.url(&path))
                .header("content-type", "application/json")
                .body(Full::from("{}"))
                .unwrap();
            let (id, token) = match kind.queue() {
                Queue::Mixed => start!(mixed_starter, key.clone(), request),
                Queue::Durable => start!(durable_starter, key.clone(), request),
                Queue::Reply => start!(reply_starter, key.clone(), request),
                Queue::OData => start!(odata_starter, key.clone(), request),
            };
            if end == End::CanceledByCaller {
                // Asked now; the first worker to take its step sends the cancel, once.
                let asked = match kind.queue() {
                    Queue::Mixed => mixed_starter.cancel(&id).await,
                    Queue::Durable => durable_starter.cancel(&id).await,
                    Queue::Reply => reply_starter.cancel(&id).await,
                    Queue::OData => odata_starter.cancel(&id).await,
                };
                assert!(asked.is_ok(), "{key}: {asked:?}");
                cancels += 1;
            }
            // Each operation was taken by its own dialect, even through the combined one.
            assert_eq!(token.dialect(), kind.dialect(), "{key}");
            let monitor: http::Uri = token.monitor_url().parse().unwrap();
            started.insert(
                key,
                Operation {
                    method,
                    path,
                    monitor: monitor.path().to_owned(),
                    expected: kind.outcome(end),
                },
            );
        }
    }
    assert_eq!(started.len(), OPERATIONS);

    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut victim = spawn_child("victim", &pg.url(), lines.clone());
    let mut survivor = spawn_child("survivor", &pg.url(), lines.clone());

    // Kill the victim once a quarter of the operations are done (the others are mid-way) and
    // while it holds steps.
    let quarter = wait_until(Duration::from_secs(60), || {
        lines.lock().unwrap().len() >= OPERATIONS / 4
    });
    assert!(quarter, "no progress: {:?}", lines.lock().unwrap());
    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let held = || async {
        let (held,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM apalis.jobs \
             WHERE lock_by LIKE 'victim-%' AND status IN ('Queued', 'Running')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        held
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while held().await < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    let killed_at = Instant::now();
    // The kill left steps behind: jobs claimed by the victim that nobody acknowledged.
    let orphaned = held().await;
    assert!(orphaned > 0, "the victim held no step when it was killed");
    let victims_outcomes = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.child == "victim")
        .count();

    let all = wait_until(Duration::from_secs(60), || {
        let lines = lines.lock().unwrap();
        let mut keys: Vec<&str> = lines.iter().map(|l| l.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.len() == OPERATIONS
    });
    let finished_after_kill = killed_at.elapsed();
    drop(survivor.stdin.take()); // EOF: the survivor stops gracefully
    let stopped = wait_until(Duration::from_secs(20), || {
        matches!(survivor.try_wait(), Ok(Some(_)))
    });
    if !stopped {
        let _ = survivor.kill();
    }
    let status = survivor.wait().unwrap();
    let lines = lines.lock().unwrap().clone();
    assert!(all, "operations lost: {lines:#?}");
    assert!(
        stopped && status.success(),
        "the survivor did not stop cleanly: {status:?}"
    );

    let requests = sim.requests();
    // Workers only resume tokens: every request that is not a GET is an initial one, or one
    // of the cancels asked for, each sent once.
    let mut not_get: Vec<String> = requests
        .iter()
        .filter(|r| r.method != Method::GET)
        .map(|r| format!("{} {}", r.method, r.uri.path()))
        .collect();
    assert_eq!(not_get.len(), OPERATIONS + cancels, "{not_get:#?}");
    let initial: Vec<String> = started
        .values()
        .map(|o| format!("{} {}", o.method, o.path))
        .collect();
    not_get.retain(|r| !initial.contains(r));
    let mut once = not_get.clone();
    once.sort_unstable();
    once.dedup();
    assert_eq!(once.len(), cancels, "cancels: {not_get:#?}");
    let mut deliveries: HashMap<&str, Vec<&Line>> = HashMap::new();
    for line in &lines {
        deliveries.entry(line.key.as_str()).or_default().push(line);
    }
    let mut duplicate_polls = 0;
    let mut wrong = Vec::new();
    for (key, op) in &started {
        // The initial request reached the server exactly once (Anthropic's collection path is
        // shared by its operations).
        let on_path = started.values().filter(|o| o.path == op.path).count();
        assert_eq!(sim.count(&op.method, &op.path), on_path, "{key}");
        let delivered = &deliveries[key.as_str()];
        if delivered.iter().any(|l| l.outcome != op.expected) {
            wrong.push(format!("{key}: {delivered:?}, expected {}", op.expected));
        }
        // Polls the server saw beyond those the delivering chain counted were sent twice.
        let seen = requests
            .iter()
            .filter(|r| r.method == Method::GET && r.uri.path() == op.monitor)
            .count();
        let counted = delivered.iter().map(|l| l.polls).max().unwrap() as usize;
        assert!(seen >= counted, "{key}: {seen} < {counted}");
        duplicate_polls += seen - counted;
    }
    assert!(wrong.is_empty(), "wrong outcomes: {wrong:#?}");
    let twice = deliveries.values().filter(|d| d.len() > 1).count();
    // Steps the killed worker may run at once (its fleets together): the bound on polls it can
    // leave half done.
    let concurrency: usize = Queue::ALL.into_iter().map(Queue::concurrency).sum();
    eprintln!(
        "killed the victim after {victims_outcomes} of its outcomes, holding {orphaned} steps; \
         all {OPERATIONS} done {finished_after_kill:?} later; {duplicate_polls} polls sent \
         twice, {twice} outcomes delivered twice"
    );
    // Only steps the victim was running can be polled again, once each, after the lease.
    assert!(
        duplicate_polls <= concurrency,
        "{duplicate_polls} duplicate polls"
    );
    assert!(twice <= concurrency, "{twice} outcomes delivered twice");
    // The victim's jobs came back within the lease: the rest took a few steps more, not minutes.
    assert!(
        finished_after_kill < Duration::from_secs(30),
        "{finished_after_kill:?}"
    );
}

/// A worker process of the test above: runs a worker of each fleet on `FLEET_CHILD_DB` until
/// its standard input closes, printing one line per outcome before acknowledging it.
#[test]
#[ignore = "a worker process that the crash test starts"]
fn child_worker() {
    let url = std::env::var("FLEET_CHILD_DB").expect("started by the crash test");
    let name = std::env::var("FLEET_CHILD_NAME").expect("started by the crash test");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Store::postgres(&url).await.unwrap();
        let handler = tower::service_fn(|delivery: Delivery<hyper::body::Incoming>| async move {
            let (outcome, polls) = match delivery.result() {
                Ok(response) => (
                    response.status().as_str().to_owned(),
                    response
                        .extensions()
                        .get::<OperationInfo>()
                        .map_or(0, |i| i.polls),
                ),
                Err(error) => (
                    format!("{:?}", error.kind()),
                    error.operation().map_or(0, |i| i.polls),
                ),
            };
            let mut out = std::io::stdout().lock();
            writeln!(out, "OUTCOME {} {outcome} {polls}", delivery.key())?;
            out.flush()?;
            Ok::<_, std::io::Error>(())
        });
        // A server that takes its time: each step holds its job for a while, as real ones do.
        let http = client();
        let slow = tower::service_fn(move |request: Request<Full<Bytes>>| {
            let http = http.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                http.request(request).await
            }
        });
        let (eof, closed) = tokio::sync::watch::channel(false);
        std::thread::spawn(move || {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
            let _ = eof.send(true);
        });
        let until_closed = |mut closed: tokio::sync::watch::Receiver<bool>| async move {
            let _ = closed.wait_for(|closed| *closed).await;
        };
        let worker = |queue: Queue| format!("{name}-{}", queue.name());
        let fleet = |queue: Queue| builder(store.clone(), queue);
        let mixed = fleet(Queue::Mixed)
            .build(
                LongRunningLayer::with_dialect(mixed()),
                slow.clone(),
                handler,
            )
            .unwrap();
        let durable = fleet(Queue::Durable)
            .build(
                LongRunningLayer::with_dialect(DurableFunctions::new()),
                slow.clone(),
                handler,
            )
            .unwrap();
        let reply = fleet(Queue::Reply)
            .build(
                LongRunningLayer::with_dialect(AsyncRequestReply::new()),
                slow.clone(),
                handler,
            )
            .unwrap();
        let odata = fleet(Queue::OData)
            .build(
                LongRunningLayer::with_dialect(ODataAsync::new()),
                slow,
                handler,
            )
            .unwrap();
        tokio::join!(
            mixed.run_worker(worker(Queue::Mixed), until_closed(closed.clone())),
            durable.run_worker(worker(Queue::Durable), until_closed(closed.clone())),
            reply.run_worker(worker(Queue::Reply), until_closed(closed.clone())),
            odata.run_worker(worker(Queue::OData), until_closed(closed)),
        );
    });
}
