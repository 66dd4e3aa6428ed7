//! The Asynchronous Request-Reply pattern, as the Azure Architecture Center's sample answers:
//! `202` with the status URL, a pending `200` (or a `202`) while the work runs, and a redirect to
//! the result (or the result itself) when it is done.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use crate::instance::{insert, json, Instance};
use crate::scenario::{Ending, Scenario};

/// The request–reply options of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    /// `202` while running, instead of the sample's pending `200`.
    pub(crate) accepted_while_running: bool,
    /// The status of the redirect to the result; `None`: the result itself.
    pub(crate) redirect: Option<StatusCode>,
    /// The origin the redirect names, instead of the simulator's own.
    pub(crate) result_origin: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            accepted_while_running: false,
            redirect: Some(StatusCode::FOUND),
            result_origin: None,
        }
    }
}

impl Scenario {
    /// For [`Monitor::AsyncRequestReply`](crate::Monitor::AsyncRequestReply): how the status
    /// URL answers once the work is done — a redirect with this status (`302 Found`, as the
    /// sample's `RedirectResult`, or `303 See Other`) to the result at `/results/{n}` (with a
    /// SAS-like query), or with `None` a `200` carrying the result itself (the
    /// [`resource_body`](Self::resource_body)). Default `302`.
    ///
    /// The simulated pattern: the request answers `202 Accepted` with `Location:
    /// /api/RequestStatus/{n}` (absolute unless [`relative_monitor`](Self::relative_monitor)),
    /// the scenario's `Retry-After`, and a text body. The status URL answers `200`
    /// `{"status":"In progress","Location":…}` while running (or `202` with `Location`, see
    /// [`accepted_while_running`](Self::accepted_while_running)), then the redirect or the
    /// result; a [`Ending::Failed`] or [`Ending::Canceled`] ending is a `409 Conflict` with
    /// `{"error":{"code","message"}}`. `/results/{n}` answers `200` with the result.
    pub fn result_redirect(mut self, status: Option<StatusCode>) -> Self {
        self.reply.redirect = status;
        self
    }

    /// For [`Monitor::AsyncRequestReply`](crate::Monitor::AsyncRequestReply): the redirect to
    /// the result names this origin (`http://localhost:8080`) instead of the simulator's own,
    /// as a SAS URL names blob storage: another simulator, or this one under another name.
    pub fn result_origin(mut self, origin: impl Into<String>) -> Self {
        self.reply.result_origin = Some(origin.into());
        self
    }

    /// For [`Monitor::AsyncRequestReply`](crate::Monitor::AsyncRequestReply): the status URL
    /// answers `202 Accepted` (with `Location` and the hint) while running, instead of the
    /// sample's pending `200`.
    pub fn accepted_while_running(mut self, yes: bool) -> Self {
        self.reply.accepted_while_running = yes;
        self
    }
}

impl Instance {
    pub(crate) fn reply_status_path(&self) -> String {
        format!("/api/RequestStatus/{}", self.id)
    }

    /// The request's answer: `202`, `Location`, and the sample's text.
    pub(crate) fn reply_start(&self) -> Response<Full<Bytes>> {
        let status = self.url(&self.reply_status_path(), "");
        let mut response = text(
            StatusCode::ACCEPTED,
            format!("Request Accepted for Processing\nProxyStatus: {status}"),
        );
        insert(&mut response, LOCATION, &status);
        self.hint(&mut response);
        response
    }

    pub(crate) fn reply_status(&mut self) -> Response<Full<Bytes>> {
        let status = self.url(&self.reply_status_path(), "");
        if self.advance() {
            let mut response = if self.scenario.reply.accepted_while_running {
                let mut response = text(StatusCode::ACCEPTED, String::new());
                insert(&mut response, LOCATION, &status);
                response
            } else {
                json(
                    StatusCode::OK,
                    format!(
                        r#"{{"status":"In progress","Location":{}}}"#,
                        serde_json::Value::from(status)
                    ),
                )
            };
            self.hint(&mut response);
            return response;
        }
        let (code, message) = match self.ending() {
            Ending::Succeeded => return self.reply_result(),
            Ending::Failed { code, message } => (code, message),
            Ending::Canceled => (
                "OperationCanceled".into(),
                "the operation was canceled".into(),
            ),
        };
        json(
            StatusCode::CONFLICT,
            format!(
                r#"{{"error":{{"code":{},"message":{}}}}}"#,
                serde_json::Value::from(code),
                serde_json::Value::from(message)
            ),
        )
    }

    fn reply_result(&self) -> Response<Full<Bytes>> {
        let Some(redirect) = self.scenario.reply.redirect else {
            return json(StatusCode::OK, self.resource());
        };
        let (path, sas) = (
            format!("/results/{}", self.id),
            "sv=2024-01-01&sr=b&sig=sim",
        );
        let target = match &self.scenario.reply.result_origin {
            Some(origin) => format!("{origin}{path}?{sas}"),
            None => self.url(&path, sas),
        };
        let mut response = text(redirect, String::new());
        insert(&mut response, LOCATION, &target);
        response
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
