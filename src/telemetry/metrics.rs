//! Metrics of operations (feature `metrics`), through the [`metrics`] facade: the application's
//! recorder decides where they go; while none is installed, each call finds the no-op recorder
//! and allocates nothing.
//!
//! Labels are low-cardinality only: the dialect's [`name`](crate::Dialect::name), the monitor's
//! [`kind`](crate::Dialect::kind), and the outcome or poll result. Never a URL or an id.

use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Unit};

use super::{Outcome, PollResult};

/// Up-down counter (a gauge moved by ±1): operations being followed now, by `lro.dialect` and
/// `lro.monitor.kind`. One that stays up is a stuck operation.
pub const OPERATIONS_ACTIVE: &str = "lro.client.operations.active";
/// Histogram, seconds: how long operations took from the original request to their end
/// (earlier steps' time included), by `lro.dialect`, `lro.monitor.kind` and `lro.outcome`.
/// Its recommended buckets: [`DURATION_BUCKETS`].
pub const OPERATION_DURATION: &str = "lro.client.operation.duration";
/// Counter: polls answered, by `lro.dialect`, `lro.monitor.kind` and `lro.poll.result`
/// (`running`, `done`, `transient`, `unexpected`).
pub const POLLS: &str = "lro.client.polls";
/// Counter: operations ended, by `lro.dialect`, `lro.monitor.kind` and `lro.outcome`
/// (`succeeded`, `failed`, `canceled`, `timed_out`, `error`).
pub const OPERATIONS: &str = "lro.client.operations";
/// Histogram, seconds: the delay applied before each poll, by `lro.dialect` and
/// `lro.monitor.kind`. Its recommended buckets: [`WAIT_BUCKETS`].
pub const WAIT: &str = "lro.client.wait";

/// Recommended bucket boundaries (seconds) for [`OPERATION_DURATION`]: 1 s to 24 h.
///
/// The `metrics` facade leaves buckets to the exporter, and HTTP's usual defaults stop at 10 s,
/// where every long-running operation would land in the last bucket. With
/// metrics-exporter-prometheus:
///
/// ```
/// use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
/// use tower_lro::telemetry::{DURATION_BUCKETS, OPERATION_DURATION, WAIT, WAIT_BUCKETS};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let prometheus = PrometheusBuilder::new()
///     .set_buckets_for_metric(Matcher::Full(OPERATION_DURATION.into()), DURATION_BUCKETS)?
///     .set_buckets_for_metric(Matcher::Full(WAIT.into()), WAIT_BUCKETS)?
///     .install_recorder()?;
/// tower_lro::telemetry::describe_metrics();
///
/// // … operations run; then `/metrics` serves `prometheus.render()`, where
/// // `lro_client_operation_duration_bucket{…,le="86400"}` counts the operations of up to 24 h.
/// # metrics::histogram!(OPERATION_DURATION).record(90.0);
/// # assert!(prometheus.render().contains(r#"lro_client_operation_duration_bucket{le="86400"} 1"#));
/// # Ok(()) }
/// ```
pub const DURATION_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0,
    43200.0, 86400.0,
];

/// Recommended bucket boundaries (seconds) for [`WAIT`]: 100 ms to 10 min, around the layer's
/// default bounds of a wait (1 s at first, 60 s at most). Passed to an exporter as
/// [`DURATION_BUCKETS`] shows.
pub const WAIT_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// Describes the instruments (unit and help text) to the recorder installed now. Optional:
/// without it they are recorded all the same; call it once after installing the recorder so that
/// an exporter such as Prometheus prints their `# HELP` lines.
///
/// ```
/// let recorder = metrics_util::debugging::DebuggingRecorder::new();
/// metrics::with_local_recorder(&recorder, tower_lro::telemetry::describe_metrics);
/// ```
pub fn describe_metrics() {
    metrics::describe_gauge!(
        OPERATIONS_ACTIVE,
        Unit::Count,
        "Long-running operations being followed now"
    );
    metrics::describe_histogram!(
        OPERATION_DURATION,
        Unit::Seconds,
        "Duration of long-running operations, from the original request to their end"
    );
    metrics::describe_counter!(
        POLLS,
        Unit::Count,
        "Polls of long-running operations, by result"
    );
    metrics::describe_counter!(
        OPERATIONS,
        Unit::Count,
        "Long-running operations ended, by outcome"
    );
    metrics::describe_histogram!(
        WAIT,
        Unit::Seconds,
        "Delay applied before each poll of a long-running operation"
    );
}

const DIALECT: &str = "lro.dialect";
const KIND: &str = "lro.monitor.kind";
const OUTCOME: &str = "lro.outcome";
const RESULT: &str = "lro.poll.result";

const RESULTS: [&str; 4] = ["running", "done", "transient", "unexpected"];
const OUTCOMES: [&str; 5] = ["succeeded", "failed", "canceled", "timed_out", "error"];

/// The most key sets kept: past them, further dialect and kind pairs share [`OTHER`]. A program
/// has a handful; the bound keeps a dialect that makes up names from growing the labels'
/// cardinality and the memory they take without end.
const MAX_LABEL_SETS: usize = 64;

static OTHER_LABELS: Labels = Labels::new("other", "other");
/// The pairs past [`MAX_LABEL_SETS`].
static OTHER: Keys = Keys::new(&OTHER_LABELS);

/// The key sets made so far, each kept for the program's life.
static KEPT: RwLock<Vec<&'static Keys>> = RwLock::new(Vec::new());

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

/// Every label combination one dialect and monitor kind needs. A [`Key`] borrows `'static`
/// labels without allocating, so each set is made once (per program) and never freed.
struct Labels {
    dialect: &'static str,
    kind: &'static str,
    operation: [Label; 2],
    polls: [[Label; 3]; 4],
    outcomes: [[Label; 3]; 5],
}

impl Labels {
    const fn new(dialect: &'static str, kind: &'static str) -> Labels {
        Labels {
            dialect,
            kind,
            operation: [
                Label::from_static_parts(DIALECT, dialect),
                Label::from_static_parts(KIND, kind),
            ],
            polls: [
                three(dialect, kind, RESULT, RESULTS[0]),
                three(dialect, kind, RESULT, RESULTS[1]),
                three(dialect, kind, RESULT, RESULTS[2]),
                three(dialect, kind, RESULT, RESULTS[3]),
            ],
            outcomes: [
                three(dialect, kind, OUTCOME, OUTCOMES[0]),
                three(dialect, kind, OUTCOME, OUTCOMES[1]),
                three(dialect, kind, OUTCOME, OUTCOMES[2]),
                three(dialect, kind, OUTCOME, OUTCOMES[3]),
                three(dialect, kind, OUTCOME, OUTCOMES[4]),
            ],
        }
    }
}

/// The key of every instrument and label combination of one dialect and monitor kind, hashed
/// once: with no recorder installed, a call then costs the recorder's look-up and nothing else.
struct Keys {
    labels: &'static Labels,
    active: Key,
    wait: Key,
    polls: [Key; 4],
    operations: [Key; 5],
    durations: [Key; 5],
}

impl Keys {
    const fn new(labels: &'static Labels) -> Keys {
        let (p, o) = (&labels.polls, &labels.outcomes);
        Keys {
            labels,
            active: Key::from_static_parts(OPERATIONS_ACTIVE, &labels.operation),
            wait: Key::from_static_parts(WAIT, &labels.operation),
            polls: [
                Key::from_static_parts(POLLS, &p[0]),
                Key::from_static_parts(POLLS, &p[1]),
                Key::from_static_parts(POLLS, &p[2]),
                Key::from_static_parts(POLLS, &p[3]),
            ],
            operations: [
                Key::from_static_parts(OPERATIONS, &o[0]),
                Key::from_static_parts(OPERATIONS, &o[1]),
                Key::from_static_parts(OPERATIONS, &o[2]),
                Key::from_static_parts(OPERATIONS, &o[3]),
                Key::from_static_parts(OPERATIONS, &o[4]),
            ],
            durations: [
                Key::from_static_parts(OPERATION_DURATION, &o[0]),
                Key::from_static_parts(OPERATION_DURATION, &o[1]),
                Key::from_static_parts(OPERATION_DURATION, &o[2]),
                Key::from_static_parts(OPERATION_DURATION, &o[3]),
                Key::from_static_parts(OPERATION_DURATION, &o[4]),
            ],
        }
    }

    /// The set of `dialect` and `kind`: made on their first operation, found after.
    fn of(dialect: &'static str, kind: &'static str) -> &'static Keys {
        Keys::kept_in(&KEPT, dialect, kind)
    }

    fn kept_in(
        kept: &RwLock<Vec<&'static Keys>>,
        dialect: &'static str,
        kind: &'static str,
    ) -> &'static Keys {
        let this = |set: &&&'static Keys| set.labels.dialect == dialect && set.labels.kind == kind;
        // Nothing panics while the lock is held: a poisoned list is still whole.
        if let Some(set) = kept
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(this)
        {
            return set;
        }
        let mut kept = kept.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(set) = kept.iter().find(this) {
            return set;
        }
        if kept.len() >= MAX_LABEL_SETS {
            return &OTHER;
        }
        let labels: &'static Labels = Box::leak(Box::new(Labels::new(dialect, kind)));
        let set: &'static Keys = Box::leak(Box::new(Keys::new(labels)));
        kept.push(set);
        set
    }
}

const fn three(
    dialect: &'static str,
    kind: &'static str,
    key: &'static str,
    value: &'static str,
) -> [Label; 3] {
    [
        Label::from_static_parts(DIALECT, dialect),
        Label::from_static_parts(KIND, kind),
        Label::from_static_parts(key, value),
    ]
}

fn counter(key: &Key) -> Counter {
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
}

fn histogram(key: &Key) -> Histogram {
    metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA))
}

fn gauge(key: &Key) -> Gauge {
    metrics::with_recorder(|recorder| recorder.register_gauge(key, &METADATA))
}

/// The metrics of one operation from the moment it is followed: counted in
/// [`OPERATIONS_ACTIVE`] until it ends or is dropped, whichever comes first.
pub(crate) struct OperationMetrics {
    keys: &'static Keys,
    /// Held while the operation counts as active: the recorder it was counted in is the one it
    /// leaves, on whatever thread the future ends.
    active: Option<Gauge>,
    /// The handles of the instruments recorded more than once, registered on first use: a
    /// later poll or wait costs an increment, not a look-up of the recorder.
    polls: [Option<Counter>; 4],
    wait: Option<Histogram>,
}

impl OperationMetrics {
    /// An operation of `dialect` (its name) with a monitor of `kind` is followed from now.
    pub(crate) fn followed(dialect: &'static str, kind: &'static str) -> OperationMetrics {
        let keys = Keys::of(dialect, kind);
        let active = gauge(&keys.active);
        active.increment(1.0);
        OperationMetrics {
            keys,
            active: Some(active),
            polls: [None, None, None, None],
            wait: None,
        }
    }

    /// A poll was answered.
    pub(crate) fn poll(&mut self, result: PollResult) {
        let i = match result {
            PollResult::Running => 0,
            PollResult::Done => 1,
            PollResult::Transient => 2,
            PollResult::Unexpected => 3,
        };
        let keys = self.keys;
        self.polls[i]
            .get_or_insert_with(|| counter(&keys.polls[i]))
            .increment(1);
    }

    /// The next poll is sent after `delay`.
    pub(crate) fn wait(&mut self, delay: Duration) {
        let keys = self.keys;
        self.wait
            .get_or_insert_with(|| histogram(&keys.wait))
            .record(delay.as_secs_f64());
    }

    /// The future ended with `outcome`, `duration` after the operation's original request. An
    /// operation that runs on (a step that stopped at a wait, one handed back) is no longer
    /// active here but has no outcome yet. Counted once: a second call records nothing.
    pub(crate) fn ended(&mut self, outcome: Outcome, duration: Duration) {
        let Some(active) = self.active.take() else {
            return;
        };
        active.decrement(1.0);
        let i = match outcome {
            Outcome::Succeeded => 0,
            Outcome::Failed => 1,
            Outcome::Canceled => 2,
            Outcome::TimedOut => 3,
            Outcome::Error => 4,
            Outcome::Running | Outcome::NotLongRunning => return,
        };
        counter(&self.keys.operations[i]).increment(1);
        histogram(&self.keys.durations[i]).record(duration.as_secs_f64());
    }
}

impl Drop for OperationMetrics {
    /// Dropped before it ended (a dropped future, a step that stopped at a wait): no longer
    /// active, and no outcome.
    fn drop(&mut self) {
        if let Some(active) = self.active.take() {
            active.decrement(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;

    use super::*;

    /// What a recorder holds: (kind, name, labels) → value, histograms as their samples.
    type Recorded = BTreeMap<(MetricKind, String, Vec<(String, String)>), Value>;

    #[derive(Debug, PartialEq)]
    enum Value {
        Counter(u64),
        Gauge(f64),
        Histogram(Vec<f64>),
    }

    /// Runs `f` with a recorder of its own (so tests run in parallel) and returns what it
    /// recorded while what `f` returned is still alive.
    fn recorded<T>(f: impl FnOnce() -> T) -> Recorded {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let _alive = metrics::with_local_recorder(&recorder, f);
        let mut out = Recorded::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let (kind, key) = key.into_parts();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let value = match value {
                DebugValue::Counter(n) => Value::Counter(n),
                DebugValue::Gauge(g) => Value::Gauge(g.into_inner()),
                DebugValue::Histogram(h) => Value::Histogram(h.iter().map(|v| v.0).collect()),
            };
            out.insert((kind, key.name().to_owned(), labels), value);
        }
        out
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const D: (&str, &str) = ("lro.dialect", "azure");
    const K: (&str, &str) = ("lro.monitor.kind", "azure-asyncoperation");

    #[test]
    fn an_operation_records_every_instrument_with_its_labels() {
        let got = recorded(|| {
            let mut op = OperationMetrics::followed("azure", "azure-asyncoperation");
            op.wait(Duration::from_millis(1500));
            op.poll(PollResult::Transient);
            op.wait(Duration::from_secs(3));
            op.poll(PollResult::Running);
            op.wait(Duration::from_secs(3));
            op.poll(PollResult::Running);
            op.poll(PollResult::Done);
            op.ended(Outcome::Succeeded, Duration::from_secs(95));
        });
        let outcome = labels(&[D, K, ("lro.outcome", "succeeded")]);
        let poll = |r: PollResult| labels(&[D, K, ("lro.poll.result", r.as_str())]);
        let want: Recorded = [
            (
                (MetricKind::Gauge, OPERATIONS_ACTIVE, labels(&[D, K])),
                Value::Gauge(0.0),
            ),
            (
                (MetricKind::Histogram, WAIT, labels(&[D, K])),
                Value::Histogram(vec![1.5, 3.0, 3.0]),
            ),
            (
                (MetricKind::Counter, POLLS, poll(PollResult::Transient)),
                Value::Counter(1),
            ),
            (
                (MetricKind::Counter, POLLS, poll(PollResult::Running)),
                Value::Counter(2),
            ),
            (
                (MetricKind::Counter, POLLS, poll(PollResult::Done)),
                Value::Counter(1),
            ),
            (
                (MetricKind::Counter, OPERATIONS, outcome.clone()),
                Value::Counter(1),
            ),
            (
                (MetricKind::Histogram, OPERATION_DURATION, outcome),
                Value::Histogram(vec![95.0]),
            ),
        ]
        .into_iter()
        .map(|((kind, name, labels), value)| ((kind, name.to_owned(), labels), value))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn each_outcome_has_its_label() {
        let outcomes = [
            (Outcome::Succeeded, "succeeded"),
            (Outcome::Failed, "failed"),
            (Outcome::Canceled, "canceled"),
            (Outcome::TimedOut, "timed_out"),
            (Outcome::Error, "error"),
        ];
        for (outcome, label) in outcomes {
            // The spans' `lro.outcome` and the metrics' are the same words.
            assert_eq!(outcome.as_str(), label);
            let got = recorded(|| {
                OperationMetrics::followed("google", "google")
                    .ended(outcome, Duration::from_secs(2))
            });
            let key = (
                MetricKind::Counter,
                OPERATIONS.to_owned(),
                labels(&[
                    ("lro.dialect", "google"),
                    ("lro.monitor.kind", "google"),
                    ("lro.outcome", label),
                ]),
            );
            assert_eq!(got.get(&key), Some(&Value::Counter(1)), "{label}: {got:?}");
        }
    }

    #[test]
    fn an_active_operation_counts_until_it_ends_or_is_dropped() {
        let got = recorded(|| {
            let running = OperationMetrics::followed("azure", "location");
            let mut ended = OperationMetrics::followed("azure", "location");
            drop(OperationMetrics::followed("azure", "location"));
            // A step that stopped at a wait: no longer active, no outcome.
            OperationMetrics::followed("azure", "location").ended(Outcome::Running, Duration::ZERO);
            ended.ended(Outcome::Failed, Duration::from_secs(1));
            // Counted once: the drop after the end leaves the gauge alone.
            ended.ended(Outcome::Failed, Duration::from_secs(1));
            drop(ended);
            running
        });
        let active = (
            MetricKind::Gauge,
            OPERATIONS_ACTIVE.to_owned(),
            labels(&[("lro.dialect", "azure"), ("lro.monitor.kind", "location")]),
        );
        assert_eq!(got.get(&active), Some(&Value::Gauge(1.0)));
        let failed = (
            MetricKind::Counter,
            OPERATIONS.to_owned(),
            labels(&[
                ("lro.dialect", "azure"),
                ("lro.monitor.kind", "location"),
                ("lro.outcome", "failed"),
            ]),
        );
        assert_eq!(got.get(&failed), Some(&Value::Counter(1)));
    }

    #[test]
    fn label_sets_are_kept_once_per_pair() {
        let a = Keys::of("test-once", "a");
        assert!(std::ptr::eq(a, Keys::of("test-once", "a")));
        assert!(!std::ptr::eq(a, Keys::of("test-once", "b")));
        assert_eq!(a.labels.operation[1].value(), "a");
        let labels: Vec<_> = a.durations[3].labels().map(|l| l.value()).collect();
        assert_eq!(labels, ["test-once", "a", "timed_out"]);
        assert_eq!(a.durations[3].name(), OPERATION_DURATION);
    }

    #[test]
    fn past_the_bound_pairs_share_the_other_labels() {
        // Names made up at run time, as a misbehaving dialect might (leaked, as `'static`
        // demands), in a list of this test's own: the kept sets stop at the bound, and the rest
        // are `other`.
        let kept = RwLock::new(Vec::new());
        let mut last = None;
        for i in 0..=MAX_LABEL_SETS {
            let kind: &'static str = Box::leak(format!("made-up-{i}").into_boxed_str());
            last = Some(Keys::kept_in(&kept, "test-bound", kind));
        }
        assert!(last.is_some_and(|set| std::ptr::eq(set, &OTHER)));
        assert_eq!(kept.read().map(|k| k.len()).ok(), Some(MAX_LABEL_SETS));
        assert_eq!(OTHER.labels.outcomes[3][2].value(), "timed_out");
    }

    /// Allocations are counted on a thread only while it is [`counting`]: other tests of this
    /// binary, on other threads, are not.
    struct Counting;

    static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

    thread_local! {
        static COUNTING: Cell<bool> = const { Cell::new(false) };
    }

    // SAFETY: every call is forwarded unchanged to the system allocator; the counter is an atomic
    // and the thread-local flag is const-initialised, so nothing here allocates or unwinds.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if COUNTING.try_with(Cell::get).unwrap_or(false) {
                ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            }
            // SAFETY: forwarded with the caller's layout.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System.alloc` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Allocations on this thread while `f` runs.
    fn counting(f: impl FnOnce()) -> usize {
        COUNTING.with(|c| c.set(true));
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        f();
        let after = ALLOCATIONS.load(Ordering::Relaxed);
        COUNTING.with(|c| c.set(false));
        after - before
    }

    #[test]
    fn without_a_recorder_an_operation_allocates_nothing() {
        let operation = || {
            let mut op = OperationMetrics::followed("test-cost", "location");
            op.wait(Duration::from_secs(1));
            op.poll(PollResult::Running);
            op.poll(PollResult::Done);
            op.ended(Outcome::Succeeded, Duration::from_secs(2));
            drop(OperationMetrics::followed("test-cost", "location"));
        };
        // The first operation of a dialect and kind keeps their labels, once per program.
        operation();
        assert_eq!(counting(operation), 0);
    }
}
