//! [`AzureCredential`]: an `azure_core` credential as a [`TokenSource`].

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use azure_core::credentials::TokenCredential;

use tower_lro::BoxError;

use crate::{AccessToken, TokenSource};

/// Any `azure_core::credentials::TokenCredential` (azure_identity's `DeveloperToolsCredential`,
/// `ManagedIdentityCredential`, `ClientSecretCredential`, …) as the [`TokenSource`] of a
/// [`BearerTokenLayer`](crate::BearerTokenLayer), asking for tokens for fixed scopes.
///
/// ```no_run
/// # fn credential() -> std::sync::Arc<dyn azure_core::credentials::TokenCredential> { unimplemented!() }
/// use tower_lro_auth::{AzureCredential, BearerTokenLayer};
///
/// // let credential = azure_identity::DeveloperToolsCredential::new(None)?;
/// let credential = credential();
/// let layer = BearerTokenLayer::new(AzureCredential::new(
///     credential,
///     ["https://management.azure.com/.default"],
/// ));
/// ```
#[derive(Clone)]
pub struct AzureCredential {
    credential: Arc<dyn TokenCredential>,
    scopes: Vec<String>,
}

impl AzureCredential {
    /// Tokens from `credential` for `scopes` (for Azure Resource Manager,
    /// `https://management.azure.com/.default`).
    pub fn new<I>(credential: Arc<dyn TokenCredential>, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        AzureCredential {
            credential,
            scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }
}

impl TokenSource for AzureCredential {
    async fn token(&self) -> Result<AccessToken, BoxError> {
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        let token = self.credential.get_token(&scopes, None).await?;
        Ok(AccessToken::new(
            token.token.secret(),
            SystemTime::from(token.expires_on),
        ))
    }
}

impl fmt::Debug for AzureCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The credential's own Debug output is its business; it may hold a client secret.
        f.debug_struct("AzureCredential")
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}
