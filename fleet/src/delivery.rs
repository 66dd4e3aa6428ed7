//! What the handler receives: an operation's identity and how it ended.

use http::Response;
use tower_lro::{Error, ResponseBody};

use crate::job::OperationId;

/// The end of one tracked operation, delivered to the fleet's handler: its
/// [`id`](Delivery::id), the [`key`](Delivery::key) it was tracked under, and the final
/// response or the typed error, exactly as `LongRunning` would have resolved.
///
/// ```
/// use tower_lro_fleet::Delivery;
///
/// fn describe<B>(delivery: &Delivery<B>) -> String {
///     match delivery.result() {
///         Ok(response) => format!("{} {}: {}", delivery.id(), delivery.key(), response.status()),
///         Err(error) => format!("{} {}: {error}", delivery.id(), delivery.key()),
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Delivery<B> {
    id: OperationId,
    key: String,
    result: Result<Response<ResponseBody<B>>, Error>,
}

impl<B> Delivery<B> {
    pub(crate) fn new(
        id: OperationId,
        key: String,
        result: Result<Response<ResponseBody<B>>, Error>,
    ) -> Self {
        Delivery { id, key, result }
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
    /// # fn run<B>(delivery: tower_lro_fleet::Delivery<B>) {
    /// let (id, key, result) = delivery.into_parts();
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
