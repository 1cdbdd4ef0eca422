//! Turning typed messages into WebSocket frames and back (JSON text frames), with validation.

use tokio_tungstenite::tungstenite::{Message as WsMessage, Utf8Bytes};

use crate::channel::Channel;
use crate::error::{CodecError, Error, ValidationError};

/// What one incoming frame means to a channel.
pub(crate) enum Inbound<M> {
    /// A decoded, validated message.
    Message(M),
    /// A control frame (ping, pong, raw frame): the protocol layer handles it.
    Control,
    /// The peer's close frame.
    Close(Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>),
}

/// Serializes and validates a message into a text frame's payload.
pub(crate) fn encode<C: Channel, M: serde::Serialize>(
    message: &M,
    validate: fn(&M) -> Result<(), ValidationError>,
) -> Result<Utf8Bytes, Error> {
    validate(message).map_err(|source| Error::Validation {
        channel: C::NAME,
        source,
    })?;
    serde_json::to_string(message)
        .map(Utf8Bytes::from)
        .map_err(|error| Error::Encode {
            channel: C::NAME,
            source: CodecError::new(error),
        })
}

/// Decodes and validates one frame.
pub(crate) fn decode<C: Channel, M: serde::de::DeserializeOwned>(
    frame: WsMessage,
    validate: fn(&M) -> Result<(), ValidationError>,
) -> Result<Inbound<M>, Error> {
    let text = match frame {
        WsMessage::Text(text) => text,
        WsMessage::Binary(_) => return Err(Error::UnexpectedBinary { channel: C::NAME }),
        WsMessage::Close(frame) => return Ok(Inbound::Close(frame)),
        WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {
            return Ok(Inbound::Control);
        }
    };
    let message: M = serde_json::from_str(&text).map_err(|error| Error::Decode {
        channel: C::NAME,
        source: CodecError::new(error),
    })?;
    validate(&message).map_err(|source| Error::Validation {
        channel: C::NAME,
        source,
    })?;
    Ok(Inbound::Message(message))
}
