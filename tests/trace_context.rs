//! Traces across processes (feature `opentelemetry`): an operation started in one process and
//! stepped, resumed or canceled in others. Each process here is a tracer provider of its own
//! exporting to memory, behind its own subscriber and OpenTelemetry layer; only the token's JSON
//! goes from one to the next. The spans that continue the operation are short spans of their
//! own, linked to the span the operation started in.

mod support;

use std::future::Future;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use opentelemetry::trace::{SpanContext, TraceState, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use support::{request, HttpClient};
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::{ErrorKind, Google, LongRunning, LongRunningLayer, Polling, ResumeToken, Step};
use tower_lro_sim::{Monitor, Scenario, Simulator};
use tracing::instrument::WithSubscriber;
use tracing_subscriber::layer::SubscriberExt;

const INSTANCES: &str = "/v1/projects/p/locations/l/instances";

/// The span an operation starts in, and the span of a resumed one.
const OPERATION: &str = "lro.operation";
const STEP: &str = "lro.step";
const CANCEL: &str = "lro.cancel";

/// One process's tracing: a tracer provider exporting to memory, and a subscriber with its own
/// OpenTelemetry layer over it.
struct Process {
    provider: SdkTracerProvider,
    exporter: InMemorySpanExporter,
    dispatch: tracing::Dispatch,
}

impl Process {
    fn new(name: &'static str) -> Process {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer(name));
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
        Process {
            provider,
            exporter,
            dispatch,
        }
    }

    /// Runs `work` in this process: the spans it creates, from the call that makes its future
    /// on, go to this process's exporter.
    async fn run<F: Future>(&self, work: impl FnOnce() -> F) -> F::Output {
        let work = tracing::dispatcher::with_default(&self.dispatch, work);
        work.with_subscriber(self.dispatch.clone()).await
    }

    /// The spans this process ended, named `name`.
    fn spans(&self, name: &str) -> Vec<SpanData> {
        self.provider.force_flush().unwrap();
        let spans = self.exporter.get_finished_spans().unwrap();
        spans.into_iter().filter(|s| s.name == name).collect()
    }
}

fn google() -> LongRunning<HttpClient, Google> {
    ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(Google::new()))
        .service(support::client())
}

/// Starts an operation in `process`, under a span of the caller's, and hands back its token
/// as the JSON another process would read.
async fn start_operation(process: &Process, sim: &Simulator) -> String {
    process
        .run(|| async {
            let caller = tracing::info_span!("caller");
            let _entered = caller.enter();
            let mut req = request(Method::POST, &sim.url(INSTANCES), "{}");
            req.extensions_mut().insert(Polling::AcceptOnly);
            let response = google().oneshot(req).await.unwrap();
            let token = response.extensions().get::<ResumeToken>().unwrap();
            token.to_json()
        })
        .await
}

/// The W3C `traceparent` of a span.
fn traceparent(span: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        span.trace_id(),
        span.span_id(),
        span.trace_flags().to_u8()
    )
}

/// Whether `span` is linked to `start` (remote, as it came from a token) and is not part of its
/// trace: a span of its own, not a child of one kept open.
fn linked_to(span: &SpanData, start: &SpanContext) -> bool {
    span.links.iter().any(|link| {
        link.span_context.trace_id() == start.trace_id()
            && link.span_context.span_id() == start.span_id()
            && link.span_context.is_remote()
    }) && span.span_context.trace_id() != start.trace_id()
}

#[tokio::test(start_paused = true)]
async fn steps_in_another_process_link_to_the_span_the_operation_started_in() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation).completes_after_polls(3),
    );
    let starter = Process::new("starter");
    let saved = start_operation(&starter, &sim).await;

    // The token carries the context of the operation's span, a child of the caller's.
    let [started] = starter.spans(OPERATION).try_into().unwrap();
    let [caller] = starter.spans("caller").try_into().unwrap();
    assert_eq!(started.parent_span_id, caller.span_context.span_id());
    assert_eq!(
        started.span_context.trace_id(),
        caller.span_context.trace_id()
    );
    let start = started.span_context.clone();
    let token = ResumeToken::from_json(&saved).unwrap();
    assert_eq!(token.traceparent(), Some(traceparent(&start).as_str()));

    // Another process steps it to its end, one step per token it reads.
    let worker = Process::new("worker");
    let mut saved = saved;
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps <= 10, "the operation never ended");
        let token = ResumeToken::from_json(&saved).unwrap();
        match worker.run(|| google().step(token)).await.unwrap() {
            Step::Running(next) => saved = next.into_token().to_json(),
            Step::Done(response) => {
                assert_eq!(response.status(), 200);
                break;
            }
        }
        // Every token the steps hand on still names the start, not the step.
        assert_eq!(
            ResumeToken::from_json(&saved).unwrap().traceparent(),
            Some(traceparent(&start).as_str())
        );
    }
    let stepped = worker.spans(STEP);
    assert_eq!(stepped.len(), steps, "a span per step");
    for span in &stepped {
        assert!(linked_to(span, &start), "{span:#?}");
        assert_eq!(span.links.len(), 1, "{span:#?}");
    }
    // Nothing of the operation went to the starter's exporter after its start.
    assert!(starter.spans(STEP).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_resumed_operation_and_a_cancel_link_to_the_start() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation).completes_after_polls(2),
    );
    let starter = Process::new("starter");
    let saved = start_operation(&starter, &sim).await;
    let [started] = starter.spans(OPERATION).try_into().unwrap();
    let start = started.span_context.clone();

    let resumer = Process::new("resumer");
    let token = ResumeToken::from_json(&saved).unwrap();
    let response = resumer
        .run(|| google().oneshot(token.into_request::<Full<Bytes>>()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let [resumed] = resumer.spans(OPERATION).try_into().unwrap();
    assert!(linked_to(&resumed, &start), "{resumed:#?}");

    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation).completes_after_polls(100),
    );
    let saved = start_operation(&starter, &sim).await;
    let started = starter.spans(OPERATION);
    let start = started.last().unwrap().span_context.clone();
    let canceler = Process::new("canceler");
    let token = ResumeToken::from_json(&saved).unwrap();
    let error = canceler.run(|| google().cancel(token)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Canceled);
    let [canceled] = canceler.spans(CANCEL).try_into().unwrap();
    assert!(linked_to(&canceled, &start), "{canceled:#?}");
}

#[tokio::test(start_paused = true)]
async fn the_tracestate_travels_with_the_traceparent() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation).completes_after_polls(2),
    );
    let starter = Process::new("starter");
    let mut json: serde_json::Value =
        serde_json::from_str(&start_operation(&starter, &sim).await).unwrap();
    let [started] = starter.spans(OPERATION).try_into().unwrap();
    // As another vendor's propagator would have set it on the start.
    json["tracestate"] = "rojo=00f067aa0ba902b7".into();
    let token = ResumeToken::from_json(&json.to_string()).unwrap();

    let worker = Process::new("worker");
    let Step::Running(_) = worker.run(|| google().step(token)).await.unwrap() else {
        panic!("the operation ended at its first step");
    };
    let [stepped] = worker.spans(STEP).try_into().unwrap();
    let link = &stepped.links.links[0].span_context;
    assert_eq!(link.span_id(), started.span_context.span_id());
    assert_eq!(link.trace_state().get("rojo"), Some("00f067aa0ba902b7"));
    assert_eq!(
        link.trace_state().header(),
        TraceState::from_key_value([("rojo", "00f067aa0ba902b7")])
            .unwrap()
            .header()
    );
}

#[tokio::test(start_paused = true)]
async fn without_an_opentelemetry_layer_nothing_is_captured_and_a_given_context_goes_on() {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, INSTANCES, Monitor::GoogleOperation).completes_after_polls(3),
    );
    // A process whose subscriber records spans, but has no OpenTelemetry layer.
    let plain = tracing::Dispatch::new(tracing_subscriber::registry());
    let saved = async {
        let mut req = request(Method::POST, &sim.url(INSTANCES), "{}");
        req.extensions_mut().insert(Polling::AcceptOnly);
        let response = google().oneshot(req).await.unwrap();
        response
            .extensions()
            .get::<ResumeToken>()
            .unwrap()
            .to_json()
    }
    .with_subscriber(plain.clone())
    .await;
    let token = ResumeToken::from_json(&saved).unwrap();
    assert_eq!(token.traceparent(), None);

    // A context from elsewhere is passed on by its steps, and by a step without a subscriber.
    let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut json: serde_json::Value = serde_json::from_str(&saved).unwrap();
    json["traceparent"] = given.into();
    let token = ResumeToken::from_json(&json.to_string()).unwrap();
    let stepping = tracing::dispatcher::with_default(&plain, || google().step(token));
    let Step::Running(next) = stepping.with_subscriber(plain).await.unwrap() else {
        panic!("the operation ended at its first step");
    };
    let Step::Running(next) = google().step(next.into_token()).await.unwrap() else {
        panic!("the operation ended at its second step");
    };
    assert_eq!(next.token().traceparent(), Some(given));
}
