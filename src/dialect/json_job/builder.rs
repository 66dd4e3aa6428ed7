//! A job API's description, as a user writes it: [`JsonJobBuilder`], checked by
//! [`build`](JsonJobBuilder::build).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use super::{JsonJob, Locate, Progress, Rules};

/// Describes a job API for [`JsonJob`], one part per method; each method replaces that part of
/// the description it starts from: the places of [`JsonJob::new`]'s generic `{id, status}`
/// shape (`/id`, `/status`, poll `{path}/{id}`, error `/error/code` and `/error/message` or
/// `/error`, cancel `POST {poll}/cancel`, the last job object as the final response), and no
/// states: list them, at least one running and one succeeded.
///
/// Every `pointer` is a JSON pointer (RFC 6901: `""` is the whole body, `/a/b` member `b` of
/// member `a`, `/a/0` the first element of array `a`, `~1` a `/` in a name, `~0` a `~`).
///
/// ```
/// use tower_lro::JsonJob;
///
/// // `POST /v2/exports` → `{"job": {"ref": "e-1", "phase": "queued", ...}, "links": {...}}`,
/// // polled at `GET /v2/exports/e-1` until `done` (or `error`, `aborted`); canceled by a
/// // `POST` of the URL it names at `links.abort`.
/// let exports = JsonJob::builder("acme-export")
///     .id("/job/ref")
///     .state("/job/phase")
///     .running(["queued", "working"])
///     .succeeded(["done"])
///     .failed(["error"])
///     .canceled(["aborted"])
///     .error_message(["/job/problem"])
///     .progress("/job/percent")
///     .cancel_at("/links/abort")
///     .build()?;
/// # let _ = exports;
/// # Ok::<(), tower_lro::dialect::json_job::InvalidJobDescription>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct JsonJobBuilder {
    name: &'static str,
    rules: Rules,
}

impl JsonJobBuilder {
    pub(super) fn new(name: &'static str) -> Self {
        JsonJobBuilder {
            name,
            rules: Rules::shape(),
        }
    }

    /// Only bodies whose member at `pointer` is one of `values` are jobs (OpenAI's `object`:
    /// `"batch"`); any other initial response is returned untouched. By default every body
    /// with a state is a job.
    pub fn kind<I, S>(mut self, pointer: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rules.kind = Some((pointer.to_owned(), strings(values)));
        self
    }

    /// Where the job's id is (default `/id`): a string, or a number taken as its JSON text.
    pub fn id(mut self, pointer: &str) -> Self {
        self.rules.id = pointer.to_owned();
        self
    }

    /// Poll at this path template, resolved against the original request's URI (default
    /// `{path}/{id}`): `{path}` is the original request's path without a trailing `/`, `{id}`
    /// the job's id as one path segment (percent-encoded). The original request's query, if
    /// any, is appended (so Azure OpenAI's `api-version` travels).
    pub fn poll_path(mut self, template: &str) -> Self {
        self.rules.poll = Locate::Template(template.to_owned());
        self
    }

    /// Poll at the URL the initial job object names at `pointer` (Replicate's `/urls/get`),
    /// resolved against the original request's URI.
    pub fn poll_at(mut self, pointer: &str) -> Self {
        self.rules.poll = Locate::Member(pointer.to_owned());
        self
    }

    /// Where the job's state is (default `/status`): a string, one of the four vocabularies.
    pub fn state(mut self, pointer: &str) -> Self {
        self.rules.state = pointer.to_owned();
        self
    }

    /// The states of a job still running.
    pub fn running<I: IntoIterator<Item = S>, S: Into<String>>(mut self, states: I) -> Self {
        self.rules.running = strings(states);
        self
    }

    /// The states of a job that ended well.
    pub fn succeeded<I: IntoIterator<Item = S>, S: Into<String>>(mut self, states: I) -> Self {
        self.rules.succeeded = strings(states);
        self
    }

    /// The states of a job that ended unsuccessfully ([`Failed`](crate::ErrorKind::Failed)).
    pub fn failed<I: IntoIterator<Item = S>, S: Into<String>>(mut self, states: I) -> Self {
        self.rules.failed = strings(states);
        self
    }

    /// The states of a canceled job ([`Canceled`](crate::ErrorKind::Canceled)).
    pub fn canceled<I: IntoIterator<Item = S>, S: Into<String>>(mut self, states: I) -> Self {
        self.rules.canceled = strings(states);
        self
    }

    /// Where a failed or canceled job's error code may be, first found first: a string, or a
    /// number taken as its JSON text.
    pub fn error_code<I: IntoIterator<Item = S>, S: Into<String>>(mut self, pointers: I) -> Self {
        self.rules.error_code = strings(pointers);
        self
    }

    /// Where a failed or canceled job's error message may be, first string found first.
    pub fn error_message<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        pointers: I,
    ) -> Self {
        self.rules.error_message = strings(pointers);
        self
    }

    /// The job's progress in percent is the number at `pointer`.
    pub fn progress(mut self, pointer: &str) -> Self {
        self.rules.progress = Some(Progress::Percent(pointer.to_owned()));
        self
    }

    /// The job's progress is `done / total` (both numbers; none while `total` is 0).
    pub fn progress_ratio(mut self, done: &str, total: &str) -> Self {
        self.rules.progress = Some(Progress::Ratio(done.to_owned(), total.to_owned()));
        self
    }

    /// Cancel by `POST` to this path template (default `{poll}/cancel`), resolved against the
    /// polled URL: `{poll}` is the polled URL's path, `{id}` the job's id as one path segment.
    /// The polled URL's query, if any, is appended.
    pub fn cancel_path(mut self, template: &str) -> Self {
        self.rules.cancel = Some(Locate::Template(template.to_owned()));
        self
    }

    /// Cancel by `POST` to the URL the initial job object names at `pointer` (Replicate's
    /// `/urls/cancel`); a job object without it cannot be canceled.
    pub fn cancel_at(mut self, pointer: &str) -> Self {
        self.rules.cancel = Some(Locate::Member(pointer.to_owned()));
        self
    }

    /// The API has no cancel: [`CancelUnsupported`](crate::ErrorKind::CancelUnsupported).
    pub fn no_cancel(mut self) -> Self {
        self.rules.cancel = None;
        self
    }

    /// A job in a succeeded state whose member at `pointer` is present and not `null` was
    /// canceled: [`Canceled`](crate::ErrorKind::Canceled), the job object kept in the error
    /// ([`Error::body`](crate::Error::body)), as for a job in a canceled state. For an API whose
    /// canceled jobs end in the same state as finished ones, and say so elsewhere (Anthropic's
    /// `ended` batch with its `cancel_initiated_at` set). By default a succeeded state is
    /// success.
    ///
    /// ```
    /// use tower_lro::JsonJob;
    ///
    /// let batches = JsonJob::builder("acme-batch")
    ///     .running(["running"])
    ///     .succeeded(["ended"])
    ///     .canceled_when_set("/canceled_at")
    ///     .build()?;
    /// # let _ = batches;
    /// # Ok::<(), tower_lro::dialect::json_job::InvalidJobDescription>(())
    /// ```
    pub fn canceled_when_set(mut self, pointer: &str) -> Self {
        self.rules.canceled_when_set = Some(pointer.to_owned());
        self
    }

    /// The final response is a `GET` of the URL the succeeded job object names at `pointer`,
    /// instead of that job object itself (the default). A succeeded job without that URL is
    /// [`MalformedStatus`](crate::ErrorKind::MalformedStatus).
    pub fn result_at(mut self, pointer: &str) -> Self {
        self.rules.result = Some(pointer.to_owned());
        self
    }

    /// The dialect, once the description is checked: every pointer well-formed, a running and
    /// a succeeded state at least, no state in two vocabularies, a poll template with `{id}`.
    pub fn build(self) -> Result<JsonJob, InvalidJobDescription> {
        self.rules.check(self.name)?;
        Ok(JsonJob {
            name: self.name,
            rules: Arc::new(self.rules),
        })
    }
}

fn strings<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> Vec<String> {
    values.into_iter().map(Into::into).collect()
}

/// A job API description [`JsonJobBuilder::build`] refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidJobDescription(pub(super) String);

impl fmt::Display for InvalidJobDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid job API description: {}", self.0)
    }
}

impl StdError for InvalidJobDescription {}

impl Rules {
    /// Why the description cannot describe a job API, if it cannot. A pointer that is not one
    /// would never match, and every job would be returned untouched as if it were a result.
    pub(super) fn check(&self, name: &str) -> Result<(), InvalidJobDescription> {
        let invalid = |why: String| Err(InvalidJobDescription(why));
        if name.trim().is_empty() {
            return invalid("the name is empty".into());
        }
        let mut pointers = vec![&self.id, &self.state];
        pointers.extend(&self.error_code);
        pointers.extend(&self.error_message);
        pointers.extend(self.result.iter());
        pointers.extend(self.canceled_when_set.iter());
        if let Some((pointer, values)) = &self.kind {
            pointers.push(pointer);
            if values.is_empty() {
                return invalid("`kind` lists no values".into());
            }
        }
        for locate in [Some(&self.poll), self.cancel.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Locate::Member(pointer) = locate {
                pointers.push(pointer);
            }
        }
        match &self.progress {
            Some(Progress::Percent(p)) => pointers.push(p),
            Some(Progress::Ratio(done, total)) => pointers.extend([done, total]),
            None => {}
        }
        if let Some(bad) = pointers.into_iter().find(|p| !is_pointer(p)) {
            return invalid(format!("{bad:?} is not a JSON pointer (RFC 6901)"));
        }
        if let Locate::Template(template) = &self.poll {
            if !template.contains("{id}") {
                return invalid(format!("the poll path {template:?} has no `{{id}}`"));
            }
        }
        if self.running.is_empty() || self.succeeded.is_empty() {
            return invalid("a job API needs a running and a succeeded state at least".into());
        }
        let all = [&self.running, &self.succeeded, &self.failed, &self.canceled];
        for (i, states) in all.iter().enumerate() {
            for state in states.iter() {
                if all[i + 1..].iter().any(|later| later.contains(state)) {
                    return invalid(format!("the state {state:?} is in two vocabularies"));
                }
            }
        }
        Ok(())
    }
}

/// RFC 6901: empty, or `/`-prefixed reference tokens where `~` is followed by `0` or `1`.
fn is_pointer(pointer: &str) -> bool {
    if !pointer.is_empty() && !pointer.starts_with('/') {
        return false;
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers() {
        for (pointer, ok) in [
            ("", true),
            ("/", true),
            ("/a/b", true),
            ("/a~1b/~0", true),
            ("/a/0", true),
            ("a", false),
            ("/a~", false),
            ("/a~2", false),
        ] {
            assert_eq!(is_pointer(pointer), ok, "{pointer:?}");
        }
    }

    #[test]
    fn descriptions_that_cannot_describe_a_job_api_are_refused() {
        let refused = |builder: JsonJobBuilder| builder.build().err().map(|e| e.to_string());
        let b = || JsonJob::builder("x").running(["r"]).succeeded(["s"]);
        assert!(b().build().is_ok());
        for (builder, why) in [
            (JsonJob::builder(" "), "the name is empty"),
            (b().state("status"), "\"status\" is not a JSON pointer"),
            (b().id("/a~"), "\"/a~\" is not a JSON pointer"),
            (b().error_code(["/ok", "bad"]), "\"bad\" is not"),
            (b().progress_ratio("/d", "t"), "\"t\" is not"),
            (b().poll_at("urls.get"), "\"urls.get\" is not"),
            (b().cancel_at("x"), "\"x\" is not"),
            (b().result_at("x"), "\"x\" is not"),
            (b().canceled_when_set("x"), "\"x\" is not"),
            (b().kind("/object", Vec::<String>::new()), "lists no values"),
            (b().kind("object", ["batch"]), "\"object\" is not"),
            (b().poll_path("{path}/status"), "has no `{id}`"),
            (
                b().running(Vec::<String>::new()),
                "a running and a succeeded",
            ),
            (
                b().succeeded(Vec::<String>::new()),
                "a running and a succeeded",
            ),
            (b().failed(["f", "r"]), "\"r\" is in two"),
            (b().succeeded(["ok"]).canceled(["ok"]), "\"ok\" is in two"),
        ] {
            let why_not = refused(builder);
            assert!(
                why_not.as_deref().is_some_and(|w| w.contains(why)),
                "{why_not:?} should say {why:?}"
            );
        }
    }
}
