//! Entry points into the pure protocol parsers for fuzz targets and property tests. Not a stable
//! API: enabled only by the `_fuzzing` feature (a leading underscore: not for you), hidden from
//! the documentation.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, StatusCode, Uri};

use crate::dialect::azure::{rules as protocol, status, Kind};
use crate::protocol::url;

/// What a status body says: the raw `status` and its phase (`succeeded`, `failed`, `canceled`,
/// `running`), `percentComplete`, `error.code`, `error.message`, `resourceLocation`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReading {
    pub status: String,
    pub phase: &'static str,
    pub percent_complete: Option<f64>,
    pub code: Option<String>,
    pub message: Option<String>,
    pub resource_location: Option<String>,
}

/// How the layer reads a status string.
pub fn phase(status: &str) -> &'static str {
    match status::Phase::of(status) {
        status::Phase::Succeeded => "succeeded",
        status::Phase::Failed => "failed",
        status::Phase::Canceled => "canceled",
        status::Phase::Running => "running",
    }
}

/// Parses a status-monitor body; `Err` is the malformed-status reason.
pub fn status_body(body: &[u8]) -> Result<StatusReading, String> {
    let parsed = status::parse_status(body).map_err(|m| m.0)?;
    Ok(StatusReading {
        phase: phase(&parsed.status),
        status: parsed.status.into_owned(),
        percent_complete: parsed.percent_complete,
        code: parsed.error.code.map(|c| c.into_owned()),
        message: parsed.error.message.map(|m| m.into_owned()),
        resource_location: parsed.resource_location.map(|r| r.into_owned()),
    })
}

/// The `provisioningState` of a resource body; `Err` when the body is not a JSON object.
pub fn provisioning_state(body: &[u8]) -> Result<Option<String>, String> {
    status::parse_resource(body)
        .map(|r| r.provisioning_state.map(|s| s.into_owned()))
        .map_err(|m| m.0)
}

/// The wait a response's headers ask for, relative to `now`.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    crate::protocol::retry_after::retry_after(headers, || now)
}

/// Resolves and validates a monitor URL against the original request URI, as the layer does: the
/// plain same-origin path first, then the full one. `Ok((uri, cross_origin))`, or
/// `Err((is_cross_origin_rejection, reason))`.
pub fn monitor_url(
    original: &Uri,
    reference: &[u8],
    any_origin: bool,
) -> Result<(Uri, bool), (bool, String)> {
    if let Some(uri) = url::admit_plain(original, None, reference) {
        return Ok((uri, false));
    }
    monitor_url_full(original, reference, any_origin)
}

/// [`monitor_url`] through the `url` crate only, to check the plain path against.
pub fn monitor_url_full(
    original: &Uri,
    reference: &[u8],
    any_origin: bool,
) -> Result<(Uri, bool), (bool, String)> {
    let policy = if any_origin {
        url::OriginPolicy::Any
    } else {
        url::OriginPolicy::SameOrigin
    };
    let rejection = |r: url::Rejection| match r {
        url::Rejection::Invalid(why) => (false, why),
        url::Rejection::CrossOrigin(why) => (true, why),
    };
    let base = url::Base::new(original).map_err(rejection)?;
    base.admit(reference, None, &policy)
        .map(|a| (a.uri, a.cross_origin))
        .map_err(rejection)
}

/// The plain path alone: `Some` only for references it is sure about.
pub fn monitor_url_plain(original: &Uri, reference: &[u8]) -> Option<Uri> {
    url::admit_plain(original, None, reference)
}

/// Which monitor an initial response names, if any (`None` also for "read the body first").
pub fn monitor_of(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<&'static str> {
    match protocol::classify(method, status, headers, false) {
        protocol::Initial::Monitor { kind, .. } => Some(kind.as_str()),
        protocol::Initial::MaybeResource | protocol::Initial::PassThrough => None,
    }
}

/// Every built-in dialect's verdict on `body` as the initial response's (Azure's with and
/// without a monitor named by the head) and as a poll answer's body, and its `error_detail` of
/// `body` as an answer that ended an operation (Azure's and Google's each with and without a
/// blank `x-ms-error-code` header; the others under each status and content type they read); `Err` where a verdict broke a rule every dialect
/// keeps (a final response that is not the body the dialect was given cannot happen here, so the
/// rules are: a malformed verdict explains itself, and an error code or message is never empty
/// or all whitespace: such a one is absent).
pub fn dialect_verdicts(body: &[u8]) -> Result<(), String> {
    use crate::dialect::azure::{Azure, AzureMonitor};
    use crate::dialect::google::{Google, GoogleMonitor};
    use crate::dialect::testing::{request_head, response_head, Recorder};
    use crate::dialect::{Dialect, ErrorDetail, Follow, InitialBody, PollAt, Verdict};

    fn check_detail(detail: &ErrorDetail<'_>) -> Result<(), String> {
        let blank = |text: &Option<std::borrow::Cow<'_, str>>| {
            text.as_deref().is_some_and(|text| text.trim().is_empty())
        };
        if blank(&detail.code) {
            return Err(format!("an empty error code: {:?}", detail.code));
        }
        if blank(&detail.message) {
            return Err(format!("an empty error message: {:?}", detail.message));
        }
        Ok(())
    }
    fn check_verdict(verdict: &Verdict<'_>) -> Result<(), String> {
        match verdict {
            Verdict::Malformed(why) if why.is_empty() => {
                Err("a malformed verdict without why".into())
            }
            Verdict::Failed(o) | Verdict::Canceled(o) => check_detail(o),
            _ => Ok(()),
        }
    }
    fn check_initial<M>(verdict: &InitialBody<'_, M>) -> Result<(), String> {
        match verdict {
            InitialBody::Malformed(why) if why.is_empty() => {
                Err("a malformed initial body verdict without why".into())
            }
            InitialBody::Failed(o) | InitialBody::Canceled(o) => check_detail(o),
            _ => Ok(()),
        }
    }

    let request = http::Request::post("https://a.example/v1/x")
        .body(())
        .map_err(|e| e.to_string())?;
    let head = request_head(&request);
    let mut recorder = Recorder::new();
    let mut seen = recorder.observer();
    let mut google_monitor: GoogleMonitor =
        serde_json::from_str(r#"{"name":"operations/1"}"#).map_err(|e| e.to_string())?;
    for error_code in [&[][..], &[("x-ms-error-code", " ")][..]] {
        let headers = [&[("content-type", "application/json")][..], error_code].concat();
        let response = response_head(200, &headers).map_err(|e| e.to_string())?;
        let named = || {
            let monitor = AzureMonitor::from_parts(Kind::AzureAsyncOperation, None, None);
            Follow::new(monitor, PollAt::Reference(b"/op"[..].into()))
        };
        for otherwise in [None, Some(named())] {
            check_initial(
                &Azure::new().initial_body(&head, &response, body, otherwise, &mut seen),
            )?;
        }
        check_initial(&Google::new().initial_body(&head, &response, body, None, &mut seen))?;
        for kind in [
            Kind::AzureAsyncOperation,
            Kind::OperationLocation,
            Kind::Resource,
        ] {
            let mut monitor = AzureMonitor::from_parts(kind, None, None);
            check_verdict(&Azure::new().status_body(
                &mut monitor,
                &head,
                &response,
                body,
                &mut seen,
            ))?;
        }
        check_verdict(&Google::new().status_body(
            &mut google_monitor,
            &head,
            &response,
            body,
            &mut seen,
        ))?;
        check_detail(&Azure::new().error_detail(&response.headers, Some(body)))?;
        check_detail(&Google::new().error_detail(&response.headers, Some(body)))?;
    }

    /// A dialect's verdicts on `body` as an initial body, a poll answer's body (its monitor read
    /// from `state`, as a token's would be) and an ending answer's, for each status a poll body
    /// of these protocols is read under and each content type they read.
    fn check_dialect<D: Dialect>(
        dialect: &D,
        state: &str,
        head: &crate::dialect::RequestHead<'_>,
        body: &[u8],
        seen: &mut crate::dialect::Observer<'_>,
    ) -> Result<(), String> {
        let mut monitor: D::Monitor = serde_json::from_str(state).map_err(|e| e.to_string())?;
        for status in [200, 201, 202, 400, 404, 500] {
            for content_type in [
                "application/json",
                "application/http",
                "application/fhir+json",
            ] {
                let response = response_head(status, &[("content-type", content_type)])
                    .map_err(|e| e.to_string())?;
                check_initial(&dialect.initial_body(head, &response, body, None, seen))?;
                check_verdict(&dialect.status_body(&mut monitor, head, &response, body, seen))?;
                check_detail(&dialect.error_detail(&response.headers, Some(body)))?;
            }
        }
        Ok(())
    }
    check_dialect(
        &crate::dialect::durable_functions::DurableFunctions::new(),
        "{}",
        &head,
        body,
        &mut seen,
    )?;
    check_dialect(
        &crate::dialect::async_request_reply::AsyncRequestReply::new(),
        "null",
        &head,
        body,
        &mut seen,
    )?;
    check_dialect(
        &crate::dialect::odata_async::ODataAsync::new(),
        "{}",
        &head,
        body,
        &mut seen,
    )?;
    check_dialect(
        &crate::dialect::fhir_bulk_data::FhirBulkData::new(),
        "{}",
        &head,
        body,
        &mut seen,
    )?;
    let job = r#"{"id":"job-1"}"#;
    for preset in [
        crate::dialect::json_job::JsonJob::new(),
        crate::dialect::json_job::JsonJob::openai(),
        crate::dialect::json_job::JsonJob::anthropic(),
        crate::dialect::json_job::JsonJob::replicate(),
    ] {
        check_dialect(&preset, job, &head, body, &mut seen)?;
    }
    Ok(())
}

/// A whole HTTP response carried as a body (`application/http`): `Ok((status, headers, body))`
/// with the body's position in `bytes`, or the reason it is refused.
pub fn http_message(bytes: &[u8]) -> Result<(u16, HeaderMap, std::ops::Range<usize>), String> {
    let message =
        crate::protocol::http_message::parse_response(bytes).map_err(|e| e.to_string())?;
    let start = message.body.as_ptr() as usize - bytes.as_ptr() as usize;
    Ok((
        message.status.as_u16(),
        message.headers,
        start..start + message.body.len(),
    ))
}
