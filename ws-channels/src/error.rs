//! The crate's error types, and [`Report`], which prints an error with its causes.

use std::borrow::Cow;
use std::fmt;

use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A boxed error, as returned by handlers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a handler returns: `Ok(())`, or an error that closes the connection with 1011.
pub type HandlerResult = Result<(), BoxError>;

/// Everything that can go wrong while exchanging typed messages.
///
/// Errors about one frame ([`Error::Decode`], [`Error::Validation`],
/// [`Error::UnexpectedBinary`]) are reported without ending a client
/// [`Subscription`](crate::Subscription): the next frame is read as usual.
///
/// `Display` says what failed at this layer only; the cause, when there is one, is
/// [`source()`](std::error::Error::source), so that a chain never prints the same text twice.
/// To show a person the whole story (an error reply, a close reason, a log line), print the
/// chain with [`Report`]:
///
/// ```
/// use futures_util::{FutureExt, StreamExt, stream};
/// use ws_channels::tungstenite::Message;
/// use ws_channels::{Channel, Report, channel};
///
/// #[channel("chat/<room>", name = "chat")]
/// #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// #[serde(tag = "type", rename_all = "snake_case")]
/// enum ChatCommand {
///     Say { text: String },
///     Typing,
/// }
///
/// // A client sends a command the channel does not have.
/// let frames = stream::iter([Ok(Message::text(r#"{"type":"shout"}"#))]);
/// let mut commands = ChatCommand::subscribe(frames);
/// let error = commands.next().now_or_never().flatten().expect("one item").unwrap_err();
///
/// assert_eq!(error.to_string(), "cannot decode a message on channel `chat`");
/// assert_eq!(
///     Report(&error).to_string(),
///     "cannot decode a message on channel `chat`: \
///      unknown variant `shout`, expected `say` or `typing` at line 1 column 15"
/// );
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A frame did not decode with the channel's codec (not JSON, not MessagePack) or did not
    /// have the shape of the channel's message type.
    #[error("cannot decode a message on channel `{channel}`")]
    Decode {
        /// The channel's name.
        channel: &'static str,
        /// What the codec reported (for JSON: the expected shape, line and column).
        #[source]
        source: CodecError,
    },
    /// A binary frame arrived on a channel whose messages are JSON text (and no `on_binary`
    /// takes side-band bytes).
    #[error("unexpected binary frame on channel `{channel}`: messages are JSON text frames")]
    UnexpectedBinary {
        /// The channel's name.
        channel: &'static str,
    },
    /// A text frame arrived on a channel whose messages are binary frames (MessagePack).
    #[error("unexpected text frame on channel `{channel}`: messages are binary frames")]
    UnexpectedText {
        /// The channel's name.
        channel: &'static str,
    },
    /// A message decoded but its [`Validate`](crate::Validate) implementation rejected it.
    #[error("invalid message on channel `{channel}`")]
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
    /// A message to send was larger than the server's `max_outgoing_message_size`; it was not
    /// sent (nor queued for anyone).
    #[error("outgoing message of {size} bytes is larger than the limit of {max} bytes")]
    OutgoingTooLarge {
        /// The encoded message's size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A client sent messages faster than the server's rate limit allows; the message was
    /// dropped.
    #[error("rate limit exceeded: message dropped")]
    RateLimited,
    /// A message could not be serialized.
    #[error("cannot encode a message on channel `{channel}`")]
    Encode {
        /// The channel's name.
        channel: &'static str,
        /// What the codec reported.
        #[source]
        source: CodecError,
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
    /// The connection is closed (or closing): nothing more can be sent. A client gets it from
    /// `send` once its connection has ended, with the peer's close code and reason when a close
    /// frame said them (none when the connection dropped without one, or is still closing), and
    /// while reconnecting once its send queue is full.
    #[error("the connection is closed{}", close_suffix(*code, reason))]
    Closed {
        /// The close code the connection ended with, if a close frame gave one.
        code: Option<CloseCode>,
        /// The close frame's reason (possibly empty).
        reason: String,
    },
    /// A client's credentials hook ([`ClientBuilder::credentials`](crate::ClientBuilder::credentials))
    /// failed, so no attempt was made.
    #[error("the credentials hook failed")]
    Credentials(#[source] BoxError),
    /// A message handler returned an error. The server closes that connection with 1011.
    #[error("handler failed")]
    Handler(#[source] BoxError),
    /// A message handler panicked. The server closes that connection with 1011.
    #[error("handler panicked: {0}")]
    HandlerPanicked(String),
    /// The WebSocket protocol layer failed (I/O, protocol violation, frame too large…). An HTTP
    /// refusal of the handshake is never this variant but [`Error::Rejected`].
    #[error("websocket error")]
    WebSocket(#[source] tokio_tungstenite::tungstenite::Error),
    /// The client gave up opening a connection: the TCP connect, TLS and WebSocket handshakes
    /// did not finish within its connect timeout.
    #[error("no connection within {0:?}")]
    ConnectTimeout(std::time::Duration),
    /// Binary bytes sent to a session's subscription ([`Conn::send_binary`](crate::Conn::send_binary)):
    /// sessions speak the JSON format, which carries text only.
    #[error("binary frames cannot travel over a session")]
    BinaryInSession,
    /// A socket-level I/O error (binding, accepting).
    #[error("i/o error")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A closed connection's error, from its close frame if it had one.
    pub(crate) fn closed(frame: Option<&CloseFrame>) -> Self {
        Self::Closed {
            code: frame.map(|f| f.code),
            reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
        }
    }
}

/// `: 1001 going away` after "the connection is closed", when a close frame gave a code.
fn close_suffix(code: Option<CloseCode>, reason: &str) -> String {
    match (code, reason) {
        (None, _) => String::new(),
        (Some(code), "") => format!(" with {code}"),
        (Some(code), reason) => format!(" with {code} ({reason})"),
    }
}

/// Every HTTP refusal of a handshake, whichever way it was opened, is [`Error::Rejected`]
/// with the status and the body; everything else the protocol layer reports is
/// [`Error::WebSocket`].
impl From<WsError> for Error {
    fn from(error: WsError) -> Self {
        match error {
            WsError::Http(response) => {
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .unwrap_or_default();
                Error::Rejected { status, body }
            }
            error => Error::WebSocket(error),
        }
    }
}

/// Why a codec could not turn a frame's payload into a message, or a message into a payload.
///
/// Its text is the codec's own: for JSON, serde_json's message with the line and column
/// (``unknown variant `shout`, expected `say` or `typing` at line 1 column 15``). The codec's
/// error value is kept for code that wants more than the text ([`CodecError::downcast_ref`]);
/// which type it is depends on the channel's codec and is not part of this crate's API.
#[derive(Debug)]
pub struct CodecError {
    inner: BoxError,
}

impl CodecError {
    /// Wraps what a codec reported (for code that builds [`Error::Decode`] or
    /// [`Error::Encode`] itself: a custom transport, a test's expected error).
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self { inner: error.into() }
    }

    /// The codec's error.
    pub fn get_ref(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.inner
    }

    /// The codec's error as its concrete type, such as `serde_json::Error` for JSON channels.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.inner.downcast_ref()
    }
}

/// The codec's text, and its causes as the source: it stands in for the codec's error (as
/// `std::io::Error` does for a custom error), so the codec's text is one link of a chain.
impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for CodecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}

/// Prints an error and its chain of sources, joined with `": "`.
///
/// The errors of this crate say in `Display` what failed at their own layer and leave the
/// cause to [`source()`](std::error::Error::source). Anything shown to a person should print
/// the whole chain: error replies ([`ErrorReply`](crate::ErrorReply)), close reasons, logs
/// (`tracing::warn!(error = %Report(&error), …)`).
///
/// ```
/// use ws_channels::{Error, ErrorReply, Report};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Refused {
///     why: String,
/// }
///
/// impl ErrorReply for Refused {
///     fn error_reply(error: &Error) -> Self {
///         // "invalid message on channel `chat`: `text`: must not be blank", not just its first part.
///         Refused { why: Report(error).to_string() }
///     }
/// }
/// ```
///
/// An error of another crate may still repeat its source in its own text; a link whose text
/// the previous link already ends with is not printed again.
#[derive(Clone, Copy)]
pub struct Report<E>(pub E);

impl<E: std::error::Error> fmt::Display for Report<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut said = self.0.to_string();
        f.write_str(&said)?;
        let mut next = self.0.source();
        while let Some(error) = next {
            let text = error.to_string();
            if !said.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            said = text;
            next = error.source();
        }
        Ok(())
    }
}

/// The same text as `Display`, so that `.expect()` and `{:?}` show the whole chain too.
impl<E: std::error::Error> fmt::Debug for Report<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
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
    /// A parameter value was `.` or `..`: URL parsers (WHATWG's, in browsers and Node) resolve
    /// such a segment away, even percent-encoded, so no URL can carry it to a server.
    #[error("parameter `{name}` of `{template}` is `{value}`, which no URL can carry (`.` and `..` are path steps)")]
    DotSegment {
        /// The address template.
        template: &'static str,
        /// The parameter's name as written in the template.
        name: &'static str,
        /// The value: `.` or `..`.
        value: &'static str,
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Command {
        Say { text: String },
        Typing,
    }

    fn decode_error() -> Error {
        let json = serde_json::from_str::<Command>(r#"{"type":"shout"}"#).expect_err("an unknown variant");
        Error::Decode {
            channel: "chat",
            source: CodecError::new(json),
        }
    }

    /// One error of every variant, with a source wherever the variant has one.
    fn every_variant() -> Vec<Error> {
        let encode = serde_json::to_string(&std::collections::BTreeMap::from([((1, 2), 3)]))
            .expect_err("a map with non-string keys");
        let errors = vec![
            decode_error(),
            Error::UnexpectedBinary { channel: "chat" },
            Error::UnexpectedText { channel: "chat" },
            Error::Validation {
                channel: "chat",
                source: ValidationError::field("text", "must not be blank"),
            },
            Error::MessageTooLarge { size: 5000, max: 4096 },
            Error::OutgoingTooLarge { size: 5000, max: 4096 },
            Error::RateLimited,
            Error::Encode {
                channel: "chat",
                source: CodecError::new(encode),
            },
            Error::Param(ParamError::Invalid {
                template: "user/{id}",
                name: "id",
                value: "x".into(),
                expected: "u64",
                reason: "invalid digit found in string".into(),
            }),
            Error::Rejected {
                status: 401,
                body: "a token is required".into(),
            },
            Error::Closed {
                code: Some(CloseCode::Away),
                reason: "ping timeout".into(),
            },
            Error::ConnectTimeout(std::time::Duration::from_secs(10)),
            Error::Credentials("token service unavailable".into()),
            // A handler's error with a chain of its own: three links.
            Error::Handler(Box::new(decode_error())),
            Error::HandlerPanicked("index out of bounds".into()),
            Error::BinaryInSession,
            Error::WebSocket(tokio_tungstenite::tungstenite::Error::Io(std::io::Error::other(
                "broken pipe",
            ))),
            Error::Io(std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use")),
        ];
        // Fails to compile when a variant is added, so that it gets a case here.
        for error in &errors {
            match error {
                Error::Decode { .. }
                | Error::UnexpectedBinary { .. }
                | Error::UnexpectedText { .. }
                | Error::Validation { .. }
                | Error::MessageTooLarge { .. }
                | Error::OutgoingTooLarge { .. }
                | Error::RateLimited
                | Error::Encode { .. }
                | Error::Param(_)
                | Error::Rejected { .. }
                | Error::Closed { .. }
                | Error::ConnectTimeout(_)
                | Error::Credentials(_)
                | Error::Handler(_)
                | Error::HandlerPanicked(_)
                | Error::BinaryInSession
                | Error::WebSocket(_)
                | Error::Io(_) => {}
            }
        }
        errors
    }

    /// The texts of an error and its sources, outermost first.
    fn chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
        std::iter::successors(Some(error), |e| (*e).source())
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn no_variant_repeats_its_source() {
        for error in every_variant() {
            let texts = chain(&error);
            // Our own layer: the variant's text does not contain the next link's text.
            if let [ours, source, ..] = texts.as_slice() {
                assert!(
                    !ours.contains(source.as_str()),
                    "{error:?} repeats its source: {texts:?}"
                );
            }
            // And the whole printed chain says nothing twice, a third-party link included.
            let report = Report(&error).to_string();
            let links: Vec<&str> = report.split(": ").collect();
            for (i, link) in links.iter().enumerate() {
                assert!(!links[i + 1..].contains(link), "`{report}` says `{link}` twice");
            }
            assert!(report.starts_with(&error.to_string()), "{report}");
        }
    }

    #[test]
    fn report_walks_the_whole_chain() {
        let handler = Error::Handler(Box::new(decode_error()));
        assert_eq!(
            chain(&handler),
            [
                "handler failed",
                "cannot decode a message on channel `chat`",
                "unknown variant `shout`, expected `say` or `typing` at line 1 column 15",
            ]
        );
        assert_eq!(
            Report(&handler).to_string(),
            "handler failed: cannot decode a message on channel `chat`: unknown variant `shout`, expected `say` or `typing` at line 1 column 15"
        );
        let validation = Error::Validation {
            channel: "chat",
            source: ValidationError::field("text", "must not be blank"),
        };
        assert_eq!(
            Report(&validation).to_string(),
            "invalid message on channel `chat`: `text`: must not be blank"
        );
        assert_eq!(format!("{:?}", Report(&validation)), Report(&validation).to_string());
    }

    #[test]
    fn a_link_that_repeats_its_source_is_printed_once() {
        // tungstenite's `Io` says "IO error: {0}" and returns the same io::Error as its source.
        let error = Error::WebSocket(tokio_tungstenite::tungstenite::Error::Io(std::io::Error::other(
            "broken pipe",
        )));
        assert_eq!(Report(&error).to_string(), "websocket error: IO error: broken pipe");
    }

    #[test]
    fn the_codec_error_is_reachable_but_not_public_api() {
        let Error::Decode { source, .. } = decode_error() else {
            unreachable!("decode_error is a Decode")
        };
        let json = source
            .downcast_ref::<serde_json::Error>()
            .expect("a JSON channel's codec error");
        assert_eq!((json.line(), json.column()), (1, 15));
        assert_eq!(source.get_ref().to_string(), source.to_string());
        assert!(source.source().is_none());
    }
}
