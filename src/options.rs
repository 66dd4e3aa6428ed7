//! Per-request overrides, read from the request's extensions in `call` and never forwarded.

/// Which response is final once an `Azure-AsyncOperation` or `Operation-Location` monitor says
/// `Succeeded` (Azure's `final-state-via`, PROTOCOL §4).
///
/// Insert it into a request's extensions to override the default chosen by the request method:
///
/// ```
/// let mut req = http::Request::post("https://management.azure.com/x/start")
///     .body(())
///     .unwrap();
/// req.extensions_mut().insert(tower_lro::FinalStateVia::Location);
/// ```
///
/// | value | final response |
/// |---|---|
/// | [`AzureAsyncOperation`](Self::AzureAsyncOperation), [`OperationLocation`](Self::OperationLocation) | the last status-monitor response (no extra GET) |
/// | [`Location`](Self::Location) | a GET of the initial response's `Location` (the default rule when there was none) |
/// | [`OriginalUri`](Self::OriginalUri) | a GET of the original request URI |
///
/// It has no effect on `Location` and resource monitors, whose last poll is the final response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FinalStateVia {
    /// `azure-async-operation`: the last status-monitor response is final.
    AzureAsyncOperation,
    /// `location`: GET the `Location` the initial response named.
    Location,
    /// `original-uri`: GET the original request URI.
    OriginalUri,
    /// `operation-location`: the last status-monitor response is final.
    OperationLocation,
}

impl FinalStateVia {
    /// The value's spelling in Azure's `x-ms-long-running-operation-options`.
    pub fn as_str(self) -> &'static str {
        match self {
            FinalStateVia::AzureAsyncOperation => "azure-async-operation",
            FinalStateVia::Location => "location",
            FinalStateVia::OriginalUri => "original-uri",
            FinalStateVia::OperationLocation => "operation-location",
        }
    }
}

impl std::str::FromStr for FinalStateVia {
    type Err = UnknownFinalStateVia;

    /// Parses the `x-ms-long-running-operation-options` spelling, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            FinalStateVia::AzureAsyncOperation,
            FinalStateVia::Location,
            FinalStateVia::OriginalUri,
            FinalStateVia::OperationLocation,
        ]
        .into_iter()
        .find(|via| via.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or(UnknownFinalStateVia(()))
    }
}

/// The error of parsing a [`FinalStateVia`] from an unknown spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFinalStateVia(());

impl std::fmt::Display for UnknownFinalStateVia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad("unknown final-state-via value")
    }
}

impl std::error::Error for UnknownFinalStateVia {}

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
