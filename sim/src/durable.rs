//! Azure Durable Functions orchestrations through the extension's HTTP API, as its
//! `HttpApiHandler` answers: a starter's `202` with the management URLs, the status URL's `202`
//! while running and `200` (or `500`) once ended, and the terminate URL.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{Response, StatusCode, Uri};
use http_body_util::Full;

use crate::instance::{insert, json, Instance};
use crate::scenario::{Completion, Ending, Scenario};
use crate::server::Route;

/// The system key every URL of the simulated API carries as `code=`; a request without it is
/// answered `401`, as the Functions host does.
pub(crate) const SYSTEM_KEY: &str = "sim-system-key";

/// The Durable Functions options of a scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// `returnInternalServerErrorOnFailure=true` on the status URL.
    pub(crate) error_on_failure: bool,
}

impl Scenario {
    /// For [`Monitor::DurableFunctions`](crate::Monitor::DurableFunctions): the status URL
    /// carries `returnInternalServerErrorOnFailure=true`, so a failed orchestration's status
    /// answers `500` instead of `200`, as the extension does when a starter asks for it.
    ///
    /// The simulated extension: the starter answers `202` with `Location` (the
    /// `statusQueryGetUri`, `/runtime/webhooks/durabletask/instances/{id}?taskHub=…&code=…`),
    /// the scenario's `Retry-After`, and the management payload (`id`, `statusQueryGetUri`,
    /// `terminatePostUri` with its `reason={text}` placeholder, …). The status URL answers
    /// `202` `Running` (with `Location` and the hint), then `200` `Completed` with the
    /// [`resource_body`](Self::resource_body) as `output`, `Failed` with the
    /// [`Ending::Failed`] message as `output` (or `{"ErrorType": code, "ErrorMessage":
    /// message}` when the code is not empty), or `Terminated` with the reason it was
    /// terminated as `output`. `POST …/terminate?reason=…` answers `202` while the instance
    /// runs and `410 Gone` once it ended. Every URL wants `code=` the system key (else `401`).
    pub fn durable_500_on_failure(mut self, yes: bool) -> Self {
        self.durable.error_on_failure = yes;
        self
    }
}

impl Instance {
    fn durable_id(&self) -> String {
        format!("{:032x}", self.id)
    }

    pub(crate) fn durable_path(&self) -> String {
        format!(
            "/runtime/webhooks/durabletask/instances/{}",
            self.durable_id()
        )
    }

    fn durable_url(&self, suffix: &str, reason: bool) -> String {
        let mut query = String::new();
        if reason {
            query.push_str("reason={text}&");
        }
        query.push_str("taskHub=SimHub&connection=Storage&code=");
        query.push_str(SYSTEM_KEY);
        if suffix.is_empty() && self.scenario.durable.error_on_failure {
            query.push_str("&returnInternalServerErrorOnFailure=true");
        }
        self.url(&format!("{}{suffix}", self.durable_path()), &query)
    }

    /// The starter's answer: `202`, `Location`, the management payload.
    pub(crate) fn durable_start(&self) -> Response<Full<Bytes>> {
        let url =
            |suffix: &str, reason: bool| serde_json::Value::from(self.durable_url(suffix, reason));
        let status = url("", false);
        let body = format!(
            r#"{{"id":"{}","statusQueryGetUri":{status},"sendEventPostUri":{},"terminatePostUri":{},"rewindPostUri":{},"purgeHistoryDeleteUri":{},"restartPostUri":{},"suspendPostUri":{},"resumePostUri":{}}}"#,
            self.durable_id(),
            url("/raiseEvent/{eventName}", false),
            url("/terminate", true),
            url("/rewind", true),
            url("", false),
            url("/restart", false),
            url("/suspend", true),
            url("/resume", true),
        );
        let mut response = json(StatusCode::ACCEPTED, body);
        insert(&mut response, LOCATION, &self.durable_url("", false));
        self.hint(&mut response);
        response
    }

    /// The status URL's and the terminate URL's answers.
    pub(crate) fn durable_answer(&mut self, route: Route, uri: &Uri) -> Response<Full<Bytes>> {
        let query = uri.query().unwrap_or_default();
        if !form_urlencoded::parse(query.as_bytes())
            .any(|(name, value)| name == "code" && value == SYSTEM_KEY)
        {
            return json(StatusCode::UNAUTHORIZED, String::new());
        }
        match route {
            Route::Cancel => self.durable_terminate(query),
            _ => self.durable_status(),
        }
    }

    fn durable_terminate(&mut self, query: &str) -> Response<Full<Bytes>> {
        if self.canceled || !self.still_running() {
            return json(StatusCode::GONE, String::new());
        }
        self.reason = form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "reason")
            .map(|(_, reason)| reason.into_owned());
        self.canceled = !self.scenario.completes_when_canceled;
        json(StatusCode::ACCEPTED, String::new())
    }

    /// Whether the next status request would still find the instance running.
    fn still_running(&self) -> bool {
        match self.scenario.completion {
            Completion::AfterPolls(polls) => self.running_answers < polls,
            Completion::AfterTime(duration) => self.started.elapsed() < duration,
        }
    }

    fn durable_status(&mut self) -> Response<Full<Bytes>> {
        let running = self.advance();
        let (status, runtime, output) = if running {
            (StatusCode::ACCEPTED, "Running", "null".to_owned())
        } else {
            match self.ending() {
                Ending::Succeeded => (StatusCode::OK, "Completed", self.resource()),
                Ending::Failed { code, message } => {
                    let status = if self.scenario.durable.error_on_failure {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    };
                    let output = if code.is_empty() {
                        serde_json::Value::from(message).to_string()
                    } else {
                        format!(
                            r#"{{"ErrorType":{},"ErrorMessage":{},"StackTrace":null,"InnerFailure":null,"IsNonRetriable":false}}"#,
                            serde_json::Value::from(code),
                            serde_json::Value::from(message)
                        )
                    };
                    (status, "Failed", output)
                }
                Ending::Canceled => {
                    let reason = self.reason.clone().unwrap_or_default();
                    (
                        StatusCode::OK,
                        "Terminated",
                        serde_json::Value::from(reason).to_string(),
                    )
                }
            }
        };
        let body = format!(
            r#"{{"name":"Orchestration","instanceId":"{}","runtimeStatus":"{runtime}","input":null,"customStatus":null,"output":{output},"createdTime":"2024-01-01T00:00:00Z","lastUpdatedTime":"2024-01-01T00:00:00Z"}}"#,
            self.durable_id()
        );
        let mut response = json(status, body);
        if running {
            insert(&mut response, LOCATION, &self.durable_url("", false));
            self.hint(&mut response);
        }
        response.headers_mut().insert(
            CONTENT_TYPE,
            http::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        response
    }
}
