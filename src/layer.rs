//! [`LongRunningLayer`]: the builder, its defaults, and why.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use tower_layer::Layer;

use crate::config::Config;
use crate::dialect::azure::Azure;
use crate::dialect::Dialect;
use crate::protocol::url::{self, OriginPolicy};
use crate::service::LongRunning;

/// A [`Layer`] that follows HTTP long-running operations to their final response.
///
/// Wrap any `Service<http::Request<B>>`: when the server answers `200`/`201`/`202`/`204` with
/// `Azure-AsyncOperation` or `Operation-Location`, `202` with `Location`, or a PUT/PATCH body
/// whose `provisioningState` is not terminal, [`LongRunning`] polls through the same inner service
/// and its future resolves with the **final** response, or with an [`Error`](crate::Error) saying
/// why the operation failed, was canceled or could not be followed. Other responses pass through
/// untouched. The rules, case by case: the [protocol reference](crate::_protocol); where to put
/// the layer: the [crate documentation](crate#where-to-put-the-layer).
///
/// # Defaults
///
/// | setting | default | why |
/// |---|---|---|
/// | [`initial_delay`](Self::initial_delay) | 1 s, doubling | only for responses without a hint; short operations finish fast, long ones settle at `max_delay` |
/// | [`min_delay`](Self::min_delay) | 0 | the server's hint is obeyed as given (`retry-after-ms: 50` means 50 ms); only one request per operation is ever in flight and polls are counted |
/// | [`max_delay`](Self::max_delay) | 60 s | a hostile `Retry-After` of a year costs one minute; Azure's hints are 10–60 s |
/// | [`max_polls`](Self::max_polls) | 5 000 | about 20 hours at Azure's usual 15 s cadence; stops a server that says "running, poll now" forever |
/// | [`timeout`](Self::timeout) | none | operations may legitimately take hours; the poll limit, delay ceiling and poll timeout bound them anyway (about `max_polls × (max_delay + poll_timeout)`); set it for a wall-clock bound |
/// | [`poll_timeout`](Self::poll_timeout) | 60 s | a status GET that has not answered in a minute is stuck: it is retried, so a silent server cannot hang the operation |
/// | [`max_transient_retries`](Self::max_transient_retries) | 8 | rides out a couple of minutes of 503s or resets without losing the operation |
/// | [`max_status_body`](Self::max_status_body) | 1 MiB | status bodies are a few hundred bytes and resources a few KiB; bounds memory per operation |
/// | origins | same origin only | monitor URLs come from the network; see [`allow_origin`](Self::allow_origin) |
/// | [`Azure::follow_created_location`] | off | a `201` with `Location` is HTTP's ordinary "created here" (an option of the dialect: `LongRunningLayer::with_dialect(Azure::new().follow_created_location(true))`) |
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use tower_lro::LongRunningLayer;
/// # use http::{Request, Response};
/// # use http_body_util::Full;
/// # use bytes::Bytes;
/// # let client = tower::service_fn(|_req: Request<Full<Bytes>>| async {
/// #     Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("{}"))))
/// # });
///
/// let service = ServiceBuilder::new()
///     .layer(
///         LongRunningLayer::new()
///             .max_delay(Duration::from_secs(30))
///             .timeout(Duration::from_secs(2 * 60 * 60)),
///     )
///     .service(client);
/// ```
///
/// # Dialects
///
/// [`new`](Self::new) follows Azure's protocol ([`Azure`]); [`with_dialect`](Self::with_dialect)
/// follows another, such as Google's AIP-151 operations ([`Google`](crate::Google)) or one of
/// your own ([`Dialect`]). Every setting below applies to every dialect.
#[derive(Clone, Default)]
pub struct LongRunningLayer<D = Azure> {
    pub(crate) config: Arc<Config>,
    pub(crate) dialect: D,
}

impl LongRunningLayer {
    /// A layer with the defaults listed above, following Azure's protocol.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<D: Dialect> LongRunningLayer<D> {
    /// A layer with the defaults listed above, following `dialect`'s protocol.
    ///
    /// ```
    /// use tower_lro::{Google, LongRunningLayer};
    ///
    /// let layer = LongRunningLayer::with_dialect(Google::new());
    /// # let _ = layer;
    /// ```
    pub fn with_dialect(dialect: D) -> Self {
        LongRunningLayer {
            config: Arc::new(Config::for_dialect(&dialect)),
            dialect,
        }
    }

    /// The dialect followed.
    pub fn dialect(&self) -> &D {
        &self.dialect
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The wait before a poll when the latest response gave no `Retry-After` (or
    /// `retry-after-ms`); it doubles with each such wait, up to [`max_delay`](Self::max_delay).
    /// Also the base of the backoff between transient retries.
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.config().delays.initial = delay;
        self
    }

    /// The shortest wait between polls, whatever the server asks. Raise it to protect a server
    /// that asks for `Retry-After: 0`; when it exceeds [`max_delay`](Self::max_delay), `max_delay`
    /// wins.
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.config().delays.min = delay;
        self
    }

    /// The longest wait between polls, whatever the server asks.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.config().delays.max = delay;
        self
    }

    /// How many status requests one operation may send (transient retries included) before it
    /// ends with [`ErrorKind::TooManyPolls`](crate::ErrorKind::TooManyPolls).
    pub fn max_polls(mut self, polls: u32) -> Self {
        self.config().max_polls = polls;
        self
    }

    /// A deadline for the whole operation, from the call to the final response's head: past it
    /// the operation ends with [`ErrorKind::TimedOut`](crate::ErrorKind::TimedOut). A wait that
    /// would end after the deadline fails at once instead of sleeping into it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config().timeout = Some(timeout);
        self
    }

    /// How long one poll or final GET may take to answer (and, for status bodies, to be read)
    /// before it counts as a transient failure and is retried. `None` waits for ever; the
    /// initial request is never bounded by it (put a `TimeoutLayer` below this layer for that).
    pub fn poll_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config().poll_timeout = timeout;
        self
    }

    /// How many times in a row a poll or final GET that failed transiently (connection errors,
    /// 408, 429, 500, 502, 503, 504, a poll timeout) is retried before the operation ends with
    /// that failure.
    pub fn max_transient_retries(mut self, retries: u32) -> Self {
        self.config().max_transient_retries = retries;
        self
    }

    /// The most bytes of a status body (or a resource body whose `provisioningState` decides) the
    /// layer reads; a `Content-Length` above it is refused before reading. Final bodies are
    /// streamed and never limited.
    pub fn max_status_body(mut self, bytes: usize) -> Self {
        self.config().max_status_body = bytes;
        self
    }

    /// Also follow monitor URLs on `origin` (`scheme://host[:port]`), besides the original
    /// request's origin. The original request's credentials (`Authorization`, `Cookie`,
    /// `Proxy-Authorization`, `X-Api-Key`, `Api-Key`, the dialect's
    /// [`credential_headers`](crate::Dialect::credential_headers) and
    /// [`withhold_header`](Self::withhold_header)'s) and extensions are never sent to another
    /// origin, and an `https` operation never follows an `http` URL.
    ///
    /// Layers *below* this one still see those requests: an auth layer there adds its token to
    /// whatever it is given. Such requests carry [`CredentialsWithheld`](crate::CredentialsWithheld)
    /// in their extensions so it can hold back.
    ///
    /// ```
    /// let layer = tower_lro::LongRunningLayer::new()
    ///     .allow_origin("https://status.example.com".parse()?)
    ///     .max_polls(100);
    /// # Ok::<(), tower_lro::InvalidOrigin>(())
    /// ```
    pub fn allow_origin(mut self, origin: Origin) -> Self {
        let origin = origin.0;
        let config = self.config();
        match &mut config.origins {
            OriginPolicy::SameOrigin => config.origins = OriginPolicy::AllowList(vec![origin]),
            OriginPolicy::AllowList(list) => list.push(origin),
            OriginPolicy::Any => {}
        }
        self
    }

    /// Treat `name` as a credential too: like `Authorization`, it is never sent to another
    /// origin and never kept in a [`ResumeToken`](crate::ResumeToken). For an API whose key
    /// travels in a header of its own.
    ///
    /// ```
    /// use http::header::HeaderName;
    ///
    /// let layer = tower_lro::LongRunningLayer::new()
    ///     .withhold_header(HeaderName::from_static("x-goog-api-key"));
    /// # let _ = layer;
    /// ```
    pub fn withhold_header(mut self, name: HeaderName) -> Self {
        let withheld = &mut self.config().withheld;
        if !withheld.contains(&name) {
            withheld.push(name);
        }
        self
    }

    /// Follow monitor URLs on any http(s) origin. Credentials and extensions are still withheld
    /// from other origins, and `https` still never moves to `http`.
    pub fn allow_any_origin(mut self) -> Self {
        self.config().origins = OriginPolicy::Any;
        self
    }
}

impl<S, D: Clone> Layer<S> for LongRunningLayer<D> {
    type Service = LongRunning<S, D>;

    fn layer(&self, inner: S) -> Self::Service {
        LongRunning::from_parts(inner, self.config.clone(), self.dialect.clone())
    }
}

impl<D: fmt::Debug> fmt::Debug for LongRunningLayer<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("LongRunningLayer")
            .field("initial_delay", &c.delays.initial)
            .field("min_delay", &c.delays.min)
            .field("max_delay", &c.delays.max)
            .field("max_polls", &c.max_polls)
            .field("timeout", &c.timeout)
            .field("poll_timeout", &c.poll_timeout)
            .field("max_transient_retries", &c.max_transient_retries)
            .field("max_status_body", &c.max_status_body)
            .field("origins", &c.origins)
            .field("withheld", &c.withheld)
            .field("dialect", &self.dialect)
            .finish()
    }
}

/// An origin, `scheme://host[:port]` with an http(s) scheme, that
/// [`LongRunningLayer::allow_origin`] lets an operation's URLs move to. Parse one from a string;
/// anything with a path, query, fragment or userinfo is refused, so that a typo cannot widen an
/// allow-list.
///
/// ```
/// let origin: tower_lro::Origin = "https://status.example.com:8443".parse()?;
/// assert!("https://status.example.com/path".parse::<tower_lro::Origin>().is_err());
/// # Ok::<(), tower_lro::InvalidOrigin>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(url::Origin);

impl std::str::FromStr for Origin {
    type Err = InvalidOrigin;

    fn from_str(text: &str) -> Result<Self, InvalidOrigin> {
        url::Origin::parse(text).map(Origin).map_err(InvalidOrigin)
    }
}

/// Why a string is not an [`Origin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOrigin(String);

impl fmt::Display for InvalidOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidOrigin {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_change_only_their_setting_and_clones_are_independent() {
        let base = LongRunningLayer::new();
        let tuned = base
            .clone()
            .max_polls(3)
            .min_delay(Duration::from_millis(5));
        assert_eq!(base.config.max_polls, crate::config::MAX_POLLS);
        assert_eq!(tuned.config.max_polls, 3);
        assert_eq!(tuned.config.delays.min, Duration::from_millis(5));
        assert_eq!(tuned.config.delays.max, crate::config::MAX_DELAY);
    }

    #[test]
    fn allow_lists_accumulate_and_reject_non_origins() {
        let layer = LongRunningLayer::new()
            .allow_origin("https://a.example".parse().unwrap())
            .allow_origin("https://b.example:8443".parse().unwrap());
        assert!(matches!(&layer.config.origins, OriginPolicy::AllowList(list) if list.len() == 2));
        assert!("https://a.example/path".parse::<Origin>().is_err());
        assert!("a.example".parse::<Origin>().is_err());
        let any = LongRunningLayer::new()
            .allow_any_origin()
            .allow_origin("https://a.example".parse().unwrap());
        assert!(matches!(any.config.origins, OriginPolicy::Any));
    }

    #[test]
    fn debug_lists_the_settings() {
        let text = format!("{:?}", LongRunningLayer::new());
        assert!(text.contains("max_polls: 5000"), "{text}");
    }
}
