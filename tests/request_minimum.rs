//! The layer sends the protocol minimum: the original request once, exactly the polls the
//! server dictates, and at most the one final GET the protocol requires; counted server-side by the
//! simulator over HTTP on the in-memory network, for every scenario kind and several operation
//! lengths.

mod support;

use http::Method;
use support::{request, stack};
use tower::ServiceExt;
use tower_lro::LongRunningLayer;
use tower_lro_sim::{Monitor, RetryAfter, Scenario};

const PATH: &str = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Test/things/t";

struct Case {
    method: Method,
    monitor: Monitor,
    location_header: bool,
    resource_location: bool,
    /// The path of the one final GET the protocol requires, if any.
    final_get: Option<&'static str>,
}

/// Runs `case` with `running` "running" answers and checks the exact trail the server saw.
async fn assert_minimum(case: Case, running: u32) {
    let sim = support::simulator().await;
    sim.add(
        Scenario::new(case.method.clone(), PATH, case.monitor)
            .retry_after(RetryAfter::Seconds(0))
            .completes_after_polls(running)
            .location_header(case.location_header)
            .resource_location(case.resource_location),
    );
    let uri = sim.url(&format!("{PATH}?api-version=2024-01-01"));
    stack(LongRunningLayer::new())
        .oneshot(request(case.method.clone(), &uri, r#"{"p":1}"#))
        .await
        .unwrap_or_else(|e| panic!("{:?} {:?}: {e}", case.method, case.monitor));

    let monitor = match case.monitor {
        Monitor::Resource => PATH,
        _ => "/operations/1",
    };
    let mut expected = vec![(case.method.clone(), PATH.to_owned())];
    // The server answers "running" `running` times; the poll after that sees the terminal state.
    for _ in 0..=running {
        expected.push((Method::GET, monitor.to_owned()));
    }
    if let Some(path) = case.final_get {
        expected.push((Method::GET, path.to_owned()));
    }
    let trail: Vec<_> = sim
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.uri.path().to_owned()))
        .collect();
    assert_eq!(
        trail, expected,
        "{:?} {:?} with {running} running answers",
        case.method, case.monitor
    );
    assert_eq!(
        sim.count(&case.method, PATH),
        1,
        "the original is sent once"
    );
}

fn cases() -> Vec<(&'static str, Case)> {
    vec![
        (
            "Azure-AsyncOperation POST: the last status is final, no final GET",
            Case {
                method: Method::POST,
                monitor: Monitor::AzureAsyncOperation,
                location_header: false,
                resource_location: false,
                final_get: None,
            },
        ),
        (
            "Azure-AsyncOperation PUT: one final GET of the original URI",
            Case {
                method: Method::PUT,
                monitor: Monitor::AzureAsyncOperation,
                location_header: false,
                resource_location: false,
                final_get: Some(PATH),
            },
        ),
        (
            "Operation-Location PUT with resourceLocation: one final GET of it",
            Case {
                method: Method::PUT,
                monitor: Monitor::OperationLocation,
                location_header: false,
                resource_location: true,
                final_get: Some("/resources/1"),
            },
        ),
        (
            "Location PUT: the last poll is final",
            Case {
                method: Method::PUT,
                monitor: Monitor::Location,
                location_header: false,
                resource_location: false,
                final_get: None,
            },
        ),
        (
            "resource PUT: the last poll of the resource is final",
            Case {
                method: Method::PUT,
                monitor: Monitor::Resource,
                location_header: false,
                resource_location: false,
                final_get: None,
            },
        ),
        (
            "POST with Azure-AsyncOperation and Location: one final GET of Location",
            Case {
                method: Method::POST,
                monitor: Monitor::AzureAsyncOperation,
                location_header: true,
                resource_location: false,
                final_get: Some("/results/1"),
            },
        ),
        (
            "Azure-AsyncOperation DELETE: the last status is final",
            Case {
                method: Method::DELETE,
                monitor: Monitor::AzureAsyncOperation,
                location_header: false,
                resource_location: false,
                final_get: None,
            },
        ),
    ]
}

#[tokio::test(start_paused = true)]
async fn every_scenario_kind_sends_exactly_the_protocol_minimum() {
    for running in [0, 1, 3, 10] {
        for (name, case) in cases() {
            eprintln!("{name}, {running} running answers");
            assert_minimum(case, running).await;
        }
    }
}
