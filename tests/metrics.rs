//! The metrics of whole operations (feature `metrics`), read from a real recorder
//! (metrics-util's `DebuggingRecorder`, installed per test on its thread, so tests run in
//! parallel): every instrument's values and labels after an operation that succeeded, failed, was
//! canceled, timed out, ended in an error, or was dropped unfinished; and the names, units and
//! attributes of docs/OBSERVABILITY.md's metric rows, which are the ones recorded.
//!
//! The server is an in-memory `tower::service_fn` script of the Azure protocol on tokio's paused
//! clock (current-thread: the whole operation runs on the thread the recorder is installed on),
//! so durations and waits are exact.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use tower::{service_fn, BoxError, ServiceBuilder, ServiceExt};
use tower_lro::telemetry::{OPERATIONS, OPERATIONS_ACTIVE, OPERATION_DURATION, POLLS, WAIT};
use tower_lro::{ErrorKind, LongRunning, LongRunningLayer, Polling, ResumeToken, Step};

type Inner =
    tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<Full<Bytes>>, BoxError>;

/// The n-th answer of a script, whatever was asked.
type Answer = fn(usize) -> Result<Response<Full<Bytes>>, BoxError>;

fn service(layer: LongRunningLayer, answer: Answer) -> LongRunning<Inner> {
    let sent = Arc::new(AtomicUsize::new(0));
    let inner = service_fn(move |_: Request<Full<Bytes>>| {
        let n = sent.fetch_add(1, Ordering::SeqCst);
        async move { answer(n) }
    });
    ServiceBuilder::new()
        .layer(layer)
        .service(tower::util::BoxCloneSyncService::new(inner))
}

fn reply(
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Response<Full<Bytes>>, BoxError> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = StatusCode::from_u16(status)?;
    for (name, value) in headers {
        response.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes())?,
            value.parse()?,
        );
    }
    Ok(response)
}

/// The initial answer: 201 + Azure-AsyncOperation, first poll in 10 s.
fn started() -> Result<Response<Full<Bytes>>, BoxError> {
    reply(
        201,
        &[
            ("azure-asyncoperation", "/operations/1"),
            ("retry-after", "10"),
        ],
        "",
    )
}

fn status(status: &str) -> Result<Response<Full<Bytes>>, BoxError> {
    reply(
        200,
        &[("retry-after", "5")],
        &format!(r#"{{"status":"{status}"}}"#),
    )
}

fn put() -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(Bytes::from_static(b"{}")));
    *request.method_mut() = Method::PUT;
    *request.uri_mut() = http::Uri::from_static("https://management.example/deployments/d");
    request
}

/// (kind, name, labels as `key=value`)
type Key = (MetricKind, String, Vec<String>);

/// What the recorder holds, summed over its snapshots (a snapshot takes the values out).
#[derive(Debug, Default)]
struct Recorded {
    counters: BTreeMap<Key, u64>,
    gauges: BTreeMap<Key, f64>,
    histograms: BTreeMap<Key, Vec<f64>>,
}

impl Recorded {
    fn take(&mut self, snapshotter: &Snapshotter) {
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let labels = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let key = (kind, key.name().to_owned(), labels);
            match value {
                DebugValue::Counter(n) => *self.counters.entry(key).or_default() += n,
                DebugValue::Gauge(g) => *self.gauges.entry(key).or_default() += g.into_inner(),
                DebugValue::Histogram(h) => self
                    .histograms
                    .entry(key)
                    .or_default()
                    .extend(h.iter().map(|v| v.0)),
            }
        }
    }

    fn counter(&self, name: &str, labels: &[&str]) -> u64 {
        self.counters
            .get(&key(MetricKind::Counter, name, labels))
            .copied()
            .unwrap_or(0)
    }

    fn gauge(&self, name: &str, labels: &[&str]) -> Option<f64> {
        self.gauges
            .get(&key(MetricKind::Gauge, name, labels))
            .copied()
    }

    fn histogram(&self, name: &str, labels: &[&str]) -> Vec<f64> {
        self.histograms
            .get(&key(MetricKind::Histogram, name, labels))
            .cloned()
            .unwrap_or_default()
    }

    /// Every label value of every instrument: none may be a URL or an id.
    fn label_values(&self) -> Vec<String> {
        let keys = self
            .counters
            .keys()
            .chain(self.gauges.keys())
            .chain(self.histograms.keys());
        keys.flat_map(|(_, _, labels)| labels.iter().cloned())
            .collect()
    }
}

fn key(kind: MetricKind, name: &str, labels: &[&str]) -> Key {
    (
        kind,
        name.to_owned(),
        labels.iter().map(|l| l.to_string()).collect(),
    )
}

const AZURE: [&str; 2] = [
    "lro.dialect=azure",
    "lro.monitor.kind=azure-async-operation",
];

fn with(extra: &str) -> Vec<&str> {
    let mut labels = AZURE.to_vec();
    labels.push(extra);
    labels
}

/// Runs `answer`'s operation through a layer with a recorder of its own; what it recorded and
/// how the operation ended.
async fn run(layer: LongRunningLayer, answer: Answer) -> (Recorded, Result<StatusCode, ErrorKind>) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let result = service(layer, answer).oneshot(put()).await;
    let mut recorded = Recorded::default();
    recorded.take(&snapshotter);
    (recorded, result.map(|r| r.status()).map_err(|e| e.kind()))
}

#[tokio::test(start_paused = true)]
async fn a_succeeded_operation_records_every_instrument() {
    let (got, result) = run(LongRunningLayer::new(), |n| match n {
        0 => started(),
        1 => status("InProgress"),
        2 => reply(503, &[("retry-after", "5")], ""),
        3 => status("Succeeded"),
        _ => reply(200, &[], r#"{"name":"d"}"#),
    })
    .await;
    assert_eq!(result, Ok(StatusCode::OK));

    assert_eq!(got.gauge(OPERATIONS_ACTIVE, &AZURE), Some(0.0), "{got:#?}");
    assert_eq!(got.histogram(WAIT, &AZURE), [10.0, 5.0, 5.0], "{got:#?}");
    assert_eq!(
        got.counter(POLLS, &with("lro.poll.result=running")),
        1,
        "{got:#?}"
    );
    assert_eq!(
        got.counter(POLLS, &with("lro.poll.result=transient")),
        1,
        "{got:#?}"
    );
    assert_eq!(
        got.counter(POLLS, &with("lro.poll.result=done")),
        1,
        "{got:#?}"
    );
    assert_eq!(
        got.counter(POLLS, &with("lro.poll.result=unexpected")),
        0,
        "{got:#?}"
    );
    let succeeded = with("lro.outcome=succeeded");
    assert_eq!(got.counter(OPERATIONS, &succeeded), 1, "{got:#?}");
    assert_eq!(
        got.histogram(OPERATION_DURATION, &succeeded),
        [20.0],
        "{got:#?}"
    );
    for value in got.label_values() {
        assert!(!value.contains('/'), "a label holds a path: {value}");
    }
}

/// An operation that ends with `outcome`: the answer to every poll, how it ends, its duration
/// and its polls by result.
struct Case {
    outcome: &'static str,
    answer: Answer,
    ended: ErrorKind,
    duration: f64,
    polls: (&'static str, u64),
}

#[tokio::test(start_paused = true)]
async fn each_outcome_is_counted_once_with_its_duration() {
    let cases = [
        Case {
            outcome: "failed",
            answer: |n| if n == 0 { started() } else { status("Failed") },
            ended: ErrorKind::Failed,
            duration: 10.0,
            polls: ("done", 1),
        },
        Case {
            outcome: "canceled",
            answer: |n| {
                if n == 0 {
                    started()
                } else {
                    status("Canceled")
                }
            },
            ended: ErrorKind::Canceled,
            duration: 10.0,
            polls: ("done", 1),
        },
        // Polled at 10, 15, 20, 25 and 30 s; the deadline passes during the next wait.
        Case {
            outcome: "timed_out",
            answer: |n| {
                if n == 0 {
                    started()
                } else {
                    status("InProgress")
                }
            },
            ended: ErrorKind::TimedOut,
            duration: 30.0,
            polls: ("running", 5),
        },
        Case {
            outcome: "error",
            answer: |n| {
                if n == 0 {
                    started()
                } else {
                    reply(404, &[], "")
                }
            },
            ended: ErrorKind::UnexpectedStatus,
            duration: 10.0,
            polls: ("unexpected", 1),
        },
    ];
    for case in cases {
        let layer = LongRunningLayer::new().timeout(Duration::from_secs(30));
        let (got, result) = run(layer, case.answer).await;
        let outcome = case.outcome;
        assert_eq!(result, Err(case.ended), "{outcome}");
        let ended = format!("lro.outcome={outcome}");
        let ended = with(&ended);
        assert_eq!(got.counter(OPERATIONS, &ended), 1, "{outcome}: {got:#?}");
        let outcomes = got.counters.keys().filter(|k| k.1 == OPERATIONS).count();
        assert_eq!(outcomes, 1, "{outcome}: {got:#?}");
        let duration = got.histogram(OPERATION_DURATION, &ended);
        assert_eq!(duration, [case.duration], "{outcome}: {got:#?}");
        let (result, count) = case.polls;
        let polled = format!("lro.poll.result={result}");
        assert_eq!(
            got.counter(POLLS, &with(&polled)),
            count,
            "{outcome}: {got:#?}"
        );
        let polls: u64 = (got.counters.iter())
            .filter(|(k, _)| k.1 == POLLS)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(polls, count, "{outcome}: {got:#?}");
        let active = got.gauge(OPERATIONS_ACTIVE, &AZURE);
        assert_eq!(active, Some(0.0), "{outcome}: {got:#?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_dropped_operation_is_active_until_dropped_and_has_no_outcome() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let service = service(LongRunningLayer::new(), |n| match n {
        0 => started(),
        _ => status("InProgress"),
    });
    let mut operation = Box::pin(service.oneshot(put()));
    // Waiting for its first poll when the caller gives up.
    let gave_up = tokio::time::timeout(Duration::from_secs(3), &mut operation).await;
    assert!(gave_up.is_err());
    let mut got = Recorded::default();
    got.take(&snapshotter);
    assert_eq!(got.gauge(OPERATIONS_ACTIVE, &AZURE), Some(1.0), "{got:#?}");

    drop(operation);
    got.take(&snapshotter);
    assert_eq!(got.gauge(OPERATIONS_ACTIVE, &AZURE), Some(0.0), "{got:#?}");
    assert!(got.counters.keys().all(|k| k.1 != OPERATIONS), "{got:#?}");
    assert!(got
        .histogram(OPERATION_DURATION, &with("lro.outcome=error"))
        .is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_request_that_is_no_operation_records_nothing() {
    let (got, result) = run(LongRunningLayer::new(), |_| reply(200, &[], "{}")).await;
    assert_eq!(result, Ok(StatusCode::OK));
    assert!(
        got.counters.is_empty() && got.gauges.is_empty() && got.histograms.is_empty(),
        "{got:#?}"
    );
}

#[tokio::test(start_paused = true)]
async fn steps_count_one_operation_whose_duration_spans_them() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let service = service(LongRunningLayer::new(), |n| match n {
        0 => started(),
        1 => status("InProgress"),
        2 => status("Succeeded"),
        _ => reply(200, &[], r#"{"name":"d"}"#),
    });
    let mut accept = put();
    accept.extensions_mut().insert(Polling::AcceptOnly);
    let accepted = service.clone().oneshot(accept).await;
    let token = accepted
        .ok()
        .and_then(|r| r.extensions().get::<ResumeToken>().cloned())
        .expect("an accepted operation carries a token");
    tokio::time::sleep(Duration::from_secs(10)).await;

    let Ok(Step::Running(next)) = service.step::<Full<Bytes>, _>(token).await else {
        panic!("the first step is still running");
    };
    let mut got = Recorded::default();
    got.take(&snapshotter);
    // A step that stops at a wait has no outcome, and is no longer active.
    assert!(got.counters.keys().all(|k| k.1 != OPERATIONS), "{got:#?}");
    assert_eq!(got.gauge(OPERATIONS_ACTIVE, &AZURE), Some(0.0), "{got:#?}");

    tokio::time::sleep(next.poll_in()).await;
    let done = service.step::<Full<Bytes>, _>(next.token().clone()).await;
    assert!(matches!(done, Ok(Step::Done(_))));
    got.take(&snapshotter);
    let succeeded = with("lro.outcome=succeeded");
    assert_eq!(got.counter(OPERATIONS, &succeeded), 1, "{got:#?}");
    // As the tokens count it: the first step's token carries the 5 s wait before the second
    // (the second step itself takes no time; the accepted token carried nothing).
    assert_eq!(
        got.histogram(OPERATION_DURATION, &succeeded),
        [5.0],
        "{got:#?}"
    );
    assert_eq!(
        got.counter(POLLS, &with("lro.poll.result=running")),
        1,
        "{got:#?}"
    );
    assert_eq!(
        got.counter(POLLS, &with("lro.poll.result=done")),
        1,
        "{got:#?}"
    );
    assert_eq!(got.gauge(OPERATIONS_ACTIVE, &AZURE), Some(0.0), "{got:#?}");
}

/// docs/OBSERVABILITY.md's metric rows: (kind, name) → (unit, attribute keys).
fn documented() -> BTreeMap<(MetricKind, String), (String, Vec<String>)> {
    let doc = include_str!("../docs/OBSERVABILITY.md");
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    let mut rows = BTreeMap::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let kind = match cells.get(1) {
            Some(&"counter") => MetricKind::Counter,
            Some(&"up-down counter") => MetricKind::Gauge,
            Some(&"histogram") => MetricKind::Histogram,
            _ => continue,
        };
        let name = ticked(cells[2]).remove(0);
        let unit = ticked(cells[3]).remove(0);
        rows.insert((kind, name), (unit, ticked(cells[4])));
    }
    rows
}

#[tokio::test(start_paused = true)]
async fn metric_names_units_and_attributes_are_the_documented_ones() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    tower_lro::telemetry::describe_metrics();
    let result = service(LongRunningLayer::new(), |n| match n {
        0 => started(),
        1 => status("InProgress"),
        _ => status("Succeeded"),
    })
    .oneshot(put())
    .await;
    assert!(result.is_ok());

    let mut seen = BTreeMap::new();
    for (key, unit, _, _) in snapshotter.snapshot().into_vec() {
        let (kind, key) = key.into_parts();
        let unit = match unit {
            Some(metrics::Unit::Seconds) => "s",
            Some(metrics::Unit::Count) => "count",
            _ => "none",
        };
        let attributes: Vec<String> = key.labels().map(|l| l.key().to_owned()).collect();
        seen.insert((kind, key.name().to_owned()), (unit, attributes));
    }
    let documented = documented();
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        documented.keys().collect::<Vec<_>>()
    );
    for (metric, (unit, attributes)) in &documented {
        let (seen_unit, seen_attributes) = &seen[metric];
        assert_eq!(seen_attributes, attributes, "{metric:?}");
        // Seconds are `s`; a count is `{what}`, as OpenTelemetry writes it.
        let counted = unit.starts_with('{') && unit.ends_with('}');
        let want = if counted { "count" } else { unit.as_str() };
        assert_eq!(*seen_unit, want, "{metric:?}");
    }
    // The public constants name the same instruments.
    let names: Vec<&str> = documented.keys().map(|(_, name)| name.as_str()).collect();
    for name in [
        OPERATIONS_ACTIVE,
        OPERATION_DURATION,
        OPERATIONS,
        POLLS,
        WAIT,
    ] {
        assert!(names.contains(&name), "{name} is not documented");
    }
}
