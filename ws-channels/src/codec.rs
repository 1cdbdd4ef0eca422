//! How a channel's messages travel. A channel declares its [`Codec`] (`#[channel(…, codec = …)]`):
//! JSON text frames by default, MessagePack binary frames ([`MsgPack`], feature `msgpack`), or
//! raw passthrough ([`Passthrough`]: each message is a [`Raw`] text or binary frame, delivered
//! verbatim). Whatever the codec, a broadcast is encoded once and its frame shared.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio_tungstenite::tungstenite::{Bytes, Message as WsMessage, Utf8Bytes};

use crate::channel::{Channel, NoMessage};
use crate::error::{CodecError, Error, ValidationError};

/// A wire format: its name and its messages' content type. The formats themselves are
/// [`Format`] implementations, one per message type a codec can carry.
pub trait Codec: Send + Sync + 'static {
    /// The codec's name, as written in `#[channel(…, codec = …)]`: `json`, `msgpack`, `raw`.
    const NAME: &'static str;
    /// The content type exported documents state for its messages.
    const CONTENT_TYPE: &'static str;
    /// Whether its messages travel in binary frames. Only on a codec whose messages are text
    /// can binary frames be side-band bytes (`on_binary`).
    const BINARY: bool;
}

/// Turns messages of type `M` into frames and back.
#[diagnostic::on_unimplemented(
    message = "codec `{Self}` cannot carry messages of type `{M}`",
    note = "`codec = msgpack` needs the `msgpack` feature of ws-channels; `codec = raw` channels carry `ws_channels::Raw`"
)]
pub trait Format<M>: Codec {
    /// The frame carrying `message`.
    fn encode(message: &M) -> Result<WsMessage, CodecError>;

    /// Appends the payload of the frame carrying `message` to `bytes` and says which kind of
    /// frame that is, or `Ok(None)`, with `bytes` untouched, when this codec only makes whole
    /// frames with [`encode`](Self::encode): that is the default.
    ///
    /// A connection's own sends ([`Conn::send`](crate::Conn::send)) are encoded this way, into
    /// one buffer of the connection's, rather than into an allocation each; broadcasts use
    /// `encode`. So an implementation must:
    /// - only append: `bytes` already holds other queued messages (a change to them is an
    ///   [`Error::Encode`] for this send);
    /// - append exactly the payload `encode` would frame, and valid UTF-8 for a text frame
    ///   (a client closes a connection that sends invalid text with 1007);
    /// - not send to the same connection: it runs under that connection's outbox lock (so do
    ///   the message's `Serialize` impl), which would deadlock, and which holds up everyone
    ///   publishing to the connection meanwhile.
    ///
    /// On an error, the caller discards what was appended.
    fn encode_to(message: &M, bytes: &mut Vec<u8>) -> Result<Option<FrameKind>, CodecError> {
        let _ = (message, bytes);
        Ok(None)
    }
    /// The message a text or binary frame carries.
    fn decode(frame: WsMessage) -> Result<M, FrameError>;
}

/// Why a frame did not decode.
#[derive(Debug)]
pub enum FrameError {
    /// A text frame where the codec expects binary frames, or the reverse.
    Kind(FrameKind),
    /// The payload is not a valid message.
    Codec(CodecError),
}

/// A data frame's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A text frame (UTF-8).
    Text,
    /// A binary frame.
    Binary,
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Binary => "binary",
        })
    }
}

/// JSON text frames (`serde_json`): the default codec.
#[derive(Debug, Clone, Copy)]
pub struct Json;

impl Codec for Json {
    const NAME: &'static str = "json";
    const CONTENT_TYPE: &'static str = "application/json";
    const BINARY: bool = false;
}

impl<M: Serialize + DeserializeOwned> Format<M> for Json {
    fn encode(message: &M) -> Result<WsMessage, CodecError> {
        /// Up to this size a frame is copied into a string of exactly its length: a `Bytes`
        /// takes that as it is, but gives a string with spare room (serde_json starts at 128
        /// bytes) a second allocation, and frames are freed in batches, after they are written,
        /// where a small exact-size block is far cheaper to free than a larger one. The first
        /// string is freed at once; past this size the copy would cost more than it saves.
        const EXACT: usize = 4 * 1024;
        let text = serde_json::to_string(message).map_err(CodecError::new)?;
        Ok(WsMessage::Text(match text.len() <= EXACT {
            true => String::from(text.as_str()).into(),
            false => text.into(),
        }))
    }

    fn encode_to(message: &M, bytes: &mut Vec<u8>) -> Result<Option<FrameKind>, CodecError> {
        // serde_json writes UTF-8.
        serde_json::to_writer(bytes, message).map_err(CodecError::new)?;
        Ok(Some(FrameKind::Text))
    }

    fn decode(frame: WsMessage) -> Result<M, FrameError> {
        match frame {
            WsMessage::Text(text) => serde_json::from_str(&text).map_err(|e| FrameError::Codec(CodecError::new(e))),
            _ => Err(FrameError::Kind(FrameKind::Binary)),
        }
    }
}

/// MessagePack binary frames (`rmp-serde`; structs as maps with their field names, so any
/// MessagePack library decodes them to objects). Feature `msgpack`.
#[derive(Debug, Clone, Copy)]
pub struct MsgPack;

impl Codec for MsgPack {
    const NAME: &'static str = "msgpack";
    const CONTENT_TYPE: &'static str = "application/msgpack";
    const BINARY: bool = true;
}

#[cfg(feature = "msgpack")]
impl<M: Serialize + DeserializeOwned> Format<M> for MsgPack {
    fn encode(message: &M) -> Result<WsMessage, CodecError> {
        rmp_serde::to_vec_named(message)
            .map(|bytes| WsMessage::Binary(bytes.into()))
            .map_err(CodecError::new)
    }

    fn encode_to(message: &M, bytes: &mut Vec<u8>) -> Result<Option<FrameKind>, CodecError> {
        rmp_serde::encode::write_named(bytes, message).map_err(CodecError::new)?;
        Ok(Some(FrameKind::Binary))
    }

    fn decode(frame: WsMessage) -> Result<M, FrameError> {
        match frame {
            WsMessage::Binary(bytes) => {
                rmp_serde::from_slice(&bytes).map_err(|e| FrameError::Codec(CodecError::new(e)))
            }
            _ => Err(FrameError::Kind(FrameKind::Text)),
        }
    }
}

/// Raw passthrough: each message is a [`Raw`] text or binary frame, delivered verbatim with
/// no serde at all (proxies, custom protocols, conformance testing).
#[derive(Debug, Clone, Copy)]
pub struct Passthrough;

impl Codec for Passthrough {
    const NAME: &'static str = "raw";
    const CONTENT_TYPE: &'static str = "application/octet-stream";
    const BINARY: bool = true;
}

impl Format<Raw> for Passthrough {
    fn encode(message: &Raw) -> Result<WsMessage, CodecError> {
        Ok(match message {
            Raw::Text(text) => WsMessage::Text(text.clone()),
            Raw::Binary(bytes) => WsMessage::Binary(bytes.clone()),
        })
    }

    fn decode(frame: WsMessage) -> Result<Raw, FrameError> {
        match frame {
            WsMessage::Text(text) => Ok(Raw::Text(text)),
            WsMessage::Binary(bytes) => Ok(Raw::Binary(bytes)),
            // Only data frames reach a codec.
            _ => Err(FrameError::Kind(FrameKind::Binary)),
        }
    }
}

/// A raw channel that is `server_only`: clients send nothing, so any frame they send is
/// undecodable (1007).
impl Format<NoMessage> for Passthrough {
    fn encode(message: &NoMessage) -> Result<WsMessage, CodecError> {
        match *message {}
    }

    fn decode(_: WsMessage) -> Result<NoMessage, FrameError> {
        Err(FrameError::Codec(CodecError::new(
            "clients send nothing on this server_only channel",
        )))
    }
}

/// A message of a raw channel (`#[channel("…", codec = raw)]`): one text or binary frame,
/// delivered verbatim. Cloning shares the bytes.
///
/// ```
/// use ws_channels::Raw;
///
/// let hello = Raw::text("hello");
/// assert_eq!(hello.as_bytes(), b"hello");
/// assert_eq!(Raw::binary(vec![1, 2, 3]).len(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Raw {
    /// A text frame (valid UTF-8).
    Text(Utf8Bytes),
    /// A binary frame.
    Binary(Bytes),
}

impl Raw {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Self::Text(text.into())
    }

    /// A binary message.
    pub fn binary(bytes: impl Into<Bytes>) -> Self {
        Self::Binary(bytes.into())
    }

    /// The payload's bytes, whichever the kind.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Text(text) => text.as_bytes(),
            Self::Binary(bytes) => bytes,
        }
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame's kind.
    pub fn kind(&self) -> FrameKind {
        match self {
            Self::Text(_) => FrameKind::Text,
            Self::Binary(_) => FrameKind::Binary,
        }
    }
}

/// A string or bytes, so `Raw` satisfies the bounds every message type has; raw channels
/// never use serde on the wire.
impl Serialize for Raw {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(text) => serializer.serialize_str(text.as_str()),
            Self::Binary(bytes) => serializer.serialize_bytes(bytes),
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or bytes")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Raw, E> {
                Ok(Raw::text(text.to_owned()))
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Raw, E> {
                Ok(Raw::binary(bytes.to_vec()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// What one incoming frame means to a channel.
pub(crate) enum Inbound<M> {
    /// A decoded, validated message.
    Message(M),
    /// A control frame (ping, pong, raw frame): the protocol layer handles it.
    Control,
    /// The peer's close frame.
    Close(Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>),
}

/// Validates and encodes a message into its frame.
pub(crate) fn encode<C, M>(message: &M, validate: fn(&M) -> Result<(), ValidationError>) -> Result<WsMessage, Error>
where
    C: Channel,
    C::Codec: Format<M>,
{
    validated::<C, M>(message, validate)?;
    <C::Codec as Format<M>>::encode(message).map_err(|source| encode_error::<C>(source))
}

/// Checks a message with the channel's validation hook.
pub(crate) fn validated<C: Channel, M>(
    message: &M,
    validate: fn(&M) -> Result<(), ValidationError>,
) -> Result<(), Error> {
    validate(message).map_err(|source| Error::Validation {
        channel: C::NAME,
        source,
    })
}

pub(crate) fn encode_error<C: Channel>(source: CodecError) -> Error {
    Error::Encode {
        channel: C::NAME,
        source,
    }
}

/// Decodes and validates one frame.
pub(crate) fn decode<C, M>(
    frame: WsMessage,
    validate: fn(&M) -> Result<(), ValidationError>,
) -> Result<Inbound<M>, Error>
where
    C: Channel,
    C::Codec: Format<M>,
{
    match frame {
        WsMessage::Close(frame) => return Ok(Inbound::Close(frame)),
        WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => return Ok(Inbound::Control),
        WsMessage::Text(_) | WsMessage::Binary(_) => {}
    }
    decode_data::<C, M>(frame, validate).map(Inbound::Message)
}

/// Decodes and validates one data frame (text or binary: the caller has handled the others).
pub(crate) fn decode_data<C, M>(frame: WsMessage, validate: fn(&M) -> Result<(), ValidationError>) -> Result<M, Error>
where
    C: Channel,
    C::Codec: Format<M>,
{
    let message = <C::Codec as Format<M>>::decode(frame).map_err(|error| match error {
        FrameError::Kind(FrameKind::Binary) => Error::UnexpectedBinary { channel: C::NAME },
        FrameError::Kind(FrameKind::Text) => Error::UnexpectedText { channel: C::NAME },
        FrameError::Codec(source) => Error::Decode {
            channel: C::NAME,
            source,
        },
    })?;
    validated::<C, M>(&message, validate)?;
    Ok(message)
}

/// A frame's payload size.
pub(crate) fn payload_len(frame: &WsMessage) -> usize {
    match frame {
        WsMessage::Text(text) => text.len(),
        WsMessage::Binary(bytes) => bytes.len(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_pass_through_untouched() {
        for raw in [Raw::text("héllo"), Raw::binary(vec![0, 159, 146, 150])] {
            let frame = <Passthrough as Format<Raw>>::encode(&raw).unwrap();
            assert_eq!(<Passthrough as Format<Raw>>::decode(frame).unwrap(), raw);
        }
    }

    /// A connection's own sends: the payload appended after what the buffer holds, the same
    /// bytes `encode` makes; codecs that only make whole frames say so and append nothing.
    #[test]
    fn encode_to_appends_what_encode_frames() {
        let mut bytes = b"queued".to_vec();
        let message = "héllo \"there\"".to_owned();
        assert_eq!(
            <Json as Format<String>>::encode_to(&message, &mut bytes).unwrap(),
            Some(FrameKind::Text)
        );
        let frame = <Json as Format<String>>::encode(&message).unwrap();
        assert_eq!(bytes[..6], *b"queued");
        assert_eq!(bytes[6..], *frame.into_data());
        let mut untouched = Vec::new();
        assert_eq!(
            <Passthrough as Format<Raw>>::encode_to(&Raw::text("x"), &mut untouched).unwrap(),
            None
        );
        assert!(untouched.is_empty());
        #[cfg(feature = "msgpack")]
        {
            let mut packed = Vec::new();
            assert_eq!(
                <MsgPack as Format<String>>::encode_to(&message, &mut packed).unwrap(),
                Some(FrameKind::Binary)
            );
            assert_eq!(
                packed,
                *<MsgPack as Format<String>>::encode(&message).unwrap().into_data()
            );
        }
    }

    #[test]
    fn json_refuses_binary_frames() {
        let frame = WsMessage::Binary(vec![1].into());
        assert!(matches!(
            <Json as Format<String>>::decode(frame),
            Err(FrameError::Kind(FrameKind::Binary))
        ));
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn msgpack_round_trips_named_fields_and_refuses_text() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        enum Event {
            Say { text: String },
        }
        let frame = <MsgPack as Format<Event>>::encode(&Event::Say { text: "hi".into() }).unwrap();
        let WsMessage::Binary(bytes) = &frame else {
            panic!("binary")
        };
        assert!(bytes.windows(4).any(|w| w == b"text"), "field names travel");
        assert_eq!(
            <MsgPack as Format<Event>>::decode(frame).unwrap(),
            Event::Say { text: "hi".into() }
        );
        assert!(matches!(
            <MsgPack as Format<Event>>::decode(WsMessage::text("{}")),
            Err(FrameError::Kind(FrameKind::Text))
        ));
    }
}
