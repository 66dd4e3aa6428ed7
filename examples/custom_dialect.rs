//! A dialect of your own: a toy job API answers `202 Accepted` with an `X-Job-Status` URL, which
//! answers `200` with `{"state": "running" | "done" | "failed", ...}`; the last answer is the
//! result. One `impl Dialect` of three methods (the `Dialect` trait's example, plus progress) and
//! the layer follows it with every guarantee it gives Azure and Google: the request sent once,
//! only GETs repeated, bounds, origin policy, progress and tokens.
//!
//! ```text
//! cargo run --example custom_dialect
//! ```
//!
//! The job API is a tiny axum server on 127.0.0.1, in this file. The dialect's unit tests, at the
//! end, need no server: they use `tower_lro::dialect::testing` (`tests/custom_dialect.rs` runs
//! them).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use http::{response, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};
use tower_lro::dialect::{
    Dialect, ErrorDetail, Follow, InitialHead, Observer, PollAt, RequestHead, Verdict,
};
use tower_lro::{LongRunningLayer, OperationInfo};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The toy API's protocol. Everything else (which poll answers to read, which are worth
/// retrying, the final GET, error details) is the `Dialect` trait's default.
#[derive(Debug, Clone, Default)]
struct JobStatus;

impl Dialect for JobStatus {
    type Monitor = ();

    fn name(&self) -> &'static str {
        "x-job-status"
    }

    fn initial_head<'a>(
        &self,
        _: &RequestHead<'_>,
        res: &'a response::Parts,
    ) -> InitialHead<'a, ()> {
        match res.headers.get("x-job-status") {
            Some(url) if res.status == 202 => {
                InitialHead::Follow(Follow::new((), PollAt::url(url)))
            }
            _ => InitialHead::NotLongRunning,
        }
    }

    fn status_body<'a>(
        &self,
        _: &mut (),
        _: &RequestHead<'_>,
        _: &'a response::Parts,
        body: &'a [u8],
        seen: &mut Observer<'_>,
    ) -> Verdict<'a> {
        #[derive(serde::Deserialize)]
        struct Job<'b> {
            #[serde(borrow)]
            state: Cow<'b, str>,
            #[serde(default)]
            percent: Option<f64>,
        }
        match serde_json::from_slice::<Job<'_>>(body) {
            Ok(job) => {
                seen.state(&job.state);
                if let Some(percent) = job.percent {
                    seen.percent_complete(percent);
                }
                match &*job.state {
                    "done" => Verdict::Done,
                    "failed" => Verdict::Failed(ErrorDetail::reported("failed")),
                    _ => Verdict::Running { moved: None },
                }
            }
            Err(e) => Verdict::Malformed(format!("not a job status: {e}")),
        }
    }
}

/// The toy API: `POST /jobs` starts a job that is done at its third status request.
async fn job_api() -> Result<String, BoxError> {
    let polls = Arc::new(AtomicU32::new(0));
    let app = Router::new()
        .route(
            "/jobs",
            post(|| async {
                let mut headers = HeaderMap::new();
                headers.insert("x-job-status", HeaderValue::from_static("/jobs/1/status"));
                headers.insert("retry-after-ms", HeaderValue::from_static("50"));
                (StatusCode::ACCEPTED, headers)
            }),
        )
        .route(
            "/jobs/1/status",
            get(move || {
                let polls = polls.clone();
                async move {
                    match polls.fetch_add(1, Ordering::SeqCst) {
                        n @ 0..=1 => format!(r#"{{"state":"running","percent":{}}}"#, (n + 1) * 33),
                        _ => r#"{"state":"done","percent":100,"result":{"rows":42}}"#.to_owned(),
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let api = job_api().await?;
    println!("toy job API on {api}");
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let service = ServiceBuilder::new()
        .layer(LongRunningLayer::with_dialect(JobStatus))
        .service(client);
    let response = service
        .oneshot(Request::post(format!("{api}/jobs")).body(Full::default())?)
        .await?;
    let info = response
        .extensions()
        .get::<OperationInfo>()
        .cloned()
        .ok_or("a followed operation carries its OperationInfo")?;
    let body = response.into_body().collect().await?.to_bytes();
    println!(
        "{} after {} polls of {} ({}, {:?}%): {}",
        info.state.as_deref().unwrap_or("-"),
        info.polls,
        info.monitor_url,
        info.monitor,
        info.percent_complete,
        String::from_utf8_lossy(&body)
    );
    Ok(())
}

/// The dialect's decisions, one response at a time, without a server.
#[cfg(test)]
mod tests {
    use tower_lro::dialect::testing::{self, Recorder};
    use tower_lro::dialect::StatusHead;

    use super::*;

    #[test]
    fn a_202_naming_a_status_url_is_followed() -> Result<(), http::Error> {
        let request = Request::post("http://jobs.example/jobs").body(())?;
        let head = testing::request_head(&request);
        let accepted = testing::response_head(202, &[("x-job-status", "/jobs/1/status")])?;
        match JobStatus.initial_head(&head, &accepted) {
            InitialHead::Follow(follow) => {
                assert_eq!(follow.poll_at(), &PollAt::url(&"/jobs/1/status".parse()?));
            }
            other => panic!("not followed: {other:?}"),
        }
        for (status, headers) in [(200, &[("x-job-status", "/jobs/1/status")][..]), (202, &[])] {
            let response = testing::response_head(status, headers)?;
            let verdict = JobStatus.initial_head(&head, &response);
            assert!(matches!(verdict, InitialHead::NotLongRunning), "{status}");
        }
        Ok(())
    }

    #[test]
    fn status_bodies_say_where_the_job_stands() -> Result<(), http::Error> {
        let request = Request::post("http://jobs.example/jobs").body(())?;
        let head = testing::request_head(&request);
        let ok = testing::response_head(200, &[("content-type", "application/json")])?;
        assert!(matches!(
            JobStatus.status_head(&(), &ok),
            StatusHead::ReadBody
        ));
        let judge = |body: &'static str, seen: &mut Recorder| {
            JobStatus.status_body(&mut (), &head, &ok, body.as_bytes(), &mut seen.observer())
        };
        let mut seen = Recorder::new();
        let verdict = judge(r#"{"state":"running","percent":33}"#, &mut seen);
        assert!(matches!(verdict, Verdict::Running { moved: None }));
        assert_eq!(seen.state(), Some("running"));
        assert_eq!(seen.percent_complete(), Some(33.0));
        assert!(matches!(
            judge(r#"{"state":"done"}"#, &mut seen),
            Verdict::Done
        ));
        assert_eq!(seen.state(), Some("done"));
        match judge(r#"{"state":"failed"}"#, &mut seen) {
            Verdict::Failed(detail) => assert_eq!(detail.reported.as_deref(), Some("failed")),
            other => panic!("not failed: {other:?}"),
        }
        let verdict = judge("<html>", &mut Recorder::new());
        assert!(matches!(verdict, Verdict::Malformed(_)));
        Ok(())
    }
}
