//! Validation hooks run on every message after decoding and before sending.

use crate::error::ValidationError;

/// A check a message must pass beyond its serde shape (lengths, ranges, formats).
///
/// Opt a channel in with `#[channel("…", validate)]`: the check then runs on the server after
/// decoding a client message (a failure closes with 1008, or replies under `on_invalid = reply`),
/// on the client after decoding a server message (a failure is an `Err` item in the
/// subscription), and on both sides before sending (a failure is returned to the sender and
/// nothing is sent). For an asymmetric channel both message types must implement it.
///
/// ```
/// use ws_channels::{Validate, ValidationError};
///
/// struct Say { text: String }
///
/// impl Validate for Say {
///     fn validate(&self) -> Result<(), ValidationError> {
///         if self.text.is_empty() {
///             return Err(ValidationError::field("text", "must not be empty"));
///         }
///         Ok(())
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`validate` needs `{Self}` to implement `ws_channels::Validate`",
    label = "this message type is validated by its channel",
    note = "implement `ws_channels::Validate` for `{Self}`, or remove `validate` from `#[channel]`"
)]
pub trait Validate {
    /// Returns an error describing the first problem found.
    fn validate(&self) -> Result<(), ValidationError>;
}
