//! What an operation looks like in production: runs operations against the simulator with
//! tower-http's `TraceLayer` below the layer, then prints the span tree the `tracing` feature
//! recorded (the spans of the layers below nest under each poll) and the Prometheus text of the
//! `metrics` feature's instruments.
//!
//! ```text
//! cargo run --example telemetry
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::trace::{DefaultMakeSpan, TraceLayer};
use tower_lro::{telemetry, Dialect, Google, LongRunningLayer};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const ARM: &str =
    "/subscriptions/s/resourceGroups/demo/providers/Microsoft.Compute/virtualMachines";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let tree = SpanTree::default();
    let subscriber =
        tracing_subscriber::registry().with(tree.clone().with_filter(LevelFilter::INFO));
    tracing::subscriber::set_global_default(subscriber)?;
    // Operation durations run from seconds to a day: the crate's bucket boundaries, not HTTP's.
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("lro.client.operation.duration".into()),
            telemetry::DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("lro.client.wait".into()),
            telemetry::WAIT_BUCKETS,
        )?
        .install_recorder()?;

    let sim = Simulator::start().await?;
    sim.add(
        Scenario::new(
            Method::PUT,
            format!("{ARM}/vm1"),
            Monitor::AzureAsyncOperation,
        )
        .retry_after(RetryAfter::Millis(50))
        .percent_complete(true)
        .completes_after_polls(2),
    );
    sim.add(
        Scenario::new(
            Method::PUT,
            format!("{ARM}/vm2"),
            Monitor::AzureAsyncOperation,
        )
        .retry_after(RetryAfter::Millis(50))
        .completes_after_polls(1)
        .ending(Ending::Failed {
            code: "QuotaExceeded".into(),
            message: "no cores left in westeurope".into(),
        }),
    );
    sim.add(
        Scenario::new(
            Method::POST,
            "/v1/projects/p/instances:create",
            Monitor::GoogleOperation,
        )
        .retry_after(RetryAfter::Millis(50))
        .completes_after_polls(1),
    );

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let below =
        TraceLayer::new_for_http().make_span_with(DefaultMakeSpan::new().level(Level::INFO));
    let azure = ServiceBuilder::new()
        .layer(LongRunningLayer::new())
        .layer(below.clone())
        .service(client.clone());
    let google = ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(
            tower_lro::Azure::new().or(Google::new()),
        ))
        .layer(below)
        .service(client);

    let put = |path: String| http::Request::put(sim.url(&path)).body(Full::<Bytes>::default());
    let created = azure.clone().oneshot(put(format!("{ARM}/vm1"))?).await?;
    let failed = azure.oneshot(put(format!("{ARM}/vm2"))?).await.unwrap_err();
    let post =
        http::Request::post(sim.url("/v1/projects/p/instances:create")).body(Full::default())?;
    let google_done = google.oneshot(post).await?;
    println!(
        "vm1: {}; vm2: {failed}; google: {}\n",
        created.status(),
        google_done.status()
    );
    // A span ends when its last handle goes: tower-http's request span lives in the response
    // body until the body is read.
    created.into_body().collect().await?;
    google_done.into_body().collect().await?;

    println!("spans (INFO), as a tree:\n");
    tree.print();
    println!("\nmetrics, as Prometheus scrapes them:\n");
    let text = prometheus.render();
    for line in text
        .lines()
        .filter(|l| l.starts_with("# TYPE") || l.starts_with("lro_"))
    {
        // The histograms' buckets are many lines each: their sums and counts say enough here.
        if line.contains("_bucket{") {
            continue;
        }
        println!("{line}");
    }
    assert!(
        text.contains("lro_client_operations"),
        "no metrics recorded:\n{text}"
    );
    Ok(())
}

/// A `tracing` layer that keeps every span with its fields and time, to print them as a tree.
#[derive(Clone, Default)]
struct SpanTree(Arc<Mutex<Tree>>);

#[derive(Default)]
struct Tree {
    nodes: Vec<Node>,
    open: BTreeMap<u64, usize>,
}

struct Node {
    name: &'static str,
    parent: Option<usize>,
    fields: Vec<(&'static str, String)>,
    started: Instant,
    took: Option<Duration>,
}

struct Fields<'a>(&'a mut Vec<(&'static str, String)>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.retain(|(name, _)| *name != field.name());
        self.0.push((field.name(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.retain(|(name, _)| *name != field.name());
        self.0.push((field.name(), value.to_owned()));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanTree {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut tree = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .and_then(|parent| tree.open.get(&parent.id().into_u64()).copied());
        let mut fields = Vec::new();
        attrs.record(&mut Fields(&mut fields));
        let at = tree.nodes.len();
        tree.nodes.push(Node {
            name: attrs.metadata().name(),
            parent,
            fields,
            started: Instant::now(),
            took: None,
        });
        tree.open.insert(id.into_u64(), at);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut tree = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&at) = tree.open.get(&id.into_u64()) {
            values.record(&mut Fields(&mut tree.nodes[at].fields));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let mut tree = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = tree.open.remove(&id.into_u64()) {
            let node = &mut tree.nodes[at];
            node.took = Some(node.started.elapsed());
        }
    }
}

impl SpanTree {
    fn print(&self) {
        let tree = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let roots = (0..tree.nodes.len()).filter(|&i| tree.nodes[i].parent.is_none());
        for root in roots {
            print_node(&tree, root, "", "");
        }
    }
}

/// `value` as printed: URLs without the simulator's address, long fractions rounded.
fn shown(value: &str) -> String {
    let path = value
        .strip_prefix("http://")
        .and_then(|rest| rest.find('/').map(|at| &rest[at..]));
    match (path, value.parse::<f64>()) {
        (Some(path), _) => path.to_owned(),
        (None, Ok(number)) if value.len() > 6 => format!("{number:.1}"),
        _ => value.to_owned(),
    }
}

fn print_node(tree: &Tree, at: usize, lead: &str, branch: &str) {
    let node = &tree.nodes[at];
    // A span still open when this prints (one a pooled connection's task still holds) shows
    // no duration.
    let took = node
        .took
        .map_or_else(String::new, |d| format!(" ({} ms)", d.as_millis()));
    let fields: Vec<String> = node
        .fields
        .iter()
        // Defaults and tower-http's protocol version say nothing here.
        .filter(|(name, value)| !matches!((*name, value.as_str()), ("version", _) | (_, "false")))
        .map(|(name, value)| format!("{name}={}", shown(value)))
        .collect();
    println!("{lead}{branch}{}{took} {}", node.name, fields.join(" "));
    let children: Vec<usize> = (0..tree.nodes.len())
        .filter(|&i| tree.nodes[i].parent == Some(at))
        .collect();
    let lead = format!(
        "{lead}{}",
        match branch {
            "" => "",
            "└─ " => "   ",
            _ => "│  ",
        }
    );
    for (n, child) in children.iter().enumerate() {
        let branch = if n + 1 == children.len() {
            "└─ "
        } else {
            "├─ "
        };
        print_node(tree, *child, &lead, branch);
    }
}
