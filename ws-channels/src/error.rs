//! The crate's error types.

use std::borrow::Cow;

/// A boxed error, as returned by handlers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler returns: `Ok(())`, or an error that closes the connection with 1011.
pub type HandlerResult = Result<(), BoxError>;

/// Everything that can go wrong while exchanging typed messages.
///
/// Errors about one frame ([`Error::Decode`], [`Error::Validation`],
/// [`Error::UnexpectedBinary`]) are reported without ending a client
/// [`Subscription`](crate::Subscription): the next frame is read as usual.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A text frame was not valid JSON or did not have the shape of the channel's message type.
    #[error("cannot decode a message on channel `{channel}`: {source}")]
    Decode {
        /// The channel's name.
        channel: &'static str,
        /// What serde_json reported (line, column and the expected shape).
        #[source]
        source: serde_json::Error,
    },
    /// A binary frame arrived on a channel whose messages are JSON text.
    #[error("unexpected binary frame on channel `{channel}`: messages are JSON text frames")]
    UnexpectedBinary {
        /// The channel's name.
        channel: &'static str,
    },
    /// A message decoded but its [`Validate`](crate::Validate) implementation rejected it.
    #[error("invalid message on channel `{channel}`: {source}")]
    Validation {
        /// The channel's name.
        channel: &'static str,
        /// The reason the validator gave.
        #[source]
        source: ValidationError,
    },
    /// A text message was larger than the server's `max_message_size`; it was not decoded.
    #[error("message of {size} bytes is larger than the limit of {max} bytes")]
    MessageTooLarge {
        /// The message's size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A client sent messages faster than the server's rate limit allows; the message was
    /// dropped.
    #[error("rate limit exceeded: message dropped")]
    RateLimited,
    /// A message could not be serialized.
    #[error("cannot encode a message on channel `{channel}`: {source}")]
    Encode {
        /// The channel's name.
        channel: &'static str,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },
    /// A path did not match a channel's template or a parameter did not parse.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The server refused the WebSocket handshake with an HTTP status.
    #[error("the server rejected the handshake with HTTP {status}: {body}")]
    Rejected {
        /// The HTTP status code (404 unknown path, 400 bad parameter, 401/403 refused by `on_connect`…).
        status: u16,
        /// The response body, the server's reason (possibly empty).
        body: String,
    },
    /// The connection is closed (or closing): nothing more can be sent.
    #[error("the connection is closed")]
    Closed,
    /// A message handler returned an error. The server closes that connection with 1011.
    #[error("handler failed: {0}")]
    Handler(#[source] BoxError),
    /// A message handler panicked. The server closes that connection with 1011.
    #[error("handler panicked: {0}")]
    HandlerPanicked(String),
    /// The WebSocket protocol layer failed (I/O, protocol violation, frame too large…).
    #[error("websocket error: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    /// A socket-level I/O error (binding, accepting).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// A message failed a [`Validate`](crate::Validate) check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.as_ref().map(|f| format!("`{f}`: ")).unwrap_or_default())]
pub struct ValidationError {
    field: Option<Cow<'static, str>>,
    message: Cow<'static, str>,
}

impl ValidationError {
    /// A validation failure with a human-readable reason.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }

    /// A validation failure about one field of the message.
    pub fn field(field: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The field at fault, if the validator named one.
    pub fn field_name(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The reason, without the field name.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A concrete address did not fit a channel template, or one of its parameters did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// The path does not have the template's shape (segment count or a static segment differs).
    #[error("`{path}` does not match the channel address `{template}`")]
    NoMatch {
        /// The address template, in `{param}` form.
        template: &'static str,
        /// The path that was tried.
        path: String,
    },
    /// A parameter was not valid percent-encoded UTF-8.
    #[error("parameter `{name}` of `{template}` is not valid percent-encoded UTF-8")]
    InvalidEncoding {
        /// The address template.
        template: &'static str,
        /// The parameter's name as written in the template.
        name: &'static str,
    },
    /// A parameter did not parse as its declared type.
    #[error("parameter `{name}` of `{template}` must be {expected}, got `{value}`: {reason}")]
    Invalid {
        /// The address template.
        template: &'static str,
        /// The parameter's name as written in the template.
        name: &'static str,
        /// The decoded value that failed to parse.
        value: String,
        /// The Rust type it should parse as.
        expected: &'static str,
        /// What the type's `FromStr` reported.
        reason: String,
    },
    /// A parameter value was missing (fewer values than the template has parameters).
    #[error("parameter `{name}` of `{template}` is missing")]
    Missing {
        /// The address template.
        template: &'static str,
        /// The parameter's name as written in the template.
        name: &'static str,
    },
    /// A parameter formatted to an empty string, which no path can carry.
    #[error("parameter `{name}` of `{template}` is empty")]
    Empty {
        /// The address template.
        template: &'static str,
        /// The parameter's name as written in the template.
        name: &'static str,
    },
}
