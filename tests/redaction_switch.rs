//! `telemetry::set_redact_urls` is process-wide, so its test has a process of its own.

mod support;

use http::Method;
use support::{reply, request, stack, RawServer};
use tower::ServiceExt;
use tower_lro::{telemetry, LongRunningLayer};

#[tokio::test(start_paused = true)]
async fn full_urls_are_shown_only_when_asked_for() {
    let server = RawServer::start(|n, _| match n {
        0 => reply(
            202,
            &[("azure-asyncoperation", "/operations/1?sig=s3cr3t")],
            "",
        ),
        _ => reply(200, &[], r#"{"status":"Failed"}"#),
    })
    .await;
    let error = stack(LongRunningLayer::new())
        .oneshot(request(Method::POST, &server.url("/start"), ""))
        .await
        .unwrap_err();
    let info = error.operation().unwrap();

    assert!(telemetry::redacts_urls());
    let redacted = format!("{error:?} {info:?}");
    assert!(
        !redacted.contains("s3cr3t") && redacted.contains("sig=REDACTED"),
        "{redacted}"
    );

    telemetry::set_redact_urls(false);
    let full = format!("{error:?} {info:?}");
    telemetry::set_redact_urls(true);
    assert!(full.contains("sig=s3cr3t"), "{full}");
    assert_eq!(format!("{error:?} {info:?}"), redacted);
}
