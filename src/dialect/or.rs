//! [`Or`]: two dialects behind one layer, the first that takes the initial response following it.

use std::borrow::Cow;
use std::time::Duration;

use http::header::HeaderName;
use http::{response, HeaderMap, Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};

use super::{
    CancelHead, CancelRequest, Dialect, ErrorDetail, FinalHead, Follow, InitialBody, InitialHead,
    Observed, Observer, RequestHead, StatusHead, Verdict,
};

/// Two dialects behind one layer: made by [`Dialect::or`].
///
/// - **The initial response** belongs to the first dialect that takes it as long-running:
///   `A`'s judgement of its head (and body, when `A` asks for it), and only when `A` returns it
///   untouched (not long-running, or final with nothing to follow), `B`'s. Both may
///   [`prepare`](Dialect::prepare) the original request, `A` first.
/// - **Everything after** is the judgement of the dialect that took the operation, remembered in
///   the [`OrMonitor`]: polls, the final GET, cancel, the monitor's kind.
/// - **Hints and error details**, read from headers and bodies with no monitor at hand
///   ([`wait_hint`](Dialect::wait_hint), [`error_detail`](Dialect::error_detail)), are `A`'s
///   reading, completed by `B`'s where `A` found nothing.
/// - **Tokens** name the dialect that followed, with its own state: a token of
///   `Azure::new().or(Google::new())` for a Google operation is a `google` token, which a
///   layer of `Google` alone resumes too; this layer resumes tokens of either.
/// - **Credentials**: the headers either dialect withholds.
///
/// The two dialects' [`name`](Dialect::name)s must differ (two [`JsonJob`](crate::JsonJob)
/// descriptions: give each its own name), or a token of the second would be read by the first.
///
/// ```
/// use tower_lro::{Azure, Dialect, Google, LongRunningLayer};
///
/// let layer = LongRunningLayer::with_dialect(Azure::new().or(Google::new()));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Or<A, B> {
    first: A,
    second: B,
}

impl<A, B> Or<A, B> {
    /// `first`, then `second`: the same as `first.or(second)`.
    pub fn new(first: A, second: B) -> Self {
        Or { first, second }
    }
}

/// Which dialect of an [`Or`] follows an operation, with its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrMonitor<A, B> {
    /// The first dialect's.
    First(A),
    /// The second dialect's.
    Second(B),
}

fn map_follow<M, N>(follow: Follow<'_, M>, to: impl FnOnce(M) -> N) -> Follow<'_, N> {
    Follow {
        monitor: to(follow.monitor),
        poll_at: follow.poll_at,
    }
}

fn map_head<M, N>(head: InitialHead<'_, M>, to: impl FnOnce(M) -> N) -> InitialHead<'_, N> {
    match head {
        InitialHead::NotLongRunning => InitialHead::NotLongRunning,
        InitialHead::Follow(follow) => InitialHead::Follow(map_follow(follow, to)),
        InitialHead::ReadBody { otherwise } => InitialHead::ReadBody {
            otherwise: otherwise.map(|follow| map_follow(follow, to)),
        },
        InitialHead::RequireBody => InitialHead::RequireBody,
    }
}

fn map_body<M, N>(body: InitialBody<'_, M>, to: impl FnOnce(M) -> N) -> InitialBody<'_, N> {
    match body {
        InitialBody::Final => InitialBody::Final,
        InitialBody::Follow(follow) => InitialBody::Follow(map_follow(follow, to)),
        InitialBody::Failed(detail) => InitialBody::Failed(detail),
        InitialBody::Canceled(detail) => InitialBody::Canceled(detail),
        InitialBody::Malformed(why) => InitialBody::Malformed(why),
    }
}

/// The first text found, else the second.
fn either<'a>(first: Option<Cow<'a, str>>, second: Option<Cow<'a, str>>) -> Option<Cow<'a, str>> {
    first.or(second)
}

impl<A: Dialect, B: Dialect> Or<A, B> {
    /// The second dialect's judgement of an initial response the first did not take.
    fn second_initial<'a>(
        &self,
        request: &RequestHead<'_>,
        response: &'a response::Parts,
        body: &'a [u8],
        seen: &mut Observer<'_>,
    ) -> InitialBody<'a, OrMonitor<A::Monitor, B::Monitor>> {
        let verdict = match self.second.initial_head(request, response) {
            InitialHead::NotLongRunning => InitialBody::Final,
            InitialHead::Follow(follow) => InitialBody::Follow(follow),
            InitialHead::ReadBody { otherwise } => self
                .second
                .initial_body(request, response, body, otherwise, seen),
            InitialHead::RequireBody => self
                .second
                .initial_body(request, response, body, None, seen),
        };
        map_body(verdict, OrMonitor::Second)
    }
}

impl<A: Dialect, B: Dialect> Dialect for Or<A, B> {
    type Monitor = OrMonitor<A::Monitor, B::Monitor>;

    /// `"or"`: tokens name the dialect that followed
    /// ([`token_dialect`](Dialect::token_dialect)).
    fn name(&self) -> &'static str {
        "or"
    }

    fn kind(&self, monitor: &Self::Monitor) -> &'static str {
        match monitor {
            OrMonitor::First(m) => self.first.kind(m),
            OrMonitor::Second(m) => self.second.kind(m),
        }
    }

    fn prepare(&self, method: &Method, headers: &mut HeaderMap) {
        self.first.prepare(method, headers);
        self.second.prepare(method, headers);
    }

    fn credential_headers(&self) -> Cow<'static, [HeaderName]> {
        let (first, second) = (
            self.first.credential_headers(),
            self.second.credential_headers(),
        );
        if second.is_empty() {
            return first;
        }
        if first.is_empty() {
            return second;
        }
        Cow::Owned(first.iter().chain(second.iter()).cloned().collect())
    }

    fn initial_head<'a>(
        &self,
        request: &RequestHead<'_>,
        response: &'a response::Parts,
    ) -> InitialHead<'a, Self::Monitor> {
        match self.first.initial_head(request, response) {
            InitialHead::NotLongRunning => map_head(
                self.second.initial_head(request, response),
                OrMonitor::Second,
            ),
            InitialHead::ReadBody { otherwise: None } => {
                // The first reads the body; should it not be read whole, the second's reading of
                // the head is all there is to go on.
                match self.second.initial_head(request, response) {
                    InitialHead::NotLongRunning => InitialHead::ReadBody { otherwise: None },
                    InitialHead::Follow(follow)
                    | InitialHead::ReadBody {
                        otherwise: Some(follow),
                    } => InitialHead::ReadBody {
                        otherwise: Some(map_follow(follow, OrMonitor::Second)),
                    },
                    InitialHead::ReadBody { otherwise: None } => {
                        InitialHead::ReadBody { otherwise: None }
                    }
                    // The second would refuse a body it cannot judge: so does the pair.
                    InitialHead::RequireBody => InitialHead::RequireBody,
                }
            }
            head => map_head(head, OrMonitor::First),
        }
    }

    fn initial_body<'a>(
        &self,
        request: &RequestHead<'_>,
        response: &'a response::Parts,
        body: &'a [u8],
        _otherwise: Option<Follow<'a, Self::Monitor>>,
        seen: &mut Observer<'_>,
    ) -> InitialBody<'a, Self::Monitor> {
        // Which dialect asked for the body is not in `otherwise` (it may be `None`); the heads
        // are pure, so they are asked again.
        let first = match self.first.initial_head(request, response) {
            InitialHead::RequireBody => InitialHead::ReadBody { otherwise: None },
            head => head,
        };
        match first {
            InitialHead::ReadBody { otherwise } => {
                let nothing_to_follow = otherwise.is_none();
                // What the first records counts only if its verdict does.
                let mut first_seen = Observed::default();
                let verdict = self.first.initial_body(
                    request,
                    response,
                    body,
                    otherwise,
                    &mut Observer {
                        ledger: &mut first_seen,
                    },
                );
                match verdict {
                    InitialBody::Final if nothing_to_follow => {
                        self.second_initial(request, response, body, seen)
                    }
                    verdict => {
                        *seen.ledger = first_seen;
                        map_body(verdict, OrMonitor::First)
                    }
                }
            }
            InitialHead::Follow(follow) => {
                InitialBody::Follow(map_follow(follow, OrMonitor::First))
            }
            InitialHead::NotLongRunning | InitialHead::RequireBody => {
                self.second_initial(request, response, body, seen)
            }
        }
    }

    fn status_head<'a>(
        &self,
        monitor: &Self::Monitor,
        response: &'a response::Parts,
    ) -> StatusHead<'a> {
        match monitor {
            OrMonitor::First(m) => self.first.status_head(m, response),
            OrMonitor::Second(m) => self.second.status_head(m, response),
        }
    }

    fn status_body<'a>(
        &self,
        monitor: &mut Self::Monitor,
        request: &RequestHead<'_>,
        response: &'a response::Parts,
        body: &'a [u8],
        seen: &mut Observer<'_>,
    ) -> Verdict<'a> {
        match monitor {
            OrMonitor::First(m) => self.first.status_body(m, request, response, body, seen),
            OrMonitor::Second(m) => self.second.status_body(m, request, response, body, seen),
        }
    }

    fn final_head(&self, monitor: &Self::Monitor, status: StatusCode) -> FinalHead {
        match monitor {
            OrMonitor::First(m) => self.first.final_head(m, status),
            OrMonitor::Second(m) => self.second.final_head(m, status),
        }
    }

    fn wait_hint(&self, headers: &HeaderMap) -> Option<Duration> {
        self.first
            .wait_hint(headers)
            .or_else(|| self.second.wait_hint(headers))
    }

    fn error_detail<'a>(&self, headers: &'a HeaderMap, body: Option<&'a [u8]>) -> ErrorDetail<'a> {
        let first = self.first.error_detail(headers, body);
        if first.code.is_some() && first.message.is_some() {
            return first;
        }
        let second = self.second.error_detail(headers, body);
        ErrorDetail {
            reported: either(first.reported, second.reported),
            code: either(first.code, second.code),
            message: either(first.message, second.message),
        }
    }

    fn cancel(&self, monitor: &Self::Monitor, polled: &Uri) -> Option<CancelRequest> {
        match monitor {
            OrMonitor::First(m) => self.first.cancel(m, polled),
            OrMonitor::Second(m) => self.second.cancel(m, polled),
        }
    }

    fn cancel_accepted(&self, monitor: &mut Self::Monitor) {
        match monitor {
            OrMonitor::First(m) => self.first.cancel_accepted(m),
            OrMonitor::Second(m) => self.second.cancel_accepted(m),
        }
    }

    fn cancel_head(&self, monitor: &Self::Monitor, status: StatusCode) -> CancelHead {
        match monitor {
            OrMonitor::First(m) => self.first.cancel_head(m, status),
            OrMonitor::Second(m) => self.second.cancel_head(m, status),
        }
    }

    fn token_dialect(&self, monitor: &Self::Monitor) -> &'static str {
        match monitor {
            OrMonitor::First(m) => self.first.token_dialect(m),
            OrMonitor::Second(m) => self.second.token_dialect(m),
        }
    }

    fn token_state(&self, monitor: &Self::Monitor) -> Result<serde_json::Value, serde_json::Error> {
        match monitor {
            OrMonitor::First(m) => self.first.token_state(m),
            OrMonitor::Second(m) => self.second.token_state(m),
        }
    }

    fn token_monitor(
        &self,
        dialect: &str,
        state: serde_json::Value,
    ) -> Option<Result<Self::Monitor, serde_json::Error>> {
        // A name belongs to one dialect: the first that claims it reads the state. The state is
        // a small value, copied so that the second can read it when the first does not claim it.
        if let Some(read) = self.first.token_monitor(dialect, state.clone()) {
            return Some(read.map(OrMonitor::First));
        }
        self.second
            .token_monitor(dialect, state)
            .map(|read| read.map(OrMonitor::Second))
    }
}

#[cfg(test)]
mod tests {
    use http::Request;

    use super::*;
    use crate::dialect::azure::Azure;
    use crate::dialect::google::Google;
    use crate::dialect::table;
    use crate::dialect::testing::{self, Recorder};

    fn both() -> Or<Azure, Google> {
        Azure::new().or(Google::new())
    }

    /// The pair's verdict on an initial response: by its head, then (when the head asks) by
    /// its body.
    fn initial(
        method: Method,
        status: u16,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<String, http::Error> {
        let request = Request::builder()
            .method(method)
            .uri("https://api.example/v1/things")
            .body(())?;
        let response = testing::response_head(status, headers)?;
        let head = testing::request_head(&request);
        let pair = both();
        Ok(match pair.initial_head(&head, &response) {
            InitialHead::ReadBody { otherwise } => {
                let verdict = pair.initial_body(
                    &head,
                    &response,
                    body.as_bytes(),
                    otherwise,
                    &mut Recorder::new().observer(),
                );
                format!("body: {}", table::initial_body(&verdict))
            }
            verdict => format!("head: {}", table::initial_head(&verdict)),
        })
    }

    #[test]
    fn the_first_dialect_that_takes_the_initial_response_follows_it() -> Result<(), http::Error> {
        const JSON: (&str, &str) = ("content-type", "application/json");
        for (method, status, headers, body, expected) in [
            // Azure's headers: Azure's (it reads the body for a state that already failed).
            (
                Method::PUT,
                201,
                &[("azure-asyncoperation", "/ops/1")][..],
                "",
                "body: follow First(AzureMonitor",
            ),
            (
                Method::POST,
                202,
                &[("location", "/ops/1")][..],
                "",
                "head: follow First(AzureMonitor",
            ),
            // Azure reads a PUT's body for a provisioningState; with none, Google's turn.
            (
                Method::PUT,
                200,
                &[JSON][..],
                r#"{"properties":{"provisioningState":"Creating"}}"#,
                "body: follow First(",
            ),
            (
                Method::POST,
                200,
                &[JSON][..],
                r#"{"name":"operations/1","done":false}"#,
                "body: follow Second(",
            ),
            (
                Method::POST,
                200,
                &[JSON][..],
                r#"{"name":"operations/1","done":true,"error":{"code":5,"message":"gone"}}"#,
                "body: failed",
            ),
            // Neither takes it: untouched.
            (Method::GET, 200, &[JSON][..], r#"{"id":1}"#, "head: pass"),
            (Method::POST, 200, &[JSON][..], r#"{"id":1}"#, "body: final"),
            (Method::POST, 204, &[][..], "", "head: pass"),
        ] {
            let verdict = initial(method.clone(), status, headers, body)?;
            assert!(
                verdict.starts_with(expected),
                "{method} {status} {body}: {verdict} (expected {expected})"
            );
        }
        Ok(())
    }

    #[test]
    fn tokens_name_the_dialect_that_followed() {
        let pair = both();
        let google: crate::dialect::google::GoogleMonitor =
            serde_json::from_value(serde_json::json!({"name": "operations/1"}))
                .unwrap_or_else(|e| panic!("a Google monitor: {e}"));
        let monitor = OrMonitor::<crate::dialect::azure::AzureMonitor, _>::Second(google);
        assert_eq!(pair.token_dialect(&monitor), "google");
        let state = pair.token_state(&monitor).unwrap_or_default();
        match pair.token_monitor("google", state.clone()) {
            Some(Ok(OrMonitor::Second(_))) => {}
            other => panic!("a google token is the second's: {other:?}"),
        }
        assert!(pair.token_monitor("x-job-status", state).is_none());
    }

    #[test]
    fn hints_and_details_are_the_firsts_completed_by_the_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", http::HeaderValue::from_static("3"));
        assert_eq!(both().wait_hint(&headers), Some(Duration::from_secs(3)));
        let body = br#"{"error":{"code":7,"message":"denied","status":"PERMISSION_DENIED"}}"#;
        let none = HeaderMap::new();
        let detail = both().error_detail(&none, Some(body));
        assert_eq!(detail.message.as_deref(), Some("denied"));
        assert!(detail.code.is_some());
    }
}
