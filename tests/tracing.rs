//! The `tracing` feature (on by default): one span per operation, an event per poll, a warning
//! per transient retry.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use http::Method;
use support::{reply, request, stack, RawServer};
use tower::ServiceExt;
use tower_lro::LongRunningLayer;

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

#[tokio::test(start_paused = true)]
async fn spans_and_events_describe_each_operation_and_poll() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = RawServer::start(|n, _| match n {
        0 => reply(
            202,
            &[
                ("azure-asyncoperation", "/operations/1"),
                ("retry-after", "2"),
            ],
            "",
        ),
        1 => reply(
            200,
            &[("retry-after", "3")],
            r#"{"status":"Running","percentComplete":40}"#,
        ),
        2 => reply(503, &[("retry-after", "1")], ""),
        _ => reply(200, &[], r#"{"status":"Succeeded"}"#),
    })
    .await;
    stack(LongRunningLayer::new())
        .oneshot(request(Method::POST, &server.url("/start"), ""))
        .await
        .unwrap();

    let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = output.lines().collect();
    let running: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("operation running"))
        .collect();
    assert_eq!(
        running.len(),
        2,
        "one event after the initial response and one per running poll:\n{output}"
    );
    // The span names the operation on every event inside it.
    for line in &running {
        assert!(line.contains("long_running_operation{"), "{line}");
        assert!(
            line.contains("method=POST") && line.contains("monitor=\"azure-async-operation\""),
            "{line}"
        );
    }
    assert!(running[0].contains("delay_ms=2000"), "{}", running[0]);
    assert!(
        running[1].contains("state=\"Running\"")
            && running[1].contains("percent_complete=40")
            && running[1].contains("http_status=200")
            && running[1].contains("delay_ms=3000"),
        "{}",
        running[1]
    );
    let warning = lines
        .iter()
        .find(|l| l.contains("WARN"))
        .expect("a warning for the 503");
    assert!(
        warning.contains("transient failure") && warning.contains("attempt=1"),
        "{warning}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("operation finished") && l.contains("polls=3")),
        "{output}"
    );
}
