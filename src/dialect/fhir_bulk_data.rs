//! [`FhirBulkData`]: HL7 FHIR Bulk Data Access exports (v2.0.0), kick-off and status request
//! (PROTOCOL §16).

use std::borrow::Cow;
use std::fmt;

use http::header::{CONTENT_LOCATION, RETRY_AFTER};
use http::{response, HeaderMap, HeaderName, Method, StatusCode, Uri};
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::dialect::{
    is_transient, CancelRequest, Dialect, ErrorDetail, Follow, InitialHead, Observer, PollAt,
    RequestHead, StatusHead, Verdict,
};
use crate::protocol::headers;
use crate::protocol::json::{detail_text, text};

/// HL7 FHIR Bulk Data Access exports (v2.0.0): a kick-off (`GET [base]/$export`, or a `POST`
/// of `Parameters`) with `Prefer: respond-async` answers `202` with a `Content-Location`, the
/// status URL; it answers `202` (with `X-Progress` and `Retry-After`) while the export runs, and
/// `200` with the JSON manifest when it is done.
///
/// - The layer adds `Prefer: respond-async` to the kick-off, merged with the preferences it has.
///   A kick-off is often a `GET`: it is followed as any other request is.
/// - The `202` of the kick-off may carry an informational `OperationOutcome`: it is no failure.
/// - The final response is the status URL's `200`, the manifest, as sent.
/// - `X-Progress` (free text) is the operation's [`state`](crate::OperationInfo::state), its
///   first [`MAX_PROGRESS`] bytes (cut at a character boundary); a leading percentage
///   (`"40% complete"`) is also its [`percent_complete`](crate::OperationInfo::percent_complete).
/// - `408`, `429`, and a `503` with a `Retry-After`, are a poll to repeat (within the layer's
///   retry bounds) whatever their body says: the IG answers a client that polls too often with
///   `429` and, optionally, an `OperationOutcome` of any code (servers send `processing` or
///   `too-costly`).
/// - Any other `4xx`/`5xx` with an `OperationOutcome` is [`Failed`](crate::ErrorKind::Failed):
///   [`Error::code`](crate::Error::code) is `issue[0].code`,
///   [`Error::message`](crate::Error::message) its `diagnostics` (else `details.text`). An
///   `issue[0].code` that says "try later" (`transient`, `lock-error`, `no-store`, `timeout`,
///   `throttled`: the IG's "transient code") is a poll to repeat too. Without an
///   `OperationOutcome`, 500, 502, 503 and 504 are repeated; anything else is
///   [`UnexpectedStatus`](crate::ErrorKind::UnexpectedStatus).
/// - A caller that asks for `Prefer: respond-async, separate-export-status` (IG 3.0.0) gets a
///   `200` to every status request, the export's own status in its `X-Export-Status`
///   (`202 Accepted` while it runs): a `200` with an `X-Export-Status` is judged as the status
///   that header starts with would be (the progress of a `202`, the manifest of a `200`, the
///   `OperationOutcome` of a `4xx`/`5xx`, the error then carrying the `200` and its headers),
///   and one that does not start with a status code is
///   [`MalformedStatus`](crate::ErrorKind::MalformedStatus).
/// - Cancel: `DELETE` of the status URL (`202`), noted in the monitor (it travels in resume
///   tokens). The status URL answers `404` (or `410`) once the export is deleted: after an
///   accepted cancel that is [`Canceled`](crate::ErrorKind::Canceled), with the
///   `OperationOutcome`'s code and message.
/// - A `404` or `410` without an accepted cancel stays a failure as above (`Failed` with its
///   `not-found`, say): the IG answers them for an export whose files expired, that never
///   existed, or that another client deleted, and nothing in the answer tells which, so it is
///   never taken as canceled on a guess.
///
/// ```
/// use tower_lro::{FhirBulkData, LongRunningLayer};
///
/// let layer = LongRunningLayer::with_dialect(FhirBulkData::new());
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FhirBulkData {
    _private: (),
}

impl FhirBulkData {
    /// The dialect.
    pub fn new() -> Self {
        FhirBulkData::default()
    }
}

/// What the [`FhirBulkData`] dialect remembers about an export beyond its status URL: whether
/// the server accepted a cancel for it (kept in tokens as `"canceling":true`, absent otherwise:
/// a token of `{}` reads as one without).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FhirBulkDataMonitor {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    canceling: bool,
}

/// The most of an `X-Progress` kept as the operation's state: a server may send anything there,
/// on every poll.
pub const MAX_PROGRESS: usize = 256;

/// `X-Progress`: the status request's progress report, free text.
const X_PROGRESS: HeaderName = HeaderName::from_static("x-progress");

/// `X-Export-Status`: with `Prefer: separate-export-status`, the export's own status on a
/// status answer that is always `200` (`202 Accepted` while it runs).
const X_EXPORT_STATUS: HeaderName = HeaderName::from_static("x-export-status");

impl Dialect for FhirBulkData {
    type Monitor = FhirBulkDataMonitor;

    fn name(&self) -> &'static str {
        "fhir-bulk-data"
    }

    fn prepare(&self, _: &Method, headers: &mut HeaderMap) {
        headers::prefer_respond_async(headers);
    }

    fn initial_head<'a>(
        &self,
        _: &RequestHead<'_>,
        response: &'a response::Parts,
    ) -> InitialHead<'a, FhirBulkDataMonitor> {
        match response.headers.get(CONTENT_LOCATION) {
            Some(status_url) if response.status == StatusCode::ACCEPTED => InitialHead::Follow(
                Follow::new(FhirBulkDataMonitor::default(), PollAt::url(status_url)),
            ),
            _ => InitialHead::NotLongRunning,
        }
    }

    fn status_head<'a>(
        &self,
        monitor: &FhirBulkDataMonitor,
        response: &'a response::Parts,
    ) -> StatusHead<'a> {
        match export_status(response) {
            Ok(status) => judge_head(status, monitor, &response.headers),
            Err(why) => StatusHead::Judged(Verdict::Malformed(why)),
        }
    }

    fn status_body<'a>(
        &self,
        _: &mut FhirBulkDataMonitor,
        _: &RequestHead<'_>,
        response: &'a response::Parts,
        body: &'a [u8],
        seen: &mut Observer<'_>,
    ) -> Verdict<'a> {
        let status = match export_status(response) {
            Ok(status) => status,
            Err(why) => return Verdict::Malformed(why),
        };
        if status == StatusCode::ACCEPTED {
            if let Some(progress) = response.headers.get(X_PROGRESS) {
                let text = progress_text(progress.as_bytes());
                seen.state(text);
                if let Some(percent) = leading_percent(text) {
                    seen.percent_complete(percent);
                }
            }
            return Verdict::Running { moved: None };
        }
        failure(status, &response.headers, body)
    }

    fn error_detail<'a>(&self, headers: &'a HeaderMap, body: Option<&'a [u8]>) -> ErrorDetail<'a> {
        match body.and_then(first_issue) {
            Some(issue) => ErrorDetail::default().with_detail(issue.code, issue.message),
            // A gateway's answer, say: the common envelope, if it has one.
            None => crate::dialect::envelope::envelope(headers, body),
        }
    }

    fn cancel(&self, _: &FhirBulkDataMonitor, polled: &Uri) -> Option<CancelRequest> {
        let url = polled.path_and_query().map_or("/", |p| p.as_str());
        Some(CancelRequest::new(Method::DELETE, url))
    }

    fn cancel_accepted(&self, monitor: &mut FhirBulkDataMonitor) {
        monitor.canceling = true;
    }
}

/// The status a status answer stands for: its own, or, on a `200` that carries one, the
/// `X-Export-Status` the caller asked for with `Prefer: separate-export-status` (IG 3.0.0). An
/// `X-Export-Status` that does not start with a status code cannot be judged.
fn export_status(response: &response::Parts) -> Result<StatusCode, String> {
    let Some(value) = response.headers.get(X_EXPORT_STATUS) else {
        return Ok(response.status);
    };
    if response.status != StatusCode::OK {
        return Ok(response.status);
    }
    let leading = value
        .as_bytes()
        .split(u8::is_ascii_whitespace)
        .find(|part| !part.is_empty())
        .unwrap_or_default();
    match StatusCode::from_bytes(leading) {
        Ok(status) => Ok(status),
        Err(_) => Err(format!(
            "X-Export-Status {:?} does not start with a status code",
            String::from_utf8_lossy(&value.as_bytes()[..value.len().min(MAX_PROGRESS)])
        )),
    }
}

/// A status answer judged by the status it stands for ([`export_status`]) and its headers.
fn judge_head<'a>(
    status: StatusCode,
    monitor: &FhirBulkDataMonitor,
    headers: &HeaderMap,
) -> StatusHead<'a> {
    match status.as_u16() {
        // The export is gone after the cancel its monitor noted; the layer reads the
        // `OperationOutcome` for the code and message.
        404 | 410 if monitor.canceling => {
            StatusHead::Judged(Verdict::Canceled(ErrorDetail::default()))
        }
        // Read for its head's progress, which only `status_body` may record; it is empty.
        202 => StatusHead::ReadBody,
        200 => StatusHead::Judged(Verdict::Done),
        _ if is_retry_later(status, headers) => StatusHead::Judged(Verdict::Transient),
        // An `OperationOutcome` says whether to try again.
        400..=599 => StatusHead::ReadBody,
        _ => StatusHead::Judged(Verdict::Unexpected),
    }
}

/// Whether the status alone says "come back later", whatever the `OperationOutcome` says:
/// "too many requests" and "timed out" (the IG's `429` carries one optionally, with any code:
/// servers send `processing` or `too-costly`), and an unavailable server that says when.
fn is_retry_later(status: StatusCode, headers: &HeaderMap) -> bool {
    match status.as_u16() {
        408 | 429 => true,
        503 => headers.contains_key(RETRY_AFTER),
        _ => false,
    }
}

/// What a `4xx`/`5xx` status answer says: its status when that says "later"
/// ([`is_retry_later`]), else its `OperationOutcome`; without one, the status.
fn failure<'a>(status: StatusCode, headers: &HeaderMap, body: &'a [u8]) -> Verdict<'a> {
    if is_retry_later(status, headers) {
        return Verdict::Transient;
    }
    match first_issue(body) {
        Some(issue) if issue.code.as_deref().is_some_and(is_transient_code) => Verdict::Transient,
        Some(issue) => {
            Verdict::Failed(ErrorDetail::default().with_detail(issue.code, issue.message))
        }
        None if is_transient(status) => Verdict::Transient,
        None => Verdict::Unexpected,
    }
}

/// The IssueType codes that mean "try again later": `transient` and those of its children that
/// say so. `exception` and `incomplete` (children too) read as the export's outcome instead:
/// repeating them would only delay the failure.
fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "transient" | "lock-error" | "no-store" | "timeout" | "throttled"
    )
}

/// `X-Progress` as text: its first [`MAX_PROGRESS`] bytes, cut at a character boundary, and the
/// bytes before the first that is not UTF-8.
fn progress_text(bytes: &[u8]) -> &str {
    let bytes = &bytes[..bytes.len().min(MAX_PROGRESS)];
    match std::str::from_utf8(bytes) {
        Ok(text) => text.trim(),
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()])
            .unwrap_or_default()
            .trim(),
    }
}

/// A percentage the progress text starts with (`"40% complete"`, `"12.5 %"`), within 0–100.
fn leading_percent(text: &str) -> Option<f64> {
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(digits);
    if number.is_empty() || !rest.trim_start().starts_with('%') {
        return None;
    }
    number
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=100.0).contains(p))
}

/// The first issue of an `OperationOutcome`: its code, and its `diagnostics` (else its
/// `details.text`) as the message. Empty or blank texts are absent.
struct Issue<'a> {
    code: Option<Cow<'a, str>>,
    message: Option<Cow<'a, str>>,
}

/// `issue[0]` of a body that is an `OperationOutcome`; `None` for any other body.
fn first_issue(body: &[u8]) -> Option<Issue<'_>> {
    #[derive(Deserialize)]
    struct Outcome<'a> {
        #[serde(rename = "resourceType", borrow)]
        resource_type: &'a RawValue,
        #[serde(borrow, default)]
        issue: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct RawIssue<'a> {
        #[serde(borrow, default)]
        code: Option<&'a RawValue>,
        #[serde(borrow, default)]
        diagnostics: Option<&'a RawValue>,
        #[serde(borrow, default)]
        details: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Concept<'a> {
        #[serde(borrow, default)]
        text: Option<&'a RawValue>,
    }
    let outcome: Outcome<'_> = serde_json::from_slice(body).ok()?;
    if text(outcome.resource_type).as_deref() != Some("OperationOutcome") {
        return None;
    }
    let first = match outcome.issue {
        Some(issues) => serde_json::from_str::<First<'_>>(issues.get()).ok()?.0,
        None => None,
    };
    let Some(raw) = first else {
        return Some(Issue {
            code: None,
            message: None,
        });
    };
    let issue: RawIssue<'_> = serde_json::from_str(raw.get()).ok()?;
    let details = issue
        .details
        .and_then(|raw| serde_json::from_str::<Concept<'_>>(raw.get()).ok())
        .and_then(|concept| concept.text)
        .and_then(text);
    Some(Issue {
        code: detail_text(issue.code.and_then(text)),
        message: detail_text(issue.diagnostics.and_then(text)).or(detail_text(details)),
    })
}

/// The first element of a JSON array, the others skipped unread.
struct First<'a>(Option<&'a RawValue>);

impl<'de> Deserialize<'de> for First<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FirstVisitor;
        impl<'de> Visitor<'de> for FirstVisitor {
            type Value = First<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<&'de RawValue>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        deserializer.deserialize_seq(FirstVisitor)
    }
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;
    use crate::dialect::table;
    use crate::dialect::testing::{self, Recorder};

    const KICK_OFF: &str = "https://fhir.example/r4/$export?_type=Patient";

    type Headers<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn a_202_with_a_content_location_is_followed_whatever_the_method() -> Result<(), http::Error> {
        let fhir = FhirBulkData::new();
        for (method, status, headers, expected) in [
            (
                Method::GET,
                202,
                &[("content-location", "https://fhir.example/status/1")][..],
                "follow FhirBulkDataMonitor { canceling: false } ref https://fhir.example/status/1",
            ),
            (
                Method::POST,
                202,
                &[
                    ("content-location", "/status/2"),
                    ("content-type", "application/fhir+json"),
                ][..],
                "follow FhirBulkDataMonitor { canceling: false } ref /status/2",
            ),
            (Method::GET, 202, &[("location", "/status/3")][..], "pass"),
            (Method::GET, 200, &[("content-location", "/x")][..], "pass"),
            (Method::GET, 400, &[][..], "pass"),
        ] {
            let request = Request::builder()
                .method(method.clone())
                .uri(KICK_OFF)
                .body(())?;
            let response = testing::response_head(status, headers)?;
            let verdict = fhir.initial_head(&testing::request_head(&request), &response);
            assert_eq!(
                table::initial_head(&verdict),
                expected,
                "{method} {status} {headers:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn status_heads() -> Result<(), http::Error> {
        let fhir = FhirBulkData::new();
        let export = |status| [("x-export-status", status)];
        #[rustfmt::skip]
        let rows: &[(u16, Headers<'_>, &str)] = &[
            (202, &[], "read"),
            (200, &[], "done"),
            (404, &[], "read"),
            (410, &[], "read"),
            (500, &[], "read"),
            (503, &[], "read"),
            // "Later", whatever the body says: never read.
            (408, &[], "transient"),
            (429, &[], "transient"),
            (429, &[("retry-after", "120")], "transient"),
            (503, &[("retry-after", "120")], "transient"),
            (201, &[], "unexpected"),
            (204, &[], "unexpected"),
            (303, &[], "unexpected"),
            // `Prefer: separate-export-status`: a `200` stands for its `X-Export-Status`.
            (200, &export("202 Accepted"), "read"),
            (200, &export("  202  Accepted "), "read"),
            (200, &export("200 OK"), "done"),
            (200, &export("200"), "done"),
            (200, &export("500 Internal Server Error"), "read"),
            (200, &export("404 Not Found"), "read"),
            (200, &export("429 Too Many Requests"), "transient"),
            (200, &export("408"), "transient"),
            (200, &[("x-export-status", "503"), ("retry-after", "9")], "transient"),
            (200, &export("201 Created"), "unexpected"),
            (200, &export("Accepted"), "malformed"),
            (200, &export("2O2 Accepted"), "malformed"),
            (200, &export("2020"), "malformed"),
            (200, &export("20"), "malformed"),
            (200, &export(""), "malformed"),
            // Only a `200` stands for another status.
            (202, &export("500"), "read"),
            (500, &export("202 Accepted"), "read"),
            (429, &export("200 OK"), "transient"),
        ];
        for (status, headers, expected) in rows {
            let response = testing::response_head(*status, headers)?;
            let head = fhir.status_head(&FhirBulkDataMonitor::default(), &response);
            assert_eq!(table::status_head(&head), *expected, "{status} {headers:?}");
        }
        Ok(())
    }

    #[test]
    fn once_a_cancel_is_accepted_a_gone_status_url_means_canceled() -> Result<(), http::Error> {
        let fhir = FhirBulkData::new();
        let mut monitor = FhirBulkDataMonitor::default();
        fhir.cancel_accepted(&mut monitor);
        assert!(monitor.canceling);
        for (status, headers, expected) in [
            (404, &[][..], "canceled -/-/-"),
            (410, &[][..], "canceled -/-/-"),
            (
                200,
                &[("x-export-status", "404 Not Found")][..],
                "canceled -/-/-",
            ),
            // Deleting, or done before the cancel took: as without one.
            (202, &[][..], "read"),
            (200, &[][..], "done"),
            (400, &[][..], "read"),
            (500, &[][..], "read"),
            (429, &[][..], "transient"),
            (204, &[][..], "unexpected"),
        ] {
            let response = testing::response_head(status, headers)?;
            let head = fhir.status_head(&monitor, &response);
            assert_eq!(table::status_head(&head), expected, "{status} {headers:?}");
        }
        Ok(())
    }

    #[test]
    fn the_monitor_in_tokens() -> Result<(), serde_json::Error> {
        #[rustfmt::skip]
        let rows: &[(&str, bool)] = &[
            // A token written before the field existed.
            ("{}", false),
            (r#"{"canceling":false}"#, false),
            (r#"{"canceling":true}"#, true),
            (r#"{"canceling":true,"later":1}"#, true),
        ];
        for (json, canceling) in rows {
            let monitor: FhirBulkDataMonitor = serde_json::from_str(json)?;
            assert_eq!(monitor.canceling, *canceling, "{json}");
        }
        assert!(serde_json::from_str::<FhirBulkDataMonitor>(r#"{"canceling":1}"#).is_err());
        assert_eq!(
            serde_json::to_string(&FhirBulkDataMonitor::default())?,
            "{}"
        );
        let canceling = FhirBulkDataMonitor { canceling: true };
        assert_eq!(serde_json::to_string(&canceling)?, r#"{"canceling":true}"#);
        Ok(())
    }

    /// A status answer's verdict and the state and progress it recorded.
    fn status(
        code: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(String, Option<String>, Option<f64>), http::Error> {
        let request = Request::get(KICK_OFF).body(())?;
        let response = testing::response_head(code, headers)?;
        let mut seen = Recorder::new();
        let verdict = FhirBulkData::new().status_body(
            &mut FhirBulkDataMonitor::default(),
            &testing::request_head(&request),
            &response,
            body.as_bytes(),
            &mut seen.observer(),
        );
        Ok((
            table::verdict(&verdict),
            seen.state().map(str::to_owned),
            seen.percent_complete(),
        ))
    }

    fn outcome(code: &str, diagnostics: &str) -> String {
        format!(
            r#"{{"resourceType":"OperationOutcome","issue":[{{"severity":"error","code":"{code}","diagnostics":"{diagnostics}"}}]}}"#
        )
    }

    #[test]
    fn status_answers() -> Result<(), http::Error> {
        let running = status(202, &[("x-progress", "40% complete")], "")?;
        assert_eq!(
            running,
            ("running".into(), Some("40% complete".into()), Some(40.0))
        );
        let running = status(202, &[("x-progress", "resources: Patient")], "")?;
        assert_eq!(
            running,
            ("running".into(), Some("resources: Patient".into()), None)
        );
        assert_eq!(status(202, &[], "")?, ("running".into(), None, None));
        let transient = outcome("transient", "busy");
        let throttled = outcome("throttled", "slow down");
        let failed = outcome("processing", "the export failed");
        let exception = outcome("exception", "boom");
        let no_code = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","details":{"text":"from details"}}]}"#;
        let both = r#"{"resourceType":"OperationOutcome","issue":[{"code":"invalid","diagnostics":"diag","details":{"text":"det"}},{"code":"transient"}]}"#;
        let no_issue = r#"{"resourceType":"OperationOutcome"}"#;
        let not_outcome = r#"{"resourceType":"Bundle","issue":[{"code":"transient"}]}"#;
        #[rustfmt::skip]
        let rows: &[(u16, &str, &str)] = &[
            (500, &transient, "transient"),
            (429, &throttled, "transient"),
            (400, &transient, "transient"),
            (500, &failed, "failed -/processing/the export failed"),
            (500, &exception, "failed -/exception/boom"),
            (404, &outcome("not-found", "gone"), "failed -/not-found/gone"),
            (500, no_code, "failed -/-/from details"),
            // Only the first issue speaks; `diagnostics` before `details.text`.
            (400, both, "failed -/invalid/diag"),
            (500, no_issue, "failed -/-/-"),
            // Without an OperationOutcome, the status decides.
            (503, not_outcome, "transient"),
            (502, "<html>bad gateway</html>", "transient"),
            (500, "", "transient"),
            (401, "", "unexpected"),
            (404, "not json", "unexpected"),
            (400, r#"{"resourceType":"OperationOutcome","issue":"x"}"#, "unexpected"),
        ];
        for (code, body, expected) in rows {
            assert_eq!(status(*code, &[], body)?.0, *expected, "{code} {body}");
        }
        Ok(())
    }

    #[test]
    fn later_by_its_status_whatever_the_outcome_says() -> Result<(), http::Error> {
        let processing = outcome("processing", "slow down");
        let costly = outcome("too-costly", "later");
        let retry = ("retry-after", "30");
        #[rustfmt::skip]
        let rows: &[(u16, Headers<'_>, &str, &str)] = &[
            (429, &[retry], &processing, "transient"),
            (429, &[], &costly, "transient"),
            (408, &[], &processing, "transient"),
            (503, &[retry], &processing, "transient"),
            // Unavailable without saying when: its outcome decides.
            (503, &[], &processing, "failed -/processing/slow down"),
            (400, &[retry], &processing, "failed -/processing/slow down"),
        ];
        for (code, headers, body, expected) in rows {
            assert_eq!(
                status(*code, headers, body)?.0,
                *expected,
                "{code} {headers:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_separate_export_status_is_judged_as_that_status() -> Result<(), http::Error> {
        let running = status(
            200,
            &[
                ("x-export-status", "202 Accepted"),
                ("x-progress", "40% complete"),
            ],
            "",
        )?;
        assert_eq!(
            running,
            ("running".into(), Some("40% complete".into()), Some(40.0))
        );
        let failed = outcome("processing", "the export failed");
        let transient = outcome("transient", "busy");
        let export = |status| [("x-export-status", status)];
        #[rustfmt::skip]
        let rows: &[(Headers<'_>, &str, &str)] = &[
            (&export("500 Internal Server Error"), &failed, "failed -/processing/the export failed"),
            (&export("400"), &failed, "failed -/processing/the export failed"),
            (&export("500"), &transient, "transient"),
            (&export("429 Too Many Requests"), &failed, "transient"),
            (&export("502 Bad Gateway"), "", "transient"),
            (&export("401"), "", "unexpected"),
            (&export("202"), &failed, "running"),
            (&export("Failed"), &failed, "malformed"),
            (&export("5OO"), "", "malformed"),
        ];
        for (headers, body, expected) in rows {
            assert_eq!(
                status(200, headers, body)?.0,
                *expected,
                "{headers:?} {body}"
            );
        }
        Ok(())
    }

    #[test]
    fn progress_is_bounded_and_never_panics() {
        let huge = "7".repeat(1 << 20);
        assert_eq!(progress_text(huge.as_bytes()).len(), MAX_PROGRESS);
        // A cut inside a character keeps the characters before it.
        let mut text = "a".repeat(MAX_PROGRESS - 1);
        text.push('é');
        assert_eq!(progress_text(text.as_bytes()), &text[..MAX_PROGRESS - 1]);
        assert_eq!(progress_text(b"ok\xffrest"), "ok");
        assert_eq!(progress_text(b"  50%  "), "50%");
        for (text, expected) in [
            ("40% complete", Some(40.0)),
            ("12.5 % done", Some(12.5)),
            ("100%", Some(100.0)),
            ("101%", None),
            ("40 of 100", None),
            ("about 40%", None),
            ("%", None),
            ("1.2.3%", None),
            ("", None),
        ] {
            assert_eq!(leading_percent(text), expected, "{text}");
        }
    }

    #[test]
    fn a_1_mib_progress_records_its_first_bytes() -> Result<(), http::Error> {
        let huge = "x".repeat(1 << 20);
        let (verdict, state, percent) = status(202, &[("x-progress", &huge)], "")?;
        assert_eq!(verdict, "running");
        assert_eq!(state.map(|s| s.len()), Some(MAX_PROGRESS));
        assert_eq!(percent, None);
        Ok(())
    }

    #[test]
    fn error_details_come_from_the_first_issue() {
        let fhir = FhirBulkData::new();
        let headers = HeaderMap::new();
        let body = outcome("too-costly", "too many resources");
        let detail = fhir.error_detail(&headers, Some(body.as_bytes()));
        assert_eq!(
            (detail.code.as_deref(), detail.message.as_deref()),
            (Some("too-costly"), Some("too many resources"))
        );
        let blank = outcome(" ", "");
        assert_eq!(
            fhir.error_detail(&headers, Some(blank.as_bytes())),
            ErrorDetail::default()
        );
        // Not an OperationOutcome: the common envelope.
        let envelope = br#"{"error":{"code":"Gateway","message":"upstream"}}"#;
        let detail = fhir.error_detail(&headers, Some(envelope));
        assert_eq!(detail.code.as_deref(), Some("Gateway"));
        assert_eq!(fhir.error_detail(&headers, None), ErrorDetail::default());
    }

    #[test]
    fn the_kick_off_prefers_respond_async() {
        let mut headers = HeaderMap::new();
        headers.insert("prefer", "handling=lenient".parse().unwrap());
        FhirBulkData::new().prepare(&Method::GET, &mut headers);
        assert_eq!(headers["prefer"], "handling=lenient, respond-async");
    }

    #[test]
    fn cancel_deletes_the_status_url() {
        let polled: Uri = "https://fhir.example/status/1?job=7".parse().unwrap();
        let cancel = FhirBulkData::new()
            .cancel(&FhirBulkDataMonitor::default(), &polled)
            .unwrap();
        assert_eq!(cancel.method(), Method::DELETE);
        assert_eq!(cancel.url(), "/status/1?job=7");
        assert_eq!(cancel.body(), "");
    }
}
