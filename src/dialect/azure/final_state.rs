//! [`FinalStateVia`]: which response is final once an Azure status monitor says `Succeeded`.

/// Which response is final once an `Azure-AsyncOperation` or `Operation-Location` monitor says
/// `Succeeded` (Azure's `final-state-via`, PROTOCOL §4), read by the [`Azure`](super::Azure) dialect.
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
