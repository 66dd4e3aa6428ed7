//! Unit-testing a dialect without I/O.
//!
//! A [`Dialect`](super::Dialect) is pure: each method takes the original request's head, a
//! response's head (and body bytes) and an [`Observer`], and returns a verdict. This module builds
//! those outside the layer, so that a dialect's decisions can be tested one response at a time,
//! as a table: [`request_head`] borrows a [`RequestHead`] from an `http::Request`,
//! [`response_head`] makes a response's head from a status and headers, and a [`Recorder`] lends
//! an [`Observer`] and tells afterwards what the dialect recorded.
//!
//! ```
//! # use std::borrow::Cow;
//! # use http::response;
//! use tower_lro::dialect::testing::{self, Recorder};
//! use tower_lro::dialect::{Dialect, InitialHead, PollAt, StatusHead, Verdict};
//! # use tower_lro::dialect::{Follow, Observer, RequestHead};
//!
//! // `JobStatus` is the `Dialect` trait's example.
//! # #[derive(Debug, Clone)]
//! # struct JobStatus;
//! # impl Dialect for JobStatus {
//! #     type Monitor = ();
//! #     fn name(&self) -> &'static str { "x-job-status" }
//! #     fn initial_head<'a>(
//! #         &self, _: &RequestHead<'_>, res: &'a response::Parts,
//! #     ) -> InitialHead<'a, ()> {
//! #         match res.headers.get("x-job-status") {
//! #             Some(url) if res.status == 202 => InitialHead::Follow(Follow::new((), PollAt::url(url))),
//! #             _ => InitialHead::NotLongRunning,
//! #         }
//! #     }
//! #     fn status_body<'a>(
//! #         &self, _: &mut (), _: &RequestHead<'_>, _: &'a response::Parts, body: &'a [u8],
//! #         seen: &mut Observer<'_>,
//! #     ) -> Verdict<'a> {
//! #         #[derive(serde::Deserialize)]
//! #         struct Job<'b> { #[serde(borrow)] state: Cow<'b, str> }
//! #         match serde_json::from_slice::<Job<'_>>(body) {
//! #             Ok(job) if job.state == "done" => Verdict::Done,
//! #             Ok(job) => { seen.state(&job.state); Verdict::Running { moved: None } }
//! #             Err(e) => Verdict::Malformed(e.to_string()),
//! #         }
//! #     }
//! # }
//! # fn main() -> Result<(), http::Error> {
//! let request = http::Request::post("https://jobs.example/jobs").body(())?;
//! let head = testing::request_head(&request);
//!
//! // The initial response names the job's status URL.
//! let accepted = testing::response_head(202, &[("x-job-status", "/jobs/1/status")])?;
//! match JobStatus.initial_head(&head, &accepted) {
//!     InitialHead::Follow(follow) => {
//!         assert_eq!(follow.poll_at(), &PollAt::Reference(b"/jobs/1/status"[..].into()));
//!     }
//!     other => panic!("not followed: {other:?}"),
//! }
//! assert!(matches!(
//!     JobStatus.initial_head(&head, &testing::response_head(200, &[])?),
//!     InitialHead::NotLongRunning
//! ));
//!
//! // A poll's answer: its head, then its body, and what the dialect recorded.
//! let ok = testing::response_head(200, &[("content-type", "application/json")])?;
//! assert!(matches!(JobStatus.status_head(&(), &ok), StatusHead::ReadBody));
//! let mut seen = Recorder::new();
//! let body = br#"{"state":"running"}"#;
//! let verdict = JobStatus.status_body(&mut (), &head, &ok, body, &mut seen.observer());
//! assert!(matches!(verdict, Verdict::Running { moved: None }));
//! assert_eq!(seen.state(), Some("running"));
//! # Ok(())
//! # }
//! ```

use http::{response, Request, Response};

use super::{Observed, Observer, RequestHead};

/// The original request, as a dialect sees it: its method, URI, headers and extensions (such as
/// [`FinalStateVia`](crate::FinalStateVia)).
///
/// The layer gives a dialect the headers that polls repeat (without payload and conditional
/// headers); this gives them all, as the request has them.
pub fn request_head<B>(request: &Request<B>) -> RequestHead<'_> {
    RequestHead {
        method: request.method(),
        uri: request.uri(),
        headers: request.headers(),
        extensions: request.extensions(),
    }
}

/// A response's head: `status` and `headers` (names and values as text, in order; a name may
/// repeat). An error for a status outside `100..=999` or a header name or value HTTP does not
/// allow.
pub fn response_head(
    status: u16,
    headers: &[(&str, &str)],
) -> Result<response::Parts, http::Error> {
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    Ok(response.body(())?.into_parts().0)
}

/// Lends an [`Observer`] to a dialect, and tells afterwards what the dialect recorded: what the
/// layer would report in [`OperationInfo`](crate::OperationInfo).
#[derive(Debug, Default)]
pub struct Recorder {
    observed: Observed,
}

impl Recorder {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        Recorder::default()
    }

    /// An observer for one call of the dialect; what it records is kept here, and a later
    /// observer's records replace it value by value, as between polls.
    pub fn observer(&mut self) -> Observer<'_> {
        Observer {
            ledger: &mut self.observed,
        }
    }

    /// The operation's state as the server spelled it.
    pub fn state(&self) -> Option<&str> {
        self.observed.state.as_deref()
    }

    /// How far along the operation is, in percent.
    pub fn percent_complete(&self) -> Option<f64> {
        self.observed.percent_complete
    }

    /// The operation's id.
    pub fn operation_id(&self) -> Option<&str> {
        self.observed.operation_id.as_deref()
    }

    /// The operation's name.
    pub fn operation_name(&self) -> Option<&str> {
        self.observed.operation_name.as_deref()
    }
}
