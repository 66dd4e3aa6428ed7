//! OData 4.01 asynchronous requests (Part 1: Protocol, §11.6; §8.2.8.8 `respond-async`; §8.3.1
//! `AsyncResult`), as a service answers them.

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

use crate::instance::{insert, json, Instance};
use crate::scenario::Ending;

/// Whether a request's `Prefer` header(s) include `respond-async` (RFC 7240: a comma-separated
/// list of preferences, each possibly with parameters).
pub(crate) fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| {
            let token = preference.split([';', '=']).next().unwrap_or("");
            token.trim().eq_ignore_ascii_case("respond-async")
        })
}

impl Instance {
    /// The answer to the request that started the operation: `202` + `Location` when it asked
    /// for `respond-async`, else the result at once (a service must not answer `202` then).
    pub(crate) fn odata_initial(&mut self, request: &HeaderMap) -> Response<Full<Bytes>> {
        if !prefers_async(request) {
            let (status, headers, body) = self.odata_result();
            let mut response = json(status, body);
            response.headers_mut().extend(headers);
            return response;
        }
        let mut response = json(StatusCode::ACCEPTED, String::new());
        response.headers_mut().remove(CONTENT_TYPE);
        insert(&mut response, LOCATION, &self.monitor_url(false));
        self.hint(&mut response);
        response
    }

    /// The status monitor: `GET` polls, `DELETE` cancels.
    pub(crate) fn odata_monitor(
        &mut self,
        method: &Method,
        request: &HeaderMap,
    ) -> Response<Full<Bytes>> {
        // §11.6: after a successful DELETE the monitor is gone.
        if self.canceled {
            return odata_error(StatusCode::NOT_FOUND, "NotFound", "no such status monitor");
        }
        if method == Method::DELETE {
            if !self.scenario.cancelable {
                return odata_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "NotSupported",
                    "this request cannot be canceled",
                );
            }
            self.canceled = !self.scenario.completes_when_canceled;
            let mut response = json(StatusCode::NO_CONTENT, String::new());
            response.headers_mut().remove(CONTENT_TYPE);
            return response;
        }
        if method != Method::GET {
            return odata_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "NotSupported",
                "GET or DELETE",
            );
        }
        if self.advance() {
            let mut response = json(StatusCode::ACCEPTED, String::new());
            response.headers_mut().remove(CONTENT_TYPE);
            // Every `202` names the monitor again: the moved one, when the scenario moves it.
            insert(
                &mut response,
                LOCATION,
                &self.monitor_url(self.scenario.moves_monitor),
            );
            self.hint(&mut response);
            return response;
        }
        let (status, headers, body) = self.odata_result();
        if wants_http_message(request) {
            let message = http_message(status, &headers, &body);
            let mut response = Response::new(Full::new(Bytes::from(message)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/http"));
            return response;
        }
        let mut response = json(StatusCode::OK, body);
        response.headers_mut().extend(headers);
        insert(
            &mut response,
            HeaderName::from_static("asyncresult"),
            status.as_str(),
        );
        response
    }

    /// The response to the completed request: `201`/`200` with the resource, `500` with an
    /// OData error, or `503` when the service canceled it.
    fn odata_result(&self) -> (StatusCode, HeaderMap, String) {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert("odata-version", HeaderValue::from_static("4.01"));
        match self.ending() {
            Ending::Succeeded if self.scenario.method == Method::POST => {
                let location = self.url(&format!("/resources/{}", self.id), "");
                if let Ok(location) = HeaderValue::from_str(&location) {
                    headers.insert(LOCATION, location);
                }
                (StatusCode::CREATED, headers, self.resource())
            }
            Ending::Succeeded => (StatusCode::OK, headers, self.resource()),
            Ending::Failed { code, message } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                headers,
                error_body(&code, &message),
            ),
            Ending::Canceled => (
                StatusCode::SERVICE_UNAVAILABLE,
                headers,
                error_body("Canceled", "the service canceled the request"),
            ),
        }
    }
}

/// §11.6: a poll with `OData-MaxVersion: 4.0` and no `Accept`, or an `Accept` that includes
/// `application/http`, gets the result as an HTTP message.
fn wants_http_message(request: &HeaderMap) -> bool {
    let accepts = request
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mime = range.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("application/http")
        });
    let max_version = request
        .get("odata-maxversion")
        .and_then(|value| value.to_str().ok())
        .map(str::trim);
    accepts || max_version == Some("4.0") && !request.contains_key(ACCEPT)
}

/// `HTTP/1.1 {status}`, the headers, a `Content-Length`, and the body (RFC 9112).
fn http_message(status: StatusCode, headers: &HeaderMap, body: &str) -> Vec<u8> {
    let mut message = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in headers {
        message.extend_from_slice(name.as_str().as_bytes());
        message.extend_from_slice(b": ");
        message.extend_from_slice(value.as_bytes());
        message.extend_from_slice(b"\r\n");
    }
    message.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    message.extend_from_slice(body.as_bytes());
    message
}

fn error_body(code: &str, message: &str) -> String {
    format!(
        r#"{{"error":{{"code":{},"message":{}}}}}"#,
        serde_json::Value::from(code),
        serde_json::Value::from(message)
    )
}

fn odata_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json(status, error_body(code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn respond_async_is_one_preference_among_others() {
        for (prefer, expected) in [
            (&[("prefer", "respond-async")][..], true),
            (&[("prefer", "return=minimal, respond-async")][..], true),
            (
                &[("prefer", "wait=10"), ("prefer", "Respond-Async")][..],
                true,
            ),
            (&[("prefer", "respond-async; foo=bar")][..], true),
            (&[("prefer", "respond-asynchronously")][..], false),
            (&[("prefer", "return=representation")][..], false),
            (&[][..], false),
        ] {
            assert_eq!(prefers_async(&headers(prefer)), expected, "{prefer:?}");
        }
    }

    #[test]
    fn the_result_comes_as_an_http_message_when_asked_for() {
        for (request, expected) in [
            (&[("odata-maxversion", "4.0")][..], true),
            (&[("odata-maxversion", "4.01")][..], false),
            (
                &[("odata-maxversion", "4.0"), ("accept", "application/json")][..],
                false,
            ),
            (
                &[("accept", "application/json, application/http;q=0.5")][..],
                true,
            ),
            (&[][..], false),
        ] {
            assert_eq!(
                wants_http_message(&headers(request)),
                expected,
                "{request:?}"
            );
        }
    }

    #[test]
    fn an_http_message_declares_its_length() {
        let message = http_message(StatusCode::CREATED, &headers(&[("x-a", "1")]), "{}");
        assert_eq!(
            String::from_utf8(message).unwrap(),
            "HTTP/1.1 201 Created\r\nx-a: 1\r\nContent-Length: 2\r\n\r\n{}"
        );
    }
}
