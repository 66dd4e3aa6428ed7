//! [`ODataAsync`]: OData 4.01 asynchronous requests (Part 1: Protocol, §11.6; PROTOCOL §15).

use http::header::{CONTENT_TYPE, LOCATION};
use http::{response, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};

use crate::dialect::{
    is_transient, CancelRequest, Dialect, ErrorDetail, Follow, InitialHead, Observer, PollAt,
    Replacement, RequestHead, StatusHead, Verdict,
};
use crate::protocol::headers;
use crate::protocol::http_message::parse_response;

/// OData 4.01 asynchronous requests (Part 1: Protocol, §11.6): a request with
/// `Prefer: respond-async` may be answered `202 Accepted` with a `Location`, the *status
/// monitor*; it answers `202` (with a `Location` again, which may move) while the request runs,
/// and `200` when it is done, in one of two forms:
///
/// - an `AsyncResult: <status>` header, the other headers and the body being the result's: the
///   final response is that answer with the `AsyncResult` status (a `201`, say), without the
///   `AsyncResult` header;
/// - a body of `Content-Type: application/http`, the whole HTTP response to the request (the
///   form of a poll with `OData-MaxVersion: 4.0` and no `Accept`, or an `Accept` naming
///   `application/http`): the final response is that embedded response — its status, its
///   headers and its body (a part of the answer's, not a copy).
///
/// A result whose status is not a success (an embedded `500`, an `AsyncResult: 409`) is
/// [`Failed`](crate::ErrorKind::Failed), never `Ok`, the error carrying the embedded status,
/// headers and body, and the OData error's `error.code` and `error.message`. A `5xx` may also be
/// how the service says it canceled the request itself (§11.6): nothing tells the two apart, so
/// it is `Failed` too, and its body says which.
///
/// - The layer adds `Prefer: respond-async` to the request, merged with the preferences it has
///   (polls do not repeat it). Any method may be asynchronous, a `GET` too.
/// - A completed monitor's `200` without either form, an `AsyncResult` that is not a status
///   code, and an `application/http` body that is not one whole HTTP/1.x response (truncated,
///   not HTTP, more than 100 headers, chunked) are
///   [`MalformedStatus`](crate::ErrorKind::MalformedStatus). The embedded response is bounded by
///   the layer's `max_status_body`, as every status body is.
/// - Cancel: `DELETE` of the monitor (`200`/`204`: canceled; `202`: canceling; `405`:
///   [`CancelUnsupported`](crate::ErrorKind::CancelUnsupported)). Every `2xx` is taken as
///   accepted and noted in the monitor (it travels in resume tokens); the layer polls on, and
///   the monitor, gone once the request is canceled, answers `404` (or `410`): then
///   [`Canceled`](crate::ErrorKind::Canceled), the error carrying that answer. A `200`/`204`
///   says canceled already, but the mechanism has no "canceled" answer to a cancel request, so
///   it costs that one more poll.
/// - A `404` or `410` without an accepted cancel is
///   [`UnexpectedStatus`](crate::ErrorKind::UnexpectedStatus) with the answer: §11.6 answers
///   them for a monitor whose result expired, was already retrieved, or that another client
///   canceled, and nothing in the answer tells which, so it is never taken as canceled (nor as
///   failed) on a guess.
///
/// ```
/// use tower_lro::{LongRunningLayer, ODataAsync};
///
/// let layer = LongRunningLayer::with_dialect(ODataAsync::new());
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ODataAsync {
    _private: (),
}

impl ODataAsync {
    /// The dialect.
    pub fn new() -> Self {
        ODataAsync::default()
    }
}

/// What the [`ODataAsync`] dialect remembers about a request beyond its status monitor's URL:
/// whether the service accepted a cancel for it (kept in tokens as `"canceling":true`, absent
/// otherwise: a token of `{}` reads as one without).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ODataMonitor {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    canceling: bool,
}

/// `AsyncResult` (Part 1 §8.3.1): the status of the completed asynchronous request.
const ASYNC_RESULT: HeaderName = HeaderName::from_static("asyncresult");

impl Dialect for ODataAsync {
    type Monitor = ODataMonitor;

    fn name(&self) -> &'static str {
        "odata-async"
    }

    fn prepare(&self, _: &Method, headers: &mut HeaderMap) {
        headers::prefer_respond_async(headers);
    }

    fn initial_head<'a>(
        &self,
        _: &RequestHead<'_>,
        response: &'a response::Parts,
    ) -> InitialHead<'a, ODataMonitor> {
        match response.headers.get(LOCATION) {
            Some(monitor) if response.status == StatusCode::ACCEPTED => {
                InitialHead::Follow(Follow::new(ODataMonitor::default(), PollAt::url(monitor)))
            }
            _ => InitialHead::NotLongRunning,
        }
    }

    fn status_head<'a>(
        &self,
        monitor: &ODataMonitor,
        response: &'a response::Parts,
    ) -> StatusHead<'a> {
        StatusHead::Judged(match response.status.as_u16() {
            // The monitor is gone after the cancel this operation's monitor noted.
            404 | 410 if monitor.canceling => Verdict::Canceled(ErrorDetail::default()),
            202 => Verdict::Running {
                moved: response.headers.get(LOCATION).map(HeaderValue::as_bytes),
            },
            200 if is_http_message(&response.headers) => return StatusHead::ReadBody,
            200 => match async_result(&response.headers) {
                Ok(Some(status)) => {
                    let mut headers = response.headers.clone();
                    headers.remove(ASYNC_RESULT);
                    Verdict::Replace(Replacement::new(status).headers(headers))
                }
                Ok(None) => Verdict::Malformed(
                    "the status monitor answered 200 without an AsyncResult header or an \
                     application/http body"
                        .into(),
                ),
                Err(why) => Verdict::Malformed(why),
            },
            _ if is_transient(response.status) => Verdict::Transient,
            _ => Verdict::Unexpected,
        })
    }

    fn status_body<'a>(
        &self,
        _: &mut ODataMonitor,
        _: &RequestHead<'_>,
        response: &'a response::Parts,
        body: &'a [u8],
        _: &mut Observer<'_>,
    ) -> Verdict<'a> {
        let message = match parse_response(body) {
            Ok(message) => message,
            Err(bad) => return Verdict::Malformed(bad.to_string()),
        };
        match async_result(&response.headers) {
            Ok(Some(status)) if status != message.status => {
                return Verdict::Malformed(format!(
                    "the AsyncResult header says {} and the embedded response {}",
                    status.as_u16(),
                    message.status.as_u16()
                ))
            }
            Err(why) => return Verdict::Malformed(why),
            Ok(_) => {}
        }
        Verdict::Replace(
            Replacement::new(message.status)
                .headers(message.headers)
                .body(message.body),
        )
    }

    fn cancel(&self, _: &ODataMonitor, polled: &Uri) -> Option<CancelRequest> {
        let url = polled.path_and_query().map_or("/", |p| p.as_str());
        Some(CancelRequest::new(Method::DELETE, url))
    }

    fn cancel_accepted(&self, monitor: &mut ODataMonitor) {
        monitor.canceling = true;
    }
}

/// Whether a body is declared `application/http` (parameters such as `msgtype` aside).
fn is_http_message(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/http"))
}

/// The `AsyncResult` status: `None` without the header, an error when it is not one status code
/// (three digits, 100–599).
fn async_result(headers: &HeaderMap) -> Result<Option<StatusCode>, String> {
    let mut values = headers.get_all(ASYNC_RESULT).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let text = value.as_bytes().trim_ascii();
    let status = (text.len() == 3 && values.next().is_none())
        .then(|| StatusCode::from_bytes(text).ok())
        .flatten()
        .filter(|status| (100..=599).contains(&status.as_u16()));
    status.map(Some).ok_or_else(|| {
        format!(
            "the AsyncResult header {:?} is not a status code",
            String::from_utf8_lossy(value.as_bytes())
        )
    })
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;
    use crate::dialect::table;
    use crate::dialect::testing::{self, Recorder};

    const URI: &str = "https://odata.example/service/Orders";

    /// A table row: the answer's status or extra headers, what it carries, the verdict.
    type Row<'a, T> = (T, &'a [(&'a str, &'a str)], &'a str);
    /// A table row: the answer's extra headers, its body, the verdict.
    type BodyRow<'a> = (&'a [(&'a str, &'a str)], &'a [u8], &'a str);

    #[test]
    fn a_202_with_a_location_is_followed_whatever_the_method() -> Result<(), http::Error> {
        let odata = ODataAsync::new();
        for (method, status, headers, expected) in [
            (
                Method::POST,
                202,
                &[("location", "/monitor/1"), ("retry-after", "3")][..],
                "follow ODataMonitor { canceling: false } ref /monitor/1",
            ),
            (
                Method::GET,
                202,
                &[("location", "https://odata.example/monitor/2")][..],
                "follow ODataMonitor { canceling: false } ref https://odata.example/monitor/2",
            ),
            (Method::POST, 202, &[][..], "pass"),
            (Method::POST, 201, &[("location", "/Orders(1)")][..], "pass"),
            (Method::POST, 200, &[][..], "pass"),
        ] {
            let request = Request::builder()
                .method(method.clone())
                .uri(URI)
                .body(())?;
            let response = testing::response_head(status, headers)?;
            let verdict = odata.initial_head(&testing::request_head(&request), &response);
            assert_eq!(table::initial_head(&verdict), expected, "{method} {status}");
        }
        Ok(())
    }

    #[test]
    fn monitor_heads() -> Result<(), http::Error> {
        let odata = ODataAsync::new();
        #[rustfmt::skip]
        let rows: &[Row<'_, u16>] = &[
            (202, &[("location", "/monitor/1")], "running, moved /monitor/1"),
            (202, &[], "running"),
            (200, &[("asyncresult", "201"), ("content-type", "application/json")], "replace 201"),
            (200, &[("asyncresult", " 200 ")], "replace 200"),
            (200, &[("asyncresult", "500")], "replace 500"),
            (200, &[("asyncresult", "abc")], "malformed"),
            (200, &[("asyncresult", "20")], "malformed"),
            (200, &[("asyncresult", "2000")], "malformed"),
            (200, &[("asyncresult", "099")], "malformed"),
            (200, &[("asyncresult", "600")], "malformed"),
            (200, &[("asyncresult", "")], "malformed"),
            (200, &[("asyncresult", "201"), ("asyncresult", "201")], "malformed"),
            (200, &[], "malformed"),
            (200, &[("content-type", "application/json")], "malformed"),
            (200, &[("content-type", "application/http")], "read"),
            (200, &[("content-type", "Application/HTTP; msgtype=response")], "read"),
            (200, &[("content-type", "application/http"), ("asyncresult", "x")], "read"),
            (201, &[], "unexpected"),
            (204, &[], "unexpected"),
            (404, &[], "unexpected"),
            (410, &[], "unexpected"),
            (405, &[], "unexpected"),
            (503, &[], "transient"),
            (429, &[], "transient"),
        ];
        for (status, headers, expected) in rows {
            let response = testing::response_head(*status, headers)?;
            let head = odata.status_head(&ODataMonitor::default(), &response);
            assert_eq!(table::status_head(&head), *expected, "{status} {headers:?}");
        }
        Ok(())
    }

    #[test]
    fn once_a_cancel_is_accepted_a_gone_monitor_means_canceled() -> Result<(), http::Error> {
        let odata = ODataAsync::new();
        let mut monitor = ODataMonitor::default();
        odata.cancel_accepted(&mut monitor);
        assert!(monitor.canceling);
        #[rustfmt::skip]
        let rows: &[Row<'_, u16>] = &[
            (404, &[], "canceled -/-/-"),
            (410, &[("content-type", "application/json")], "canceled -/-/-"),
            // Canceling, or done before the cancel took: as without one.
            (202, &[("location", "/monitor/1")], "running, moved /monitor/1"),
            (200, &[("asyncresult", "201")], "replace 201"),
            (200, &[("content-type", "application/http")], "read"),
            (405, &[], "unexpected"),
            (400, &[], "unexpected"),
            (503, &[], "transient"),
        ];
        for (status, headers, expected) in rows {
            let response = testing::response_head(*status, headers)?;
            let head = odata.status_head(&monitor, &response);
            assert_eq!(table::status_head(&head), *expected, "{status} {headers:?}");
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
            let monitor: ODataMonitor = serde_json::from_str(json)?;
            assert_eq!(monitor.canceling, *canceling, "{json}");
        }
        assert!(serde_json::from_str::<ODataMonitor>(r#"{"canceling":"yes"}"#).is_err());
        assert_eq!(serde_json::to_string(&ODataMonitor::default())?, "{}");
        let canceling = ODataMonitor { canceling: true };
        assert_eq!(serde_json::to_string(&canceling)?, r#"{"canceling":true}"#);
        Ok(())
    }

    #[test]
    fn the_async_result_status_replaces_the_200_and_its_header_goes() -> Result<(), http::Error> {
        let response = testing::response_head(
            200,
            &[
                ("asyncresult", "201"),
                ("content-type", "application/json"),
                ("location", "/Orders(7)"),
            ],
        )?;
        let StatusHead::Judged(Verdict::Replace(replacement)) =
            ODataAsync::new().status_head(&ODataMonitor::default(), &response)
        else {
            panic!("not replaced");
        };
        assert_eq!(replacement.status(), StatusCode::CREATED);
        let headers = replacement.headers.as_ref().unwrap();
        assert!(!headers.contains_key("asyncresult"));
        assert_eq!(headers["location"], "/Orders(7)");
        assert_eq!(headers["content-type"], "application/json");
        assert!(replacement.body.is_none(), "the answer's own body");
        Ok(())
    }

    /// The verdict on an `application/http` answer's body.
    fn embedded(answer_headers: &[(&str, &str)], body: &[u8]) -> Result<String, http::Error> {
        let request = Request::post(URI).body(())?;
        let mut headers = vec![("content-type", "application/http")];
        headers.extend_from_slice(answer_headers);
        let response = testing::response_head(200, &headers)?;
        let verdict = ODataAsync::new().status_body(
            &mut ODataMonitor::default(),
            &testing::request_head(&request),
            &response,
            body,
            &mut Recorder::new().observer(),
        );
        Ok(table::verdict(&verdict))
    }

    #[test]
    fn an_embedded_response_replaces_the_answer() -> Result<(), http::Error> {
        let created = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{\"id\":7}";
        let failed = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 40\r\n\r\n{\"error\":{\"code\":\"E1\",\"message\":\"boom\"}}";
        #[rustfmt::skip]
        let rows: &[BodyRow<'_>] = &[
            (&[], created, "replace 201 {\"id\":7}"),
            (&[("asyncresult", "201")], created, "replace 201 {\"id\":7}"),
            (&[("asyncresult", "200")], created, "malformed"),
            (&[("asyncresult", "x")], created, "malformed"),
            (&[], failed, "replace 500 {\"error\":{\"code\":\"E1\",\"message\":\"boom\"}}"),
            (&[], b"HTTP/1.1 204 No Content\r\n\r\n", "replace 204 "),
            (&[], b"HTTP/1.1 201 Created\r\nContent-Length: 80\r\n\r\n{\"id\"", "malformed"),
            (&[], b"HTTP/1.1 201 Crea", "malformed"),
            (&[], b"{\"value\":[]}", "malformed"),
            (&[], b"", "malformed"),
        ];
        for (headers, body, expected) in rows {
            assert_eq!(
                embedded(headers, body)?,
                *expected,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let mut oversized = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..200 {
            oversized.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        oversized.extend_from_slice(b"\r\n");
        assert_eq!(embedded(&[], &oversized)?, "malformed");
        Ok(())
    }

    #[test]
    fn the_embedded_headers_and_body_are_the_final_ones() -> Result<(), http::Error> {
        let request = Request::post(URI).body(())?;
        let response = testing::response_head(200, &[("content-type", "application/http")])?;
        let body = b"HTTP/1.1 201 Created\r\nLocation: /Orders(7)\r\nContent-Length: 2\r\n\r\n{}";
        let verdict = ODataAsync::new().status_body(
            &mut ODataMonitor::default(),
            &testing::request_head(&request),
            &response,
            body,
            &mut Recorder::new().observer(),
        );
        let Verdict::Replace(replacement) = verdict else {
            panic!("not replaced: {verdict:?}");
        };
        let headers = replacement.headers.as_ref().unwrap();
        assert_eq!(headers["location"], "/Orders(7)");
        assert!(
            !headers.contains_key("content-type"),
            "the answer's are gone"
        );
        let part = replacement.body.unwrap();
        assert!(std::ptr::eq(part.as_ptr(), body[body.len() - 2..].as_ptr()));
        Ok(())
    }

    #[test]
    fn the_request_prefers_respond_async() {
        let mut headers = HeaderMap::new();
        headers.insert("prefer", "return=minimal".parse().unwrap());
        ODataAsync::new().prepare(&Method::POST, &mut headers);
        assert_eq!(headers["prefer"], "return=minimal, respond-async");
    }

    #[test]
    fn cancel_deletes_the_monitor() {
        let polled: Uri = "https://odata.example/monitor/1?token=a".parse().unwrap();
        let cancel = ODataAsync::new()
            .cancel(&ODataMonitor::default(), &polled)
            .unwrap();
        assert_eq!(cancel.method(), Method::DELETE);
        assert_eq!(cancel.url(), "/monitor/1?token=a");
    }
}
