//! [`AsyncRequestReply`]: the Asynchronous Request-Reply pattern of the Azure Architecture
//! Center (PROTOCOL §14).

use std::fmt;
use std::sync::Arc;

use http::{header, response, HeaderMap, StatusCode};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::Deserializer;
use serde_json::value::RawValue;

use crate::dialect::{
    is_transient, Dialect, ErrorDetail, Follow, InitialHead, Observer, PollAt, RequestHead,
    StatusHead, Verdict,
};
use crate::protocol::headers;
use crate::protocol::json::{text, Text};

/// A `200` declared longer than this is the result, unread: a pending body is a few bytes.
const PENDING_BODY_LIMIT: u64 = 64 * 1024;

/// The Asynchronous Request-Reply pattern (Azure Architecture Center, and its Azure Functions
/// sample): the request answers `202 Accepted` with `Location`, a status URL; that URL answers
/// `202`, or `200` with a pending body such as `{"status": "In progress"}`, while the work runs,
/// and when it is done a redirect (`302`/`303`) to the result — often a SAS URL in blob storage,
/// on another origin — or a `200` carrying the result itself. A failure is a `4xx`/`5xx` at the
/// status URL, or a `200` whose status says so (`{"status": "Failed"}`).
///
/// | answer of the status URL | verdict |
/// |---|---|
/// | `202` | running; a `Location` on it moves the status URL |
/// | `200`, pending (the rule below) | running |
/// | `200`, failed (the rule below) | [`Failed`](crate::ErrorKind::Failed), code and message as for a `4xx` below |
/// | `200`, canceled (the rule below) | [`Canceled`](crate::ErrorKind::Canceled), code and message read the same way |
/// | `200`, anything else; another `2xx` | done: this response is the result |
/// | `301`, `302`, `303`, `307`, `308` with `Location` | done: the result is a `GET` of `Location` |
/// | `408`, `429`, `500`, `502`, `503`, `504` | retried, within the layer's bounds |
/// | another `4xx` or `5xx` | [`Failed`](crate::ErrorKind::Failed), code and message from the body's `{"error": {"code", "message"}}` or `{"code", "message"}` |
///
/// # Pending or result: the exact rule
///
/// A `200` from the status URL is **pending**, **failed** or **canceled** exactly when all of
/// these hold; anything else is the **result**:
///
/// 1. its `Content-Type` is JSON (`application/json`, `text/json`, `…+json`) or absent, and its
///    declared `Content-Length`, if any, is at most 64 KiB;
/// 2. its body is a JSON object;
/// 3. that object has a member named `status` (the [status member](Self::status_member),
///    compared ASCII case-insensitively) whose value is a string;
/// 4. once both are lowercased and stripped of whitespace, `-` and `_` (so `In progress`,
///    `in-progress`, `IN_PROGRESS` and `InProgress` are the same word), that string is one of
///    the [pending statuses](Self::pending_statuses) (by default the one word of the pattern's
///    sample: `In progress`): **pending**; else one of the
///    [failed statuses](Self::failed_statuses) (by default `Failed`, `Error`): **failed**, with
///    the body's `{"error": {"code", "message"}}` or `{"code", "message"}` as code and message
///    and the string as the operation's [`state`](crate::OperationInfo::state); else one of the
///    [canceled statuses](Self::canceled_statuses) (by default `Canceled`, `Cancelled`):
///    **canceled**.
///
/// A result `200` whose own body happens to match (a resource with `"status": "In progress"`)
/// would be taken for pending until [`max_polls`](crate::LongRunningLayer::max_polls), and one
/// with `"status": "Failed"` for a failure: choose the words for your API. A result `200` with
/// a JSON body longer than the layer's `max_status_body` and no `Content-Length` is
/// [`StatusBodyTooLarge`](crate::ErrorKind::StatusBodyTooLarge): raise the bound, or have the
/// server redirect to the result.
///
/// # Redirects
///
/// The layer itself makes the `GET` a redirect names: a result on another origin is
/// [`CrossOrigin`](crate::ErrorKind::CrossOrigin) (nothing sent) unless
/// [`allow_origin`](crate::LongRunningLayer::allow_origin) admits it, and credentials are
/// withheld from it. A result URL that answers another redirect is
/// [`UnexpectedStatus`](crate::ErrorKind::UnexpectedStatus), so redirect loops end. Below the
/// layer, the client must not follow redirects itself: with
/// `ReqwestService` (feature `reqwest`), build the `reqwest::Client` with
/// `redirect(reqwest::redirect::Policy::none())`.
///
/// The pattern defines no cancel request (attach a [`CancelVia`](crate::CancelVia) for an API
/// that has one), and any method may start an operation.
///
/// ```
/// use tower_lro::{AsyncRequestReply, LongRunningLayer};
///
/// let layer = LongRunningLayer::with_dialect(
///     AsyncRequestReply::new().pending_statuses(["In progress", "Queued"]),
/// );
/// # let _ = layer;
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AsyncRequestReply {
    member: Arc<str>,
    /// Normalised ([`word`]), as are the two below.
    pending: Arc<[String]>,
    failed: Arc<[String]>,
    canceled: Arc<[String]>,
}

impl Default for AsyncRequestReply {
    fn default() -> Self {
        AsyncRequestReply {
            member: Arc::from("status"),
            pending: Arc::from([word("In progress")]),
            failed: Arc::from([word("Failed"), word("Error")]),
            canceled: Arc::from([word("Canceled"), word("Cancelled")]),
        }
    }
}

impl fmt::Debug for AsyncRequestReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRequestReply")
            .field("status_member", &self.member)
            .field("pending_statuses", &self.pending)
            .field("failed_statuses", &self.failed)
            .field("canceled_statuses", &self.canceled)
            .finish()
    }
}

impl AsyncRequestReply {
    /// The dialect, with the pattern sample's pending test (`{"status": "In progress"}`), and
    /// `Failed`, `Error` as failed and `Canceled`, `Cancelled` as canceled statuses.
    pub fn new() -> Self {
        AsyncRequestReply::default()
    }

    /// The values of the status member that mean "still running" (rule 4 of
    /// [the exact rule](Self#pending-or-result-the-exact-rule)), replacing the default
    /// `In progress`. With none, every `200` is the result.
    ///
    /// ```
    /// use tower_lro::AsyncRequestReply;
    ///
    /// let dialect = AsyncRequestReply::new().pending_statuses(["Running", "NotStarted"]);
    /// # let _ = dialect;
    /// ```
    pub fn pending_statuses<I>(mut self, statuses: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.pending = statuses.into_iter().map(|s| word(s.as_ref())).collect();
        self
    }

    /// The values of the status member that mean the operation failed (rule 4 of
    /// [the exact rule](Self#pending-or-result-the-exact-rule)), replacing the default `Failed`,
    /// `Error`. With none, no `200` is a failure. A value that is also pending is pending.
    ///
    /// ```
    /// use tower_lro::AsyncRequestReply;
    ///
    /// let dialect = AsyncRequestReply::new().failed_statuses(["Failed", "Faulted"]);
    /// # let _ = dialect;
    /// ```
    pub fn failed_statuses<I>(mut self, statuses: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.failed = statuses.into_iter().map(|s| word(s.as_ref())).collect();
        self
    }

    /// The values of the status member that mean the operation was canceled (rule 4 of
    /// [the exact rule](Self#pending-or-result-the-exact-rule)), replacing the default
    /// `Canceled`, `Cancelled`. With none, no `200` is a cancellation. A value that is also
    /// pending or failed is that.
    ///
    /// ```
    /// use tower_lro::AsyncRequestReply;
    ///
    /// let dialect = AsyncRequestReply::new().canceled_statuses(["Aborted"]);
    /// # let _ = dialect;
    /// ```
    pub fn canceled_statuses<I>(mut self, statuses: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        self.canceled = statuses.into_iter().map(|s| word(s.as_ref())).collect();
        self
    }

    /// The member of a `200`'s JSON object that holds the status (rule 3), instead of `status`.
    ///
    /// ```
    /// use tower_lro::AsyncRequestReply;
    ///
    /// let dialect = AsyncRequestReply::new()
    ///     .status_member("state")
    ///     .pending_statuses(["running"]);
    /// # let _ = dialect;
    /// ```
    pub fn status_member(mut self, name: impl AsRef<str>) -> Self {
        self.member = Arc::from(name.as_ref());
        self
    }

    /// What a `200` body says (rules 2–4), recording the status it reports unless it is the
    /// result.
    fn judge<'a>(
        &self,
        headers: &'a HeaderMap,
        body: &'a [u8],
        seen: &mut Observer<'_>,
    ) -> Verdict<'a> {
        let Some(status) = status_of(body, &self.member) else {
            return Verdict::Done;
        };
        let compared = word(&status);
        let verdict = if self.pending.contains(&compared) {
            Verdict::Running { moved: None }
        } else if self.failed.contains(&compared) {
            let detail = self.error_detail(headers, Some(body));
            Verdict::Failed(
                ErrorDetail::reported(status.clone()).with_detail(detail.code, detail.message),
            )
        } else if self.canceled.contains(&compared) {
            let detail = self.error_detail(headers, Some(body));
            Verdict::Canceled(
                ErrorDetail::reported(status.clone()).with_detail(detail.code, detail.message),
            )
        } else {
            return Verdict::Done;
        };
        seen.state(&status);
        verdict
    }
}

impl Dialect for AsyncRequestReply {
    type Monitor = ();

    fn name(&self) -> &'static str {
        "async-request-reply"
    }

    fn initial_head<'a>(
        &self,
        _: &RequestHead<'_>,
        response: &'a response::Parts,
    ) -> InitialHead<'a, ()> {
        match response.headers.get(header::LOCATION) {
            Some(location) if response.status == StatusCode::ACCEPTED => {
                InitialHead::Follow(Follow::new((), PollAt::url(location)))
            }
            _ => InitialHead::NotLongRunning,
        }
    }

    fn status_head<'a>(&self, _: &(), response: &'a response::Parts) -> StatusHead<'a> {
        StatusHead::Judged(match response.status.as_u16() {
            202 => Verdict::Running {
                moved: response.headers.get(header::LOCATION).map(|l| l.as_bytes()),
            },
            200 if may_be_pending(&response.headers) => return StatusHead::ReadBody,
            200..=299 => Verdict::Done,
            301 | 302 | 303 | 307 | 308 => match response.headers.get(header::LOCATION) {
                Some(location) => Verdict::Fetch(PollAt::url(location)),
                None => Verdict::Unexpected,
            },
            _ if is_transient(response.status) => Verdict::Transient,
            400..=599 => Verdict::Failed(ErrorDetail::default()),
            _ => Verdict::Unexpected,
        })
    }

    fn status_body<'a>(
        &self,
        _: &mut (),
        _: &RequestHead<'_>,
        response: &'a response::Parts,
        body: &'a [u8],
        seen: &mut Observer<'_>,
    ) -> Verdict<'a> {
        self.judge(&response.headers, body, seen)
    }
}

/// Rule 1: whether a `200` may carry a pending, failed or canceled body, and so is worth reading.
fn may_be_pending(headers: &HeaderMap) -> bool {
    headers::may_be_json(headers)
        && headers::content_length(headers).is_none_or(|len| len <= PENDING_BODY_LIMIT)
}

/// A status word as compared: lowercase, without whitespace, `-` or `_`.
fn word(status: &str) -> String {
    status
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Rules 2 and 3: the string value of the first member named `member` (ASCII
/// case-insensitively) of a JSON object body.
fn status_of(body: &[u8], member: &str) -> Option<String> {
    struct StatusVisitor<'m>(&'m str);
    impl<'de> Visitor<'de> for StatusVisitor<'_> {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut status = None;
            while let Some(key) = map.next_key::<Text<'de>>()? {
                if status.is_none() && key.0.eq_ignore_ascii_case(self.0) {
                    let raw: &'de RawValue = map.next_value()?;
                    status = text(raw).map(|s| s.into_owned());
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(status)
        }
    }
    let text = std::str::from_utf8(body).ok()?;
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let status = de.deserialize_map(StatusVisitor(member)).ok()?;
    de.end().ok()?;
    status
}

#[cfg(test)]
mod tests {
    use http::{Method, Request};

    use super::*;
    use crate::dialect::table;
    use crate::dialect::testing::{self, Recorder};

    const STATUS: &str = "https://api.example/api/RequestStatus/42";

    #[test]
    fn initial_heads() -> Result<(), http::Error> {
        for (method, status, headers, expected) in [
            (
                Method::POST,
                202,
                &[("location", STATUS)][..],
                format!("follow () ref {STATUS}"),
            ),
            (
                Method::GET,
                202,
                &[("location", "/status/1")][..],
                "follow () ref /status/1".into(),
            ),
            (Method::POST, 202, &[][..], "pass".into()),
            (
                Method::POST,
                200,
                &[("location", STATUS)][..],
                "pass".into(),
            ),
            (
                Method::POST,
                201,
                &[("location", STATUS)][..],
                "pass".into(),
            ),
            (
                Method::POST,
                303,
                &[("location", STATUS)][..],
                "pass".into(),
            ),
        ] {
            let request = Request::builder()
                .method(method.clone())
                .uri("https://api.example/api/work")
                .body(())?;
            let response = testing::response_head(status, headers)?;
            let verdict =
                AsyncRequestReply::new().initial_head(&testing::request_head(&request), &response);
            assert_eq!(table::initial_head(&verdict), expected, "{method} {status}");
        }
        Ok(())
    }

    #[test]
    fn status_heads() -> Result<(), http::Error> {
        let blob = "https://store.blob.example/data/42.blobdata?sv=2020&sig=S";
        for (status, headers, expected) in [
            (202, &[][..], "running".to_owned()),
            (
                202,
                &[("location", "/status/43")][..],
                "running, moved /status/43".into(),
            ),
            (
                200,
                &[("content-type", "application/json; charset=utf-8")][..],
                "read".into(),
            ),
            (200, &[][..], "read".into()),
            (
                200,
                &[("content-type", "application/problem+json")][..],
                "read".into(),
            ),
            // Rule 1: a body that cannot be pending is the result, unread.
            (
                200,
                &[("content-type", "application/octet-stream")][..],
                "done".into(),
            ),
            (
                200,
                &[
                    ("content-type", "application/json"),
                    ("content-length", "65536"),
                ][..],
                "read".into(),
            ),
            (
                200,
                &[
                    ("content-type", "application/json"),
                    ("content-length", "65537"),
                ][..],
                "done".into(),
            ),
            (201, &[][..], "done".into()),
            (204, &[][..], "done".into()),
            (302, &[("location", blob)][..], format!("fetch ref {blob}")),
            (
                303,
                &[("location", "/results/42")][..],
                "fetch ref /results/42".into(),
            ),
            (
                301,
                &[("location", "/results/42")][..],
                "fetch ref /results/42".into(),
            ),
            (
                307,
                &[("location", "/results/42")][..],
                "fetch ref /results/42".into(),
            ),
            (
                308,
                &[("location", "/results/42")][..],
                "fetch ref /results/42".into(),
            ),
            (303, &[][..], "unexpected".into()),
            (304, &[("location", "/results/42")][..], "unexpected".into()),
            (300, &[("location", "/results/42")][..], "unexpected".into()),
            (408, &[][..], "transient".into()),
            (429, &[][..], "transient".into()),
            (500, &[][..], "transient".into()),
            (503, &[][..], "transient".into()),
            (400, &[][..], "failed -/-/-".into()),
            (404, &[][..], "failed -/-/-".into()),
            (409, &[][..], "failed -/-/-".into()),
            (501, &[][..], "failed -/-/-".into()),
            (100, &[][..], "unexpected".into()),
        ] {
            let response = testing::response_head(status, headers)?;
            let verdict = AsyncRequestReply::new().status_head(&(), &response);
            assert_eq!(
                table::status_head(&verdict),
                expected,
                "{status} {headers:?}"
            );
        }
        Ok(())
    }

    /// The verdict on a `200` body, and the state it recorded.
    fn judge(
        dialect: &AsyncRequestReply,
        body: &str,
    ) -> Result<(String, Option<String>), http::Error> {
        let request = Request::post("https://api.example/api/work").body(())?;
        let response = testing::response_head(200, &[])?;
        let mut seen = Recorder::new();
        let verdict = dialect.status_body(
            &mut (),
            &testing::request_head(&request),
            &response,
            body.as_bytes(),
            &mut seen.observer(),
        );
        Ok((table::verdict(&verdict), seen.state().map(str::to_owned)))
    }

    #[test]
    fn the_pending_rule() -> Result<(), http::Error> {
        let default = AsyncRequestReply::new();
        for (body, expected) in [
            // The pattern's sample.
            (
                r#"{"status":"In progress","Location":"https://api.example/api/RequestStatus/42"}"#,
                "running",
            ),
            (r#"{"Status":"In progress"}"#, "running"),
            (r#"{"STATUS":"in progress"}"#, "running"),
            (r#"{"status":"InProgress"}"#, "running"),
            (r#"{"status":"in_progress"}"#, "running"),
            (r#"{"status":" IN-PROGRESS "}"#, "running"),
            (r#"{"status":"In\u0020progress"}"#, "running"),
            (
                r#"{"other":1,"status":"In progress","more":[1,{"status":"done"}]}"#,
                "running",
            ),
            // Anything else is the result.
            (r#"{"status":"Succeeded"}"#, "done"),
            (r#"{"status":"Running"}"#, "done"),
            (r#"{"status":"In progress!"}"#, "done"),
            (r#"{"state":"In progress"}"#, "done"),
            (r#"{"status":{"text":"In progress"}}"#, "done"),
            (r#"{"status":null}"#, "done"),
            (r#"{"data":{"status":"In progress"}}"#, "done"),
            (r#"[{"status":"In progress"}]"#, "done"),
            (r#""In progress""#, "done"),
            (r#"{"status":"In progress"} trailing"#, "done"),
            (r#"{"status":"In progress""#, "done"),
            ("", "done"),
            ("\u{feff}{}", "done"),
            ("<html>In progress</html>", "done"),
        ] {
            let (verdict, state) = judge(&default, body)?;
            assert_eq!(verdict, expected, "{body}");
            let expected_state = (expected != "done").then_some(());
            assert_eq!(state.map(|_| ()), expected_state, "{body}");
        }
        assert_eq!(
            judge(&default, r#"{"status":"In progress"}"#)?.1.as_deref(),
            Some("In progress")
        );
        Ok(())
    }

    #[test]
    fn failed_and_canceled_statuses() -> Result<(), http::Error> {
        let default = AsyncRequestReply::new();
        for (body, expected) in [
            (r#"{"status":"Failed"}"#, "failed Failed/-/-"),
            (
                r#"{"status":"Failed","error":{"code":"Quota","message":"over the quota"}}"#,
                "failed Failed/Quota/over the quota",
            ),
            (
                r#"{"code":"Quota","message":"over the quota","status":"Error"}"#,
                "failed Error/Quota/over the quota",
            ),
            // The same normalisation and member as the pending words.
            (r#"{"STATUS":" failed "}"#, "failed  failed /-/-"),
            (r#"{"Status":"ERROR"}"#, "failed ERROR/-/-"),
            (r#"{"status":"Canceled"}"#, "canceled Canceled/-/-"),
            (r#"{"status":"cancelled"}"#, "canceled cancelled/-/-"),
            (
                r#"{"status":"Canceled","message":"by the user"}"#,
                "canceled Canceled/-/by the user",
            ),
            // Anything else is the result, as before.
            (r#"{"status":"Failed!"}"#, "done"),
            (r#"{"status":"Failure"}"#, "done"),
            (r#"{"state":"Failed"}"#, "done"),
            (r#"{"data":{"status":"Failed"}}"#, "done"),
            (r#"{"status":["Failed"]}"#, "done"),
            (r#"[{"status":"Failed"}]"#, "done"),
            (r#"{"status":"Failed"} trailing"#, "done"),
            ("Failed", "done"),
        ] {
            let (verdict, state) = judge(&default, body)?;
            assert_eq!(verdict, expected, "{body}");
            let expected_state = (expected != "done").then_some(());
            assert_eq!(state.map(|_| ()), expected_state, "{body}");
        }
        Ok(())
    }

    #[test]
    fn the_failed_and_canceled_words_are_configurable() -> Result<(), http::Error> {
        let custom = AsyncRequestReply::new()
            .status_member("state")
            .failed_statuses(["Faulted"])
            .canceled_statuses(["Aborted"]);
        for (body, expected) in [
            (r#"{"state":"faulted"}"#, "failed faulted/-/-"),
            (r#"{"state":"ABORTED"}"#, "canceled ABORTED/-/-"),
            // Replaced, not added to.
            (r#"{"state":"Failed"}"#, "done"),
            (r#"{"state":"Canceled"}"#, "done"),
            (r#"{"status":"Faulted"}"#, "done"),
            (r#"{"state":"In progress"}"#, "running"),
        ] {
            assert_eq!(judge(&custom, body)?.0, expected, "{body}");
        }
        let none = AsyncRequestReply::new()
            .failed_statuses(Vec::<String>::new())
            .canceled_statuses(Vec::<String>::new());
        assert_eq!(judge(&none, r#"{"status":"Failed"}"#)?.0, "done");
        assert_eq!(judge(&none, r#"{"status":"Canceled"}"#)?.0, "done");
        // A word in two sets is the first of pending, failed, canceled.
        let both = AsyncRequestReply::new()
            .pending_statuses(["Failed"])
            .canceled_statuses(["Error"]);
        assert_eq!(judge(&both, r#"{"status":"Failed"}"#)?.0, "running");
        assert_eq!(judge(&both, r#"{"status":"Error"}"#)?.0, "failed Error/-/-");
        Ok(())
    }

    #[test]
    fn the_pending_test_is_configurable() -> Result<(), http::Error> {
        let custom = AsyncRequestReply::new()
            .status_member("state")
            .pending_statuses(["Running", "Not started"]);
        for (body, expected) in [
            (r#"{"state":"running"}"#, "running"),
            (r#"{"State":"NotStarted"}"#, "running"),
            (r#"{"state":"In progress"}"#, "done"),
            (r#"{"status":"Running"}"#, "done"),
        ] {
            assert_eq!(judge(&custom, body)?.0, expected, "{body}");
        }
        let never = AsyncRequestReply::new().pending_statuses(Vec::<String>::new());
        assert_eq!(judge(&never, r#"{"status":"In progress"}"#)?.0, "done");
        Ok(())
    }

    #[test]
    fn status_words_compare_without_case_space_dashes_or_underscores() {
        for (text, expected) in [
            ("In progress", "inprogress"),
            ("IN_PROGRESS", "inprogress"),
            ("in-progress", "inprogress"),
            ("\tIn  Progress\n", "inprogress"),
            ("Ünïcode", "ünïcode"),
            ("", ""),
        ] {
            assert_eq!(word(text), expected, "{text:?}");
        }
    }
}
