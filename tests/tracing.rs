//! The `tracing` feature (on by default): an `lro.operation` span per operation and an `lro.poll`
//! span per poll at `INFO`, layers below nesting under them, a `lro.retry` warning per transient
//! retry, and no URL credential in anything recorded. The names are pinned against
//! docs/OBSERVABILITY.md.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use http::Method;
use support::{client, reply, request, stack, RawServer};

/// The layer, of any dialect, over the in-memory client.
fn stack_with<D: tower_lro::Dialect>(
    layer: LongRunningLayer<D>,
) -> tower_lro::LongRunning<support::HttpClient, D> {
    ServiceBuilder::new().layer(layer).service(client())
}
use tower::{ServiceBuilder, ServiceExt};
use tower_http::trace::{DefaultMakeSpan, TraceLayer};
use tower_lro::{LongRunningLayer, OperationInfo};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// One span as recorded: its name, parent's name, and every field given a value.
#[derive(Debug, Clone, Default)]
struct SpanRecord {
    name: String,
    parent: Option<String>,
    declared: BTreeSet<String>,
    values: BTreeMap<String, String>,
    closed: bool,
}

/// One event: its name (a `name:` given, or the callsite's), level, span and fields.
#[derive(Debug, Clone)]
struct EventRecord {
    name: String,
    level: Level,
    span: Option<String>,
    values: BTreeMap<String, String>,
}

type Spans = (Vec<SpanRecord>, BTreeMap<u64, usize>);

#[derive(Clone, Default)]
struct Recorder {
    /// Every span in the order they began, and where each open id's span is in it (ids are
    /// reused once a span closes).
    spans: Arc<Mutex<Spans>>,
    events: Arc<Mutex<Vec<EventRecord>>>,
}

struct Values<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Values<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|parent| parent.name().to_owned());
        let mut record = SpanRecord {
            name: attrs.metadata().name().to_owned(),
            parent,
            declared: attrs
                .metadata()
                .fields()
                .iter()
                .map(|f| f.name().to_owned())
                .collect(),
            values: BTreeMap::new(),
            closed: false,
        };
        attrs.record(&mut Values(&mut record.values));
        let mut spans = self.spans.lock().unwrap();
        let (all, open) = &mut *spans;
        open.insert(id.into_u64(), all.len());
        all.push(record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut spans = self.spans.lock().unwrap();
        let (all, open) = &mut *spans;
        if let Some(&at) = open.get(&id.into_u64()) {
            values.record(&mut Values(&mut all[at].values));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let mut spans = self.spans.lock().unwrap();
        let (all, open) = &mut *spans;
        if let Some(at) = open.remove(&id.into_u64()) {
            all[at].closed = true;
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut values = BTreeMap::new();
        event.record(&mut Values(&mut values));
        self.events.lock().unwrap().push(EventRecord {
            name: event.metadata().name().to_owned(),
            level: *event.metadata().level(),
            span: ctx.event_span(event).map(|s| s.name().to_owned()),
            values,
        });
    }
}

impl Recorder {
    /// A recorder of every span and event, the subscriber of this thread until the guard drops.
    fn installed() -> (Recorder, tracing::subscriber::DefaultGuard) {
        let recorder = Recorder::default();
        let subscriber = tracing_subscriber::registry().with(recorder.clone());
        (
            recorder.clone(),
            tracing::subscriber::set_default(subscriber),
        )
    }

    /// The spans not closed yet.
    fn open(&self) -> Vec<SpanRecord> {
        let spans = self.spans.lock().unwrap();
        spans.0.iter().filter(|s| !s.closed).cloned().collect()
    }

    fn spans(&self, name: &str) -> Vec<SpanRecord> {
        let spans = self.spans.lock().unwrap();
        spans.0.iter().filter(|s| s.name == name).cloned().collect()
    }
}

/// The script of one Azure operation: accepted with `Retry-After: 2`, running at 40 %, a 503
/// retried, then succeeded.
async fn azure_operation() -> RawServer {
    RawServer::start(|n, _| match n {
        0 => reply(
            202,
            &[
                ("azure-asyncoperation", "/operations/1?sig=s3cr3t-sig"),
                ("retry-after", "2"),
            ],
            "",
        ),
        1 => reply(
            200,
            &[("retry-after", "3")],
            r#"{"id":"op-1","status":"Running","percentComplete":40}"#,
        ),
        2 => reply(503, &[("retry-after", "1")], ""),
        _ => reply(200, &[], r#"{"status":"Succeeded"}"#),
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn an_operation_and_each_poll_are_info_spans_with_the_layers_below_nested_in_them() {
    let recorder = Recorder::default();
    let subscriber = tracing_subscriber::registry().with(
        recorder
            .clone()
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = azure_operation().await;
    // tower-http's span per request, at INFO, below the layer: as an application stacks it.
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .layer(TraceLayer::new_for_http().make_span_with(DefaultMakeSpan::new().level(Level::INFO)))
        .service(client());
    let response = service
        .oneshot(request(Method::POST, &server.url("/start"), ""))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    // Nothing the layer made outlives the operation.
    let open = recorder.open();
    assert!(open.is_empty(), "{open:#?}");

    let operations = recorder.spans("lro.operation");
    assert_eq!(operations.len(), 1, "{operations:#?}");
    let op = &operations[0].values;
    let expect = |values: &BTreeMap<String, String>, field: &str, value: &str| {
        assert_eq!(
            values.get(field).map(String::as_str),
            Some(value),
            "{field} in {values:#?}"
        );
    };
    expect(op, "lro.dialect", "azure");
    expect(op, "lro.resumed", "false");
    expect(op, "lro.monitor.kind", "azure-async-operation");
    expect(op, "http.request.method", "POST");
    expect(op, "server.address", "127.0.0.1");
    expect(op, "lro.operation.id", "op-1");
    expect(op, "lro.polls", "3");
    expect(op, "lro.outcome", "succeeded");
    expect(op, "http.response.status_code", "200");
    // The initial response's hint, on the operation: the wait before the first poll.
    expect(op, "lro.wait.hint", "2.0");
    expect(op, "lro.wait.delay", "2.0");
    expect(op, "lro.wait.clamped", "false");
    assert!(
        op["lro.monitor.url"].ends_with("/operations/1?sig=REDACTED"),
        "{op:#?}"
    );
    assert!(!op.contains_key("error.type") && !op.contains_key("otel.status_code"));

    let polls = recorder.spans("lro.poll");
    let seen: Vec<_> = polls
        .iter()
        .map(|p| {
            (
                p.values["lro.poll.attempt"].as_str(),
                p.values["lro.request"].as_str(),
                p.values["http.response.status_code"].as_str(),
                p.values["lro.poll.result"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("1", "poll", "200", "running"),
            ("2", "poll", "503", "transient"),
            ("3", "poll", "200", "done"),
        ],
        "{polls:#?}"
    );
    assert!(polls
        .iter()
        .all(|p| p.parent.as_deref() == Some("lro.operation")));
    expect(&polls[0].values, "lro.state", "Running");
    expect(&polls[0].values, "lro.percent_complete", "40.0");
    expect(&polls[0].values, "lro.wait.hint", "3.0");
    expect(&polls[0].values, "lro.wait.delay", "3.0");
    expect(&polls[1].values, "lro.wait.delay", "1.0");

    // tower-http's spans: the initial request's in the operation's, each poll's in its poll's.
    let requests = recorder.spans("request");
    let parents: Vec<_> = requests.iter().map(|r| r.parent.as_deref()).collect();
    assert_eq!(
        parents,
        [
            Some("lro.operation"),
            Some("lro.poll"),
            Some("lro.poll"),
            Some("lro.poll")
        ],
        "{requests:#?}"
    );

    let events = recorder.events.lock().unwrap().clone();
    let retries: Vec<_> = events.iter().filter(|e| e.name == "lro.retry").collect();
    assert_eq!(retries.len(), 1, "{events:#?}");
    assert_eq!(retries[0].level, Level::WARN);
    assert_eq!(retries[0].span.as_deref(), Some("lro.poll"));
    expect(&retries[0].values, "lro.retry.attempt", "1");
    assert!(
        retries[0].values["error"].contains("503"),
        "{:?}",
        retries[0]
    );
    let ended: Vec<_> = events
        .iter()
        .filter(|e| {
            e.values
                .get("message")
                .is_some_and(|m| m == "long-running operation ended")
        })
        .collect();
    assert_eq!(ended.len(), 1, "{events:#?}");
    assert_eq!(ended[0].level, Level::INFO);
    expect(&ended[0].values, "lro.outcome", "succeeded");
}

#[tokio::test(start_paused = true)]
async fn behind_an_or_the_dialect_recorded_is_the_one_that_followed() {
    use tower_lro::Dialect;
    let (recorder, _guard) = Recorder::installed();
    let server = RawServer::start(|n, _| match n {
        0 => reply(200, &[], r#"{"name":"operations/op-1","done":false}"#),
        _ => reply(
            200,
            &[],
            r#"{"name":"operations/op-1","done":true,"response":{}}"#,
        ),
    })
    .await;
    let dialect = tower_lro::Azure::new().or(tower_lro::Google::new());
    stack_with(LongRunningLayer::with_dialect(dialect))
        .oneshot(request(Method::POST, &server.url("/v1/things:create"), ""))
        .await
        .unwrap();
    let op = &recorder.spans("lro.operation")[0].values;
    assert_eq!(op["lro.dialect"], "google", "{op:#?}");
    assert_eq!(op["lro.monitor.kind"], "google-operation");
}

#[tokio::test(start_paused = true)]
async fn a_failed_operation_marks_its_span_as_an_error() {
    let (recorder, _guard) = Recorder::installed();
    let server = RawServer::start(|n, _| match n {
        0 => reply(202, &[("operation-location", "/operations/2")], ""),
        _ => reply(
            200,
            &[],
            r#"{"status":"Failed","error":{"code":"Quota","message":"no room"}}"#,
        ),
    })
    .await;
    let error = stack(LongRunningLayer::new())
        .oneshot(request(Method::PUT, &server.url("/things/1"), ""))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), tower_lro::ErrorKind::Failed);
    let op = &recorder.spans("lro.operation")[0].values;
    assert_eq!(op["lro.outcome"], "failed");
    assert_eq!(op["error.type"], "Failed");
    assert_eq!(op["otel.status_code"], "ERROR");
    let polls = recorder.spans("lro.poll");
    assert_eq!(polls.len(), 1);
    assert_eq!(polls[0].values["lro.poll.result"], "done");
}

#[tokio::test(start_paused = true)]
async fn a_response_that_is_not_an_operation_says_so_and_has_no_polls() {
    let (recorder, _guard) = Recorder::installed();
    let server = RawServer::start(|_, _| reply(200, &[], r#"{"name":"x"}"#)).await;
    stack(LongRunningLayer::new())
        .oneshot(request(Method::GET, &server.url("/things/1"), ""))
        .await
        .unwrap();
    let op = &recorder.spans("lro.operation")[0].values;
    assert_eq!(op["lro.outcome"], "not_long_running");
    assert!(!op.contains_key("lro.monitor.kind"));
    assert!(recorder.spans("lro.poll").is_empty());
    // An ordinary response is no news: nothing is logged at INFO about it.
    let events = recorder.events.lock().unwrap();
    assert!(events.iter().all(|e| e.level > Level::INFO), "{events:#?}");
}

#[tokio::test(start_paused = true)]
async fn resumed_stepped_and_canceled_operations_have_their_own_spans() {
    let (recorder, _guard) = Recorder::installed();
    let server = RawServer::start(|n, req| match (n, req.method.as_str()) {
        (0, _) => reply(202, &[("azure-asyncoperation", "/operations/3")], ""),
        (_, "POST") => reply(202, &[], ""),
        _ => reply(200, &[], r#"{"status":"Running"}"#),
    })
    .await;
    let layer = LongRunningLayer::new().max_polls(3);
    let mut req = request(Method::PUT, &server.url("/things/3"), "");
    req.extensions_mut().insert(tower_lro::Polling::AcceptOnly);
    req.extensions_mut().insert(tower_lro::CancelVia::post(
        server.url("/operations/3/cancel"),
    ));
    let accepted = stack(layer.clone()).oneshot(req).await.unwrap();
    let token = accepted
        .extensions()
        .get::<tower_lro::ResumeToken>()
        .unwrap()
        .clone();
    assert_eq!(
        recorder.spans("lro.operation")[0].values["lro.outcome"],
        "running"
    );

    let step = stack(layer.clone()).step(token.clone()).await.unwrap();
    assert!(matches!(step, tower_lro::Step::Running(_)));
    let steps = recorder.spans("lro.step");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].values["lro.outcome"], "running");
    assert_eq!(steps[0].values["lro.polls"], "1");

    let _ = stack(layer).cancel(token).await;
    let cancels = recorder.spans("lro.cancel");
    assert_eq!(cancels.len(), 1, "{:#?}", recorder.spans.lock().unwrap().0);
    assert_eq!(cancels[0].values["http.request.method"], "PUT");
    assert!(recorder.spans("lro.poll").iter().all(|p| p
        .parent
        .as_deref()
        .is_some_and(|name| name.starts_with("lro."))));
}

/// Everything the subscriber writes, for the test to read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Credentials a monitor URL may carry, each as a URL's query value.
const SECRETS: [(&str, &str); 4] = [
    ("sig", "s3cr3t-sas-sig"),
    ("code", "dur4ble-k3y"),
    ("X-Goog-Signature", "g00g-s1gnature"),
    ("token", "t0k3n-value"),
];

#[tokio::test(start_paused = true)]
async fn no_url_credential_appears_in_logs_errors_tokens_or_operation_info() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(Level::TRACE)
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let query: Vec<String> = SECRETS.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let monitor = format!("/operations/4?api-version=2024-01-01&{}", query.join("&"));
    let server = RawServer::start(move |n, _| match n {
        0 => reply(202, &[("azure-asyncoperation", monitor.as_str())], ""),
        1 => reply(503, &[], ""),
        _ => reply(
            200,
            &[],
            r#"{"status":"Failed","error":{"code":"Bad","message":"see https://x.example/why?token=t0k3n-value"}}"#,
        ),
    })
    .await;
    let uri = format!("{}?code=dur4ble-k3y", server.url("/start"));
    let error = stack(LongRunningLayer::new())
        .oneshot(request(Method::POST, &uri, ""))
        .await
        .unwrap_err();
    let info = error.operation().unwrap().clone();
    let mut shown = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    shown.push_str(&format!("{error:?}\n{error}\n{info:?}\n"));

    // A token of a still-running operation, and an error built from a refused token URL.
    let accepted = RawServer::start(|_, _| {
        reply(
            202,
            &[(
                "azure-asyncoperation",
                "https://elsewhere.example/op?sig=s3cr3t-sas-sig",
            )],
            "",
        )
    })
    .await;
    let refused = stack(LongRunningLayer::new())
        .oneshot(request(
            Method::POST,
            &accepted.url("/start?token=t0k3n-value"),
            "",
        ))
        .await
        .unwrap_err();
    shown.push_str(&format!("{refused:?}\n{refused}\n"));
    if let Some(token) = refused.resume_token() {
        shown.push_str(&format!("{token:?}\n"));
    }
    assert!(shown.contains("REDACTED"), "{shown}");
    assert!(shown.contains("api-version=2024-01-01"), "{shown}");
    for (_, secret) in SECRETS {
        assert!(!shown.contains(secret), "{secret} leaked:\n{shown}");
    }
    // The URLs themselves are whole: only what is shown of them is redacted.
    assert!(info.monitor_url.to_string().contains("s3cr3t-sas-sig"));
}

/// docs/OBSERVABILITY.md's table: each span and event name with its fields.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/OBSERVABILITY.md"
    ))
    .unwrap();
    let mut names = BTreeMap::new();
    for line in doc
        .lines()
        .filter(|l| l.starts_with("| span") || l.starts_with("| event"))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let ticked = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        };
        let name = ticked(cells[2]).remove(0);
        names.insert(name, ticked(cells[4]).into_iter().collect());
    }
    names
}

#[tokio::test(start_paused = true)]
async fn span_and_field_names_are_the_documented_ones() {
    let documented = documented();
    let (recorder, _guard) = Recorder::installed();
    let server = azure_operation().await;
    stack(LongRunningLayer::new())
        .oneshot(request(Method::POST, &server.url("/start"), ""))
        .await
        .unwrap();
    let spans = recorder.spans.lock().unwrap().0.clone();
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for span in &spans {
        seen.entry(span.name.clone())
            .or_default()
            .extend(span.declared.iter().cloned());
    }
    for name in ["lro.operation", "lro.poll"] {
        assert_eq!(seen.get(name), documented.get(name), "fields of {name}");
    }
    // The step and cancel spans have the operation's fields.
    for name in ["lro.step", "lro.cancel"] {
        assert_eq!(
            documented.get(name),
            documented.get("lro.operation"),
            "{name}"
        );
    }
    let events = recorder.events.lock().unwrap().clone();
    let retry = events.iter().find(|e| e.name == "lro.retry").unwrap();
    let fields: BTreeSet<String> = retry
        .values
        .keys()
        .filter(|k| *k != "message")
        .cloned()
        .collect();
    assert_eq!(Some(&fields), documented.get("lro.retry"));
    // The public constants say the same.
    use tower_lro::telemetry::*;
    for name in [
        SPAN_OPERATION,
        SPAN_POLL,
        SPAN_STEP,
        SPAN_CANCEL,
        EVENT_RETRY,
    ] {
        assert!(documented.contains_key(name), "{name} is not documented");
    }
    let _: OperationInfo;
}

#[tokio::test(start_paused = true)]
async fn every_span_ends_once_the_final_response_is_dropped() {
    let (recorder, _guard) = Recorder::installed();
    let server = RawServer::start(|n, _| match n {
        0 => reply(201, &[("azure-asyncoperation", "/operations/5")], ""),
        1 => reply(200, &[], r#"{"status":"Succeeded"}"#),
        _ => reply(200, &[], r#"{"name":"vm5"}"#),
    })
    .await;
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .layer(TraceLayer::new_for_http())
        .service(client());
    let response = service
        .oneshot(request(Method::PUT, &server.url("/vms/5"), ""))
        .await
        .unwrap();
    let polls = recorder.spans("lro.poll");
    assert_eq!(polls.last().unwrap().values["lro.request"], "final");
    assert_eq!(support::text(response).await, r#"{"name":"vm5"}"#);
    let open = recorder.open();
    assert!(open.is_empty(), "{open:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_token_refused_for_its_polls_reports_them() {
    let (recorder, _guard) = Recorder::installed();
    let server = RawServer::start(|n, _| match n {
        0 => reply(202, &[("azure-asyncoperation", "/operations/6")], ""),
        _ => reply(200, &[], r#"{"status":"Running"}"#),
    })
    .await;
    let error = stack(LongRunningLayer::new().max_polls(3))
        .oneshot(request(Method::POST, &server.url("/start"), ""))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), tower_lro::ErrorKind::TooManyPolls);
    let token = error.resume_token().unwrap().clone();
    let refused = stack(LongRunningLayer::new().max_polls(2))
        .resume(token)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), tower_lro::ErrorKind::TooManyPolls);
    let resumed = recorder.spans("lro.operation");
    let resumed = resumed.last().unwrap();
    assert_eq!(resumed.values["lro.resumed"], "true");
    assert_eq!(resumed.values["lro.polls"], "3", "{resumed:#?}");
    assert_eq!(resumed.values["lro.outcome"], "error");
}
