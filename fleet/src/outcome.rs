//! What the handler receives: an operation's identity and how it ended.

use http::Response;
use tower_lro::{Error, ResponseBody};

use crate::job::OperationId;

/// The end of one tracked operation, handed to the fleet's handler: its
/// [`id`](Outcome::id), the [`key`](Outcome::key) it was tracked under, and the final response
/// or the typed error, exactly as `LongRunning` would have resolved.
///
/// ```
/// use tower_lro_fleet::Outcome;
///
/// fn describe<B>(outcome: &Outcome<B>) -> String {
///     match outcome.result() {
///         Ok(response) => format!("{} {}: {}", outcome.id(), outcome.key(), response.status()),
///         Err(error) => format!("{} {}: {error}", outcome.id(), outcome.key()),
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Outcome<B> {
    id: OperationId,
    key: String,
    result: Result<Response<ResponseBody<B>>, Error>,
}

impl<B> Outcome<B> {
    pub(crate) fn new(
        id: OperationId,
        key: String,
        result: Result<Response<ResponseBody<B>>, Error>,
    ) -> Self {
        Outcome { id, key, result }
    }

    /// The operation's identity: the same on every delivery of this operation's outcome.
    pub fn id(&self) -> &OperationId {
        &self.id
    }

    /// The key the operation was tracked under (yours: an order number, a resource name).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The final response (its extensions carry the `OperationInfo`), or why the operation
    /// failed or could not be followed.
    pub fn result(&self) -> &Result<Response<ResponseBody<B>>, Error> {
        &self.result
    }

    /// Takes the result, to read the body.
    pub fn into_result(self) -> Result<Response<ResponseBody<B>>, Error> {
        self.result
    }

    /// Takes everything: the id, the key and the result.
    ///
    /// ```
    /// # fn run<B>(outcome: tower_lro_fleet::Outcome<B>) {
    /// let (id, key, result) = outcome.into_parts();
    /// # }
    /// ```
    pub fn into_parts(
        self,
    ) -> (
        OperationId,
        String,
        Result<Response<ResponseBody<B>>, Error>,
    ) {
        (self.id, self.key, self.result)
    }
}
