//! Watching progress, accept-only mode, and resuming an operation elsewhere,
//! end to end against the simulator on tokio's paused clock.

mod support;

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use support::{info, request, stack, text};
use tower::ServiceExt;
use tower_lro::progress::{self, Progress};
use tower_lro::{ErrorKind, LongRunningLayer, Polling, ResumeToken};
use tower_lro_sim::{Monitor, RetryAfter, Scenario, Simulator};

const PATH: &str =
    "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/virtualMachines/vm/start";

async fn sim_with(polls: u32) -> Arc<Simulator> {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(Method::POST, PATH, Monitor::AzureAsyncOperation)
            .retry_after(RetryAfter::Seconds(10))
            .percent_complete(true)
            .completes_after_polls(polls),
    );
    sim
}

#[tokio::test(start_paused = true)]
async fn progress_updates_after_every_poll_and_closes_at_the_end() {
    let sim = sim_with(3).await;
    let (sender, mut updates) = progress::channel();
    let mut req = request(Method::POST, &sim.url(&format!("{PATH}?api-version=1")), "");
    req.extensions_mut().insert(sender);

    let watcher = tokio::spawn(async move {
        let mut seen: Vec<Progress> = Vec::new();
        while updates.changed().await.is_ok() {
            if let Some(p) = updates.borrow_and_update().clone() {
                seen.push(p);
            }
        }
        seen
    });
    let response = stack(LongRunningLayer::new()).oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = tokio::time::timeout(Duration::from_secs(1), watcher)
        .await
        .unwrap()
        .unwrap();

    // After the initial response, after each of the 3 running polls, and the final one.
    let polls: Vec<u32> = seen.iter().map(|p| p.operation.polls).collect();
    assert_eq!(polls, [0, 1, 2, 3, 4]);
    let percents: Vec<Option<f64>> = seen.iter().map(|p| p.operation.percent_complete).collect();
    assert_eq!(
        percents,
        [None, Some(25.0), Some(50.0), Some(75.0), Some(100.0)]
    );
    assert_eq!(seen[1].operation.state.as_deref(), Some("InProgress"));
    assert_eq!(seen[1].next_poll_in, Some(Duration::from_secs(10)));
    assert_eq!(seen[1].operation.elapsed, Duration::from_secs(10));
    let last = seen.last().unwrap();
    assert!(last.finished && last.next_poll_in.is_none());
    assert_eq!(last.operation.state.as_deref(), Some("Succeeded"));
    assert!(seen[..4].iter().all(|p| !p.finished));
    assert_eq!(seen[2].resume_token.polls(), 2);
    // The sender never reached the server's side of the stack.
    assert_eq!(sim.count(&Method::POST, PATH), 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_observer_sees_only_the_latest_update() {
    let sim = sim_with(5).await;
    let (sender, updates) = progress::channel();
    let mut req = request(Method::POST, &sim.url(PATH), "");
    req.extensions_mut().insert(sender);
    // Nobody reads until the end: polling is not slowed, and only one value is kept.
    stack(LongRunningLayer::new()).oneshot(req).await.unwrap();
    let latest = updates.borrow().clone().unwrap();
    assert!(latest.finished);
    assert_eq!(latest.operation.polls, 6);
}

#[tokio::test(start_paused = true)]
async fn accept_only_returns_the_initial_response_with_a_token() {
    let sim = sim_with(2).await;
    let mut req = request(Method::POST, &sim.url(&format!("{PATH}?api-version=1")), "");
    req.extensions_mut().insert(Polling::AcceptOnly);
    let (sender, updates) = progress::channel();
    req.extensions_mut().insert(sender);
    let response = stack(LongRunningLayer::new()).oneshot(req).await.unwrap();
    // Handed off, not ended: nobody is told it finished.
    assert!(updates.borrow().as_ref().is_none_or(|p| !p.finished));

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let token = response.extensions().get::<ResumeToken>().cloned().unwrap();
    assert_eq!(token.polls(), 0);
    assert!(
        token.monitor_url().ends_with("/operations/1?api-version=1"),
        "{}",
        token.monitor_url()
    );
    let info = info(&response);
    assert_eq!(info.monitor, "azure-async-operation");
    assert_eq!(sim.requests().len(), 1, "nothing polled");

    // The token, sent through the stack as a request, finishes the job.
    let done = stack(LongRunningLayer::new())
        .oneshot(token.into_request())
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert!(text(done).await.contains("Succeeded"));
    assert_eq!(sim.count(&Method::POST, PATH), 1);
}

#[tokio::test(start_paused = true)]
async fn accept_only_leaves_ordinary_responses_alone() {
    let sim = support::simulator().await;
    let mut req = request(Method::GET, &sim.url("/nothing-here"), "");
    req.extensions_mut().insert(Polling::AcceptOnly);
    let response = stack(LongRunningLayer::new()).oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.extensions().get::<ResumeToken>().is_none());
}

/// The hand-off a job queue makes: start, take the token from progress, drop the future, resume from
/// the JSON string in a service built from scratch, reach the same final response; the initial
/// request was sent once.
#[tokio::test(start_paused = true)]
async fn an_operation_resumes_in_a_new_service_from_its_json_token() {
    let sim = sim_with(4).await;
    let (sender, mut updates) = progress::channel();
    let mut req = request(Method::POST, &sim.url(&format!("{PATH}?api-version=1")), "");
    req.headers_mut()
        .insert("x-ms-client-request-id", "req-1".parse().unwrap());
    req.headers_mut()
        .insert("authorization", "Bearer first-process".parse().unwrap());
    req.extensions_mut().insert(sender);

    let first = stack(LongRunningLayer::new()).oneshot(req);
    let saved = {
        tokio::pin!(first);
        loop {
            tokio::select! {
                _ = &mut first => panic!("the operation must not finish before the hand-off"),
                changed = updates.changed() => {
                    changed.unwrap();
                    let progress = updates.borrow_and_update().clone().unwrap();
                    if progress.operation.polls == 2 {
                        break progress.resume_token.to_json();
                    }
                }
            }
        }
        // `first` is dropped here: its polling stops.
    };
    assert!(
        !saved.contains("first-process"),
        "credentials never go into a token"
    );
    let before = sim.requests().len();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        sim.requests().len(),
        before,
        "the dropped future polls no more"
    );

    let token = ResumeToken::from_json(&saved).unwrap();
    let fresh = stack(LongRunningLayer::new());
    let response = fresh.resume(token).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let info = info(&response);
    assert_eq!(info.polls, 5, "polls before the hand-off count too");
    assert!(text(response).await.contains("Succeeded"));

    assert_eq!(sim.count(&Method::POST, PATH), 1);
    let resumed_polls: Vec<_> = sim.requests()[before..].to_vec();
    assert_eq!(resumed_polls.len(), 3);
    for poll in &resumed_polls {
        assert_eq!(poll.method, Method::GET);
        assert_eq!(poll.headers["x-ms-client-request-id"], "req-1");
        assert!(!poll.headers.contains_key("authorization"));
    }
}

#[tokio::test(start_paused = true)]
async fn bad_tokens_are_typed_errors() {
    let sim = support::simulator().await;
    let good = {
        let sim2 = sim_with(1).await;
        let mut req = request(Method::POST, &sim2.url(PATH), "");
        req.extensions_mut().insert(Polling::AcceptOnly);
        let response = stack(LongRunningLayer::new()).oneshot(req).await.unwrap();
        response.extensions().get::<ResumeToken>().cloned().unwrap()
    };
    // A token whose monitor is on another origin than its original URI is refused by the
    // resuming layer's origin policy, like any URL a server names.
    let mut forged: serde_json::Value = serde_json::from_str(&good.to_json()).unwrap();
    forged["monitor_url"] = format!("http://{}/operations/1", sim.addr()).into();
    let forged = ResumeToken::from_json(&forged.to_string()).unwrap();
    let err = stack(LongRunningLayer::new())
        .resume(forged)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidResumeToken);
    assert!(sim.requests().is_empty());
    // As anyhow's `{:#}` prints it: each error of the chain says only its own part, once.
    let mut chain = vec![err.to_string()];
    let mut cause = std::error::Error::source(&err);
    while let Some(error) = cause {
        chain.push(error.to_string());
        cause = error.source();
    }
    assert_eq!(chain.len(), 2, "{chain:?}");
    assert!(!chain[0].contains(&chain[1]), "{chain:?}");
    assert!(chain[1].contains("origin"), "{chain:?}");

    let err = tower_lro::Error::from(ResumeToken::from_json(r#"{"version":99}"#).unwrap_err());
    assert_eq!(err.kind(), ErrorKind::InvalidResumeToken);
}

#[tokio::test(start_paused = true)]
async fn an_error_that_gives_up_carries_a_token_to_continue() {
    let sim = sim_with(10).await;
    let layer = LongRunningLayer::new().max_polls(3);
    let err = stack(layer)
        .oneshot(request(Method::POST, &sim.url(PATH), ""))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooManyPolls);
    let token = err.resume_token().cloned().unwrap();
    assert_eq!(token.polls(), 3);
    assert_eq!(token.state(), Some("InProgress"));
    // A more patient layer takes it from there.
    let response = stack(LongRunningLayer::new()).resume(token).await.unwrap();
    assert_eq!(info(&response).polls, 11);
    assert_eq!(sim.count(&Method::POST, PATH), 1);
}

/// Polls and time spent before a hand-off count against the resuming layer's bounds, which are
/// checked before anything is sent: a token from `TooManyPolls` resumed under the same bound
/// fails again at once, without a request.
#[tokio::test(start_paused = true)]
async fn resuming_respects_the_budgets_without_sending_anything() {
    let sim = sim_with(10).await;
    let layer = LongRunningLayer::new().max_polls(3);
    let err = stack(layer.clone())
        .oneshot(request(Method::POST, &sim.url(PATH), ""))
        .await
        .unwrap_err();
    let token = err.resume_token().cloned().unwrap();
    let sent = sim.requests().len();

    let again = stack(layer).resume(token.clone()).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::TooManyPolls);
    let timed = stack(LongRunningLayer::new().timeout(Duration::from_millis(1)))
        .resume(token)
        .await
        .unwrap_err();
    assert_eq!(
        timed.kind(),
        ErrorKind::TimedOut,
        "the token's 30 s are past a 1 ms deadline"
    );
    assert_eq!(sim.requests().len(), sent, "nothing was sent");
}
