//! One operation a scenario started: its state, and what it answers at each of its URLs.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;

use crate::scenario::{Completion, Ending, Monitor, RetryAfter, Scenario};
use crate::server::Route;

/// An operation in progress (or done): one per initial request that matched a scenario.
pub(crate) struct Instance {
    pub(crate) scenario: Arc<Scenario>,
    pub(crate) id: usize,
    pub(crate) started: Instant,
    pub(crate) running_answers: u32,
    pub(crate) api_version: Option<String>,
    pub(crate) origin: String,
    pub(crate) canceled: bool,
    /// Why the instance was terminated, as a Durable Functions terminate request said.
    pub(crate) reason: Option<String>,
}

impl Instance {
    /// The terminal status as spelled: the scenario's spelling, unless the operation was
    /// canceled.
    fn terminal_text(&self) -> String {
        if self.canceled {
            "Canceled".into()
        } else {
            self.scenario.terminal_text()
        }
    }

    pub(crate) fn monitor_path(&self, moved: bool) -> String {
        let suffix = if moved { "-moved" } else { "" };
        format!("{}/{}{}", self.scenario.monitor_prefix, self.id, suffix)
    }

    pub(crate) fn url(&self, path: &str, extra_query: &str) -> String {
        let mut query = extra_query.to_owned();
        if let Some(version) = &self.api_version {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str("api-version=");
            query.push_str(version);
        }
        let origin = if self.scenario.relative_monitor {
            ""
        } else {
            &self.origin
        };
        if query.is_empty() {
            format!("{origin}{path}")
        } else {
            format!("{origin}{path}?{query}")
        }
    }

    pub(crate) fn monitor_url(&self, moved: bool) -> String {
        let query = if self.scenario.monitor == Monitor::Location {
            "monitor=true"
        } else {
            ""
        };
        self.url(&self.monitor_path(moved), query)
    }

    fn monitor_header(&self) -> HeaderName {
        match self.scenario.monitor {
            Monitor::OperationLocation => HeaderName::from_static("operation-location"),
            Monitor::Location => LOCATION,
            _ => HeaderName::from_static("azure-asyncoperation"),
        }
    }

    /// Counts one status request and says whether the operation is still running.
    pub(crate) fn advance(&mut self) -> bool {
        if self.canceled {
            return false;
        }
        let running = match self.scenario.completion {
            Completion::AfterPolls(polls) => self.running_answers < polls,
            Completion::AfterTime(duration) => self.started.elapsed() < duration,
        };
        if running {
            self.running_answers += 1;
        }
        running
    }

    pub(crate) fn percent(&self) -> f64 {
        match self.scenario.completion {
            Completion::AfterPolls(polls) => {
                f64::from(self.running_answers) * 100.0 / f64::from(polls + 1)
            }
            Completion::AfterTime(duration) => {
                (self.started.elapsed().as_secs_f64() / duration.as_secs_f64() * 100.0).min(99.0)
            }
        }
    }

    pub(crate) fn resource(&self) -> String {
        self.scenario.resource_body.clone().unwrap_or_else(|| {
            format!(
                r#"{{"id":"{}","name":"resource-{}","properties":{{"provisioningState":"Succeeded"}}}}"#,
                self.scenario.path, self.id
            )
        })
    }

    pub(crate) fn initial(&self) -> Response<Full<Bytes>> {
        let scenario = &self.scenario;
        let mut response = match scenario.monitor {
            Monitor::Resource => {
                let body = scenario.initial_body.clone().unwrap_or_else(|| {
                    format!(
                        r#"{{"id":"{}","properties":{{"provisioningState":"{}"}}}}"#,
                        scenario.path, scenario.running_status
                    )
                });
                json(scenario.initial_status.unwrap_or(StatusCode::CREATED), body)
            }
            _ => {
                let default_status =
                    if scenario.method == Method::PUT && scenario.monitor != Monitor::Location {
                        StatusCode::CREATED
                    } else {
                        StatusCode::ACCEPTED
                    };
                let mut response = json(
                    scenario.initial_status.unwrap_or(default_status),
                    scenario.initial_body.clone().unwrap_or_default(),
                );
                insert(
                    &mut response,
                    self.monitor_header(),
                    &self.monitor_url(false),
                );
                if scenario.location_header && scenario.monitor != Monitor::Location {
                    insert(
                        &mut response,
                        LOCATION,
                        &self.url(&format!("/results/{}", self.id), ""),
                    );
                }
                response
            }
        };
        self.hint(&mut response);
        response
    }

    pub(crate) fn hint(&self, response: &mut Response<Full<Bytes>>) {
        let (name, value) = match self.scenario.retry_after {
            RetryAfter::None => return,
            RetryAfter::Seconds(s) => (RETRY_AFTER, s.to_string()),
            RetryAfter::Millis(ms) => (HeaderName::from_static("retry-after-ms"), ms.to_string()),
            RetryAfter::XMsMillis(ms) => (
                HeaderName::from_static("x-ms-retry-after-ms"),
                ms.to_string(),
            ),
            RetryAfter::HttpDate(after) => (
                RETRY_AFTER,
                httpdate::fmt_http_date(SystemTime::now() + after),
            ),
        };
        insert(response, name, &value);
    }

    /// The initial answer of a protocol whose initial request's headers decide it (OData, FHIR
    /// Bulk Data: `Prefer: respond-async`); `None` for the others.
    pub(crate) fn start(&mut self, request: &HeaderMap) -> Option<Response<Full<Bytes>>> {
        match self.scenario.monitor {
            Monitor::ODataAsync => Some(self.odata_initial(request)),
            Monitor::FhirBulkData => Some(self.fhir_initial(request)),
            _ => None,
        }
    }

    /// The answer of a monitor that takes more than a GET (a `DELETE` cancels; the poll's
    /// headers choose the form): `None` for the others.
    pub(crate) fn answer_request(
        &mut self,
        method: &Method,
        request: &HeaderMap,
    ) -> Option<Response<Full<Bytes>>> {
        match self.scenario.monitor {
            Monitor::ODataAsync => Some(self.odata_monitor(method, request)),
            Monitor::FhirBulkData => Some(self.fhir_status(method)),
            _ => None,
        }
    }

    pub(crate) fn answer(&mut self, route: Route) -> Response<Full<Bytes>> {
        match route {
            _ if crate::job::is_job(self.scenario.monitor) => crate::job::answer(self, route),
            Route::Cancel => self.answer_cancel(),
            Route::Monitor if self.scenario.monitor == Monitor::GoogleOperation => {
                let running = self.advance();
                self.google_operation(!running)
            }
            Route::Monitor if self.scenario.monitor == Monitor::AsyncRequestReply => {
                self.reply_status()
            }
            Route::Monitor => self.answer_monitor(),
            Route::Result => json(StatusCode::OK, self.resource()),
            Route::Resource if self.scenario.monitor == Monitor::Resource => self.answer_resource(),
            Route::Resource => json(StatusCode::OK, self.resource()),
        }
    }

    /// The ending the operation reaches: its scenario's, unless it was canceled.
    pub(crate) fn ending(&self) -> Ending {
        if self.canceled {
            Ending::Canceled
        } else {
            self.scenario.ending.clone()
        }
    }

    fn answer_cancel(&mut self) -> Response<Full<Bytes>> {
        let google = self.scenario.monitor == Monitor::GoogleOperation;
        if !self.scenario.cancelable {
            return if google {
                json(
                    StatusCode::NOT_IMPLEMENTED,
                    r#"{"error":{"code":501,"message":"this operation cannot be cancelled","status":"UNIMPLEMENTED"}}"#.into(),
                )
            } else {
                json(
                    StatusCode::NOT_FOUND,
                    r#"{"error":{"code":"NotFound","message":"no cancel for this operation"}}"#
                        .into(),
                )
            };
        }
        self.canceled = !self.scenario.completes_when_canceled;
        if google {
            json(StatusCode::OK, "{}".into())
        } else {
            json(StatusCode::NO_CONTENT, String::new())
        }
    }

    /// `projects/p/locations/l/operations/op-{id}`, under the collection's parent.
    pub(crate) fn google_name(&self) -> String {
        let path = self.scenario.path.trim_start_matches('/');
        let after_version = path.split_once('/').map_or("", |(_, rest)| rest);
        match after_version.rsplit_once('/') {
            Some((parent, _collection)) => format!("{parent}/operations/op-{}", self.id),
            None => format!("operations/op-{}", self.id),
        }
    }

    /// The operation as a Google API answers it.
    pub(crate) fn google_operation(&self, done: bool) -> Response<Full<Bytes>> {
        let name = serde_json::Value::from(self.google_name());
        let mut body = format!(r#"{{"name":{name}"#);
        if self.scenario.percent_complete {
            let percent = if done { 100.0 } else { self.percent() };
            body.push_str(&format!(
                r#","metadata":{{"@type":"type.googleapis.com/google.cloud.sim.v1.OperationMetadata","progressPercent":{percent}}}"#
            ));
        }
        if done {
            body.push_str(r#","done":true"#);
            match self.ending() {
                Ending::Succeeded => body.push_str(&format!(r#","response":{}"#, self.resource())),
                Ending::Failed { code, message } => body.push_str(&format!(
                    r#","error":{{"code":{},"message":{}}}"#,
                    code.parse::<i32>().unwrap_or(2),
                    serde_json::Value::from(message)
                )),
                Ending::Canceled => {
                    body.push_str(r#","error":{"code":1,"message":"the operation was cancelled"}"#)
                }
            }
        }
        body.push('}');
        let mut response = json(StatusCode::OK, body);
        if !done {
            self.hint(&mut response);
        }
        response
    }

    fn error_json(&self) -> String {
        match &self.ending() {
            Ending::Failed { code, message } => format!(
                r#"{{"code":{},"message":{}}}"#,
                serde_json::Value::from(code.as_str()),
                serde_json::Value::from(message.as_str())
            ),
            Ending::Canceled => {
                r#"{"code":"OperationCanceled","message":"the operation was canceled"}"#.into()
            }
            Ending::Succeeded => String::new(),
        }
    }

    fn answer_monitor(&mut self) -> Response<Full<Bytes>> {
        let first_running = self.running_answers == 0;
        let running = self.advance();
        if self.scenario.monitor == Monitor::Location {
            if running {
                let mut response = json(StatusCode::ACCEPTED, String::new());
                self.hint(&mut response);
                if first_running && self.scenario.moves_monitor {
                    insert(&mut response, LOCATION, &self.monitor_url(true));
                }
                return response;
            }
            return match self.ending() {
                Ending::Succeeded => json(StatusCode::OK, self.resource()),
                _ => json(
                    StatusCode::CONFLICT,
                    format!(r#"{{"error":{}}}"#, self.error_json()),
                ),
            };
        }
        let mut body = format!(
            r#"{{"id":"{}","name":"{}""#,
            self.monitor_path(false),
            self.id
        );
        let status = if running {
            self.scenario.running_status.clone()
        } else {
            self.terminal_text()
        };
        body.push_str(&format!(r#","status":{}"#, serde_json::Value::from(status)));
        if self.scenario.percent_complete {
            let percent = if running { self.percent() } else { 100.0 };
            body.push_str(&format!(r#","percentComplete":{percent}"#));
        }
        if !running {
            if self.ending() != Ending::Succeeded {
                body.push_str(&format!(r#","error":{}"#, self.error_json()));
            } else if self.scenario.resource_location {
                body.push_str(&format!(
                    r#","resourceLocation":"{}""#,
                    self.url(&format!("/resources/{}", self.id), "")
                ));
            }
        }
        body.push('}');
        let mut response = json(StatusCode::OK, body);
        if running {
            self.hint(&mut response);
            if first_running && self.scenario.moves_monitor {
                insert(
                    &mut response,
                    self.monitor_header(),
                    &self.monitor_url(true),
                );
            }
        }
        response
    }

    fn answer_resource(&mut self) -> Response<Full<Bytes>> {
        let running = self.advance();
        let state = if running {
            self.scenario.running_status.clone()
        } else {
            self.terminal_text()
        };
        let error = if !running && self.ending() != Ending::Succeeded {
            format!(r#","error":{}"#, self.error_json())
        } else {
            String::new()
        };
        let body = format!(
            r#"{{"id":"{}","name":"resource-{}","properties":{{"provisioningState":{}}}{}}}"#,
            self.scenario.path,
            self.id,
            serde_json::Value::from(state),
            error
        );
        let mut response = json(StatusCode::OK, body);
        if running {
            self.hint(&mut response);
        }
        response
    }
}

pub(crate) fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) fn insert(response: &mut Response<Full<Bytes>>, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}
