//! Job APIs against the in-process simulator, one function per API: an OpenAI-style batch (its
//! progress, then canceled), an Anthropic-style message batch, an Azure Durable Functions
//! orchestration (completed, and failed), and a job API of your own, described in a few lines of
//! configuration.
//!
//! ```text
//! cargo run --example job_apis
//! ```
//!
//! The API key is set **below** the layer, so every request carries it: the polls, and a cancel
//! or a resume from a token, which the original request's headers do not reach (a token never
//! holds them). No account and no network: the simulator listens on 127.0.0.1 and hints 50 ms
//! between polls, so the tour takes well under a second.

use bytes::Bytes;
use http::header::{HeaderName, AUTHORIZATION};
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_http::set_header::SetRequestHeaderLayer;
use tower_lro::{
    DurableFunctions, ErrorKind, JsonJob, LongRunningLayer, OperationInfo, Polling, ResumeToken,
};
use tower_lro_sim::{Ending, Monitor, RetryAfter, Scenario, Simulator};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let sim = Simulator::start().await?;
    println!("simulated job APIs on http://{}\n", sim.addr());
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    openai_batch(&sim, client.clone()).await?;
    anthropic_batch(&sim, client.clone()).await?;
    durable_orchestration(&sim, client.clone()).await?;
    own_job_api(&sim, client).await?;
    println!("\n{} requests in all", sim.requests().len());
    Ok(())
}

/// An OpenAI batch: followed to `completed`, then another one started and canceled.
async fn openai_batch(sim: &Simulator, client: HttpClient) -> Result<(), BoxError> {
    sim.add(
        Scenario::new(Method::POST, "/v1/batches", Monitor::OpenAiJob)
            .retry_after(RetryAfter::Millis(50))
            .completes_after_polls(3)
            .percent_complete(true),
    );
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(JsonJob::openai()))
        .layer(SetRequestHeaderLayer::overriding(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-example"),
        ))
        .service(client);

    println!("1. an OpenAI batch: POST /v1/batches, polled at /v1/batches/{{id}}");
    let response = service.clone().oneshot(post(sim, "/v1/batches")?).await?;
    let info = operation(&response)?;
    let body = response.into_body().collect().await?.to_bytes();
    println!(
        "   {} after {} polls ({} done): {}",
        info.state.as_deref().unwrap_or("-"),
        info.polls,
        info.percent_complete
            .map_or_else(|| "-".to_owned(), |p| format!("{p:.0}%")),
        String::from_utf8_lossy(&body)
    );

    println!("   another batch, accepted, then canceled from its token");
    let mut start = post(sim, "/v1/batches")?;
    start.extensions_mut().insert(Polling::AcceptOnly);
    let accepted = service.clone().oneshot(start).await?;
    let token = accepted
        .extensions()
        .get::<ResumeToken>()
        .cloned()
        .ok_or("an accepted job carries a token")?;
    let error = service
        .cancel(token)
        .await
        .err()
        .ok_or("a canceled batch ends with an error")?;
    println!(
        "   {:?}, the batch reports {:?}\n",
        error.kind(),
        error.operation().and_then(|o| o.state.as_deref())
    );
    Ok(())
}

/// An Anthropic message batch: followed to `ended`; the ended batch is the final response.
async fn anthropic_batch(sim: &Simulator, client: HttpClient) -> Result<(), BoxError> {
    sim.add(
        Scenario::new(
            Method::POST,
            "/v1/messages/batches",
            Monitor::AnthropicBatch,
        )
        .retry_after(RetryAfter::Millis(50))
        .completes_after_polls(2),
    );
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(JsonJob::anthropic()))
        .layer(SetRequestHeaderLayer::overriding(
            HeaderName::from_static("x-api-key"),
            HeaderValue::from_static("sk-ant-example"),
        ))
        .service(client);

    println!("2. an Anthropic message batch: POST /v1/messages/batches");
    let response = service.oneshot(post(sim, "/v1/messages/batches")?).await?;
    let info = operation(&response)?;
    let body = response.into_body().collect().await?.to_bytes();
    let batch: serde_json::Value = serde_json::from_slice(&body)?;
    println!(
        "   {} after {} polls; request counts {}; results at {}\n",
        info.state.as_deref().unwrap_or("-"),
        info.polls,
        batch["request_counts"],
        batch["results_url"]
    );
    Ok(())
}

/// An Azure Durable Functions orchestration, started through an HTTP-triggered starter function:
/// followed to `Completed`, and another one to `Failed`, whose output is the error's message.
/// The extension's URLs carry the function app's key as `code=`, so its resume tokens do too:
/// store them as secrets (their `Debug` hides it).
async fn durable_orchestration(sim: &Simulator, client: HttpClient) -> Result<(), BoxError> {
    let starter = "/api/orchestrators/HelloCities";
    sim.add(
        Scenario::new(Method::POST, starter, Monitor::DurableFunctions)
            .retry_after(RetryAfter::Millis(50))
            .completes_after_polls(2)
            .resource_body(r#"["Hello Tokyo!","Hello Seattle!"]"#),
    );
    let failing = "/api/orchestrators/Failing";
    sim.add(
        Scenario::new(Method::POST, failing, Monitor::DurableFunctions)
            .retry_after(RetryAfter::Millis(50))
            .ending(Ending::Failed {
                code: String::new(),
                message: "Orchestrator function 'Failing' failed: city not found".into(),
            }),
    );
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(DurableFunctions::new()))
        .service(client);

    println!("3. an Azure Durable Functions orchestration: POST {starter}");
    let response = service.clone().oneshot(post(sim, starter)?).await?;
    let info = operation(&response)?;
    let body = response.into_body().collect().await?.to_bytes();
    let status: serde_json::Value = serde_json::from_slice(&body)?;
    println!(
        "   {} after {} polls: output {}",
        info.state.as_deref().unwrap_or("-"),
        info.polls,
        status["output"]
    );
    let error = service
        .oneshot(post(sim, failing)?)
        .await
        .err()
        .ok_or("a failed orchestration is an error, never Ok")?;
    if error.kind() != ErrorKind::Failed {
        return Err(format!("a failed orchestration is Failed, not {:?}", error.kind()).into());
    }
    println!(
        "   another one: {:?}, {:?}\n",
        error.kind(),
        error.message().unwrap_or("-")
    );
    Ok(())
}

/// A job API of your own, described by configuration: here the simulator's prediction API,
/// described by hand as you would describe an API no preset knows.
async fn own_job_api(sim: &Simulator, client: HttpClient) -> Result<(), BoxError> {
    sim.add(
        Scenario::new(Method::POST, "/v1/renders", Monitor::ReplicatePrediction)
            .retry_after(RetryAfter::Millis(50))
            .resource_body(r#"{"frames": 240, "url": "https://cdn.example/render.mp4"}"#),
    );
    // The description: 9 lines.
    let renders = JsonJob::builder("render-job")
        .poll_at("/urls/get")
        .state("/status")
        .running(["starting", "processing"])
        .succeeded(["succeeded"])
        .failed(["failed"])
        .canceled(["canceled"])
        .cancel_at("/urls/cancel")
        .build()?;
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(renders))
        .layer(SetRequestHeaderLayer::overriding(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer r8-example"),
        ))
        .service(client);

    println!("4. a job API of your own: POST /v1/renders, polled at the URL it names");
    let response = service.oneshot(post(sim, "/v1/renders")?).await?;
    let info = operation(&response)?;
    let body = response.into_body().collect().await?.to_bytes();
    let job: serde_json::Value = serde_json::from_slice(&body)?;
    println!(
        "   {} at {} after {} polls: output {}",
        info.state.as_deref().unwrap_or("-"),
        info.monitor_url,
        info.polls,
        job["output"]
    );
    Ok(())
}

fn post(sim: &Simulator, path: &str) -> Result<Request<Full<Bytes>>, http::Error> {
    Request::post(sim.url(path))
        .header("content-type", "application/json")
        .body(Full::from(r#"{"input_file_id":"file-abc"}"#))
}

fn operation<B>(response: &http::Response<B>) -> Result<OperationInfo, BoxError> {
    Ok(response
        .extensions()
        .get::<OperationInfo>()
        .cloned()
        .ok_or("a followed job carries its OperationInfo")?)
}
