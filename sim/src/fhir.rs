//! HL7 FHIR Bulk Data Access (v2.0.0): an export's kick-off and status endpoint, as a server
//! answers them.

use bytes::Bytes;
use http::header::{CONTENT_LOCATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

use crate::instance::{insert, json, Instance};
use crate::odata::prefers_async;
use crate::scenario::Ending;

/// The header a status answer reports progress in, as free text.
const X_PROGRESS: HeaderName = HeaderName::from_static("x-progress");

impl Instance {
    /// The kick-off's answer: `202` + `Content-Location` and an informational `OperationOutcome`
    /// (the IG allows one), or `400` without `Prefer: respond-async`, which the IG requires.
    pub(crate) fn fhir_initial(&self, request: &HeaderMap) -> Response<Full<Bytes>> {
        if !prefers_async(request) {
            return outcome(
                StatusCode::BAD_REQUEST,
                "error",
                "required",
                "the kick-off needs Prefer: respond-async",
            );
        }
        let mut response = outcome(
            StatusCode::ACCEPTED,
            "information",
            "informational",
            "the export has started",
        );
        insert(&mut response, CONTENT_LOCATION, &self.monitor_url(false));
        self.hint(&mut response);
        response
    }

    /// The status endpoint: `GET` asks for the status, `DELETE` cancels the export.
    pub(crate) fn fhir_status(&mut self, method: &Method) -> Response<Full<Bytes>> {
        if self.canceled {
            return gone();
        }
        if method == Method::DELETE {
            if !self.scenario.cancelable {
                return outcome(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "error",
                    "not-supported",
                    "this export cannot be canceled",
                );
            }
            self.canceled = !self.scenario.completes_when_canceled;
            return outcome(
                StatusCode::ACCEPTED,
                "information",
                "informational",
                "the export is being deleted",
            );
        }
        if method != Method::GET {
            return outcome(
                StatusCode::METHOD_NOT_ALLOWED,
                "error",
                "not-supported",
                "GET or DELETE",
            );
        }
        if self.advance() {
            let mut response = json(StatusCode::ACCEPTED, String::new());
            response.headers_mut().remove(CONTENT_TYPE);
            let progress = if self.scenario.percent_complete {
                format!("{}% complete", self.percent().round())
            } else {
                "in progress".into()
            };
            insert(&mut response, X_PROGRESS, &progress);
            self.hint(&mut response);
            return response;
        }
        match self.ending() {
            Ending::Succeeded => json(StatusCode::OK, self.manifest()),
            Ending::Failed { code, message } => {
                outcome(StatusCode::INTERNAL_SERVER_ERROR, "error", &code, &message)
            }
            // The IG has no "canceled" report: a job the server dropped is gone, as a deleted one.
            Ending::Canceled => gone(),
        }
    }

    /// The complete export's manifest: the scenario's resource body, else one NDJSON file.
    fn manifest(&self) -> String {
        self.scenario.resource_body.clone().unwrap_or_else(|| {
            format!(
                r#"{{"transactionTime":"2024-01-01T00:00:00Z","request":{},"requiresAccessToken":true,"output":[{{"type":"Patient","url":{}}}],"error":[]}}"#,
                serde_json::Value::from(self.url(&self.scenario.path, "")),
                serde_json::Value::from(self.url(&format!("/files/{}/Patient.ndjson", self.id), ""))
            )
        })
    }
}

/// What the status URL of a deleted export answers (the IG: `404` with an `OperationOutcome`).
fn gone() -> Response<Full<Bytes>> {
    outcome(
        StatusCode::NOT_FOUND,
        "error",
        "not-found",
        "no export at this status URL",
    )
}

/// A FHIR `OperationOutcome` with one issue.
fn outcome(
    status: StatusCode,
    severity: &str,
    code: &str,
    diagnostics: &str,
) -> Response<Full<Bytes>> {
    let body = format!(
        r#"{{"resourceType":"OperationOutcome","issue":[{{"severity":{},"code":{},"diagnostics":{}}}]}}"#,
        serde_json::Value::from(severity),
        serde_json::Value::from(code),
        serde_json::Value::from(diagnostics)
    );
    let mut response = json(status, body);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/fhir+json"),
    );
    response
}
