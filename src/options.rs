//! Per-request options the mechanism reads from a request's extensions and never forwards, and
//! the marker it forwards instead of credentials.

/// Whether the layer follows one request's operation. Insert it into the request's extensions.
///
/// ```
/// let mut req = http::Request::delete("https://management.azure.com/x").body(()).unwrap();
/// // Hand the caller the 202 as it is: this request is not followed.
/// req.extensions_mut().insert(tower_lro::Polling::Disabled);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Polling {
    /// Follow the operation to its final response (the default).
    #[default]
    Enabled,
    /// Send the request and return its response untouched, whatever it says.
    Disabled,
    /// Send the request and return its response as soon as it arrives; when it starts a
    /// long-running operation, its extensions carry a [`ResumeToken`](crate::ResumeToken) to
    /// follow it later (for job queues: store the token, answer your own caller 202).
    AcceptOnly,
}

/// Found in the extensions of the polls and final GETs the layer sends once an operation has gone
/// to another origin than the original request's (one that [`allow_origin`] or
/// [`allow_any_origin`] admitted), and on every request after that.
///
/// The layer withholds the original request's credentials (`Authorization`, `Cookie`,
/// `Proxy-Authorization`) and extensions from such requests. A layer *below* it that adds
/// credentials of its own sees these requests too: it should leave alone those that carry this
/// marker, unless it scopes its credentials by host itself.
///
/// ```
/// # fn sign(req: &mut http::Request<()>, token: &http::HeaderValue) {
/// if req.extensions().get::<tower_lro::CredentialsWithheld>().is_none() {
///     req.headers_mut().insert(http::header::AUTHORIZATION, token.clone());
/// }
/// # }
/// ```
///
/// [`allow_origin`]: crate::LongRunningLayer::allow_origin
/// [`allow_any_origin`]: crate::LongRunningLayer::allow_any_origin
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialsWithheld;

/// How to cancel an operation whose protocol has no cancel of its own, attached by the caller
/// to the request that starts it, and carried in its [`ResumeToken`](crate::ResumeToken)s.
///
/// Azure has no protocol-wide cancel, but many of its operations have one: an ARM template
/// deployment is canceled by `POST {deployment}/cancel`. The URL is resolved against the
/// original request's URI and judged by the layer's origin policy when the cancel is sent.
///
/// ```
/// let mut req = http::Request::put(
///     "https://management.azure.com/subscriptions/s/resourcegroups/g/providers/Microsoft.Resources/deployments/d?api-version=2021-04-01",
/// )
/// .body(())
/// .unwrap();
/// req.extensions_mut().insert(tower_lro::CancelVia::post(
///     "https://management.azure.com/subscriptions/s/resourcegroups/g/providers/Microsoft.Resources/deployments/d/cancel?api-version=2021-04-01",
/// ));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelVia(pub(crate) crate::dialect::CancelRequest);

impl CancelVia {
    /// Cancel with `method url` and an empty body.
    pub fn new(method: http::Method, url: impl Into<String>) -> Self {
        CancelVia(crate::dialect::CancelRequest::new(method, url))
    }

    /// Cancel with `POST url` and an empty body.
    pub fn post(url: impl Into<String>) -> Self {
        CancelVia::new(http::Method::POST, url)
    }

    /// With a JSON body.
    pub fn json(self, body: impl Into<String>) -> Self {
        CancelVia(self.0.json(body))
    }
}
