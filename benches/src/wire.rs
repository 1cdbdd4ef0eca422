//! What every server speaks: the benchmark's chat message as JSON text frames, or as
//! MessagePack binary frames on the MessagePack server ([`Format`]).

use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;
use ws_channels::channel;

use crate::Result;
use crate::raw::Data;

/// The benchmark's chat message, about 96 bytes of JSON. `from` and `seq` let the load
/// generator check that every message arrives once and in order; `ts` (µs on the load
/// generator's clock, see [`now_us`]) gives latencies without a second clock.
#[channel("bench")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chat {
    /// The sending client.
    pub from: u32,
    /// The sender's sequence number, from 0.
    pub seq: u64,
    /// When it was sent, µs on the load generator's clock.
    pub ts: u64,
    /// A room name, as a chat would carry.
    pub room: String,
    /// The payload, padded so the whole message is about 96 bytes.
    pub text: String,
}

/// The same [`Chat`] on a channel declared `codec = msgpack`: MessagePack binary frames both
/// ways, a map with the field names (what `rmp_serde::to_vec_named` writes). One struct under
/// both codecs, so the two echoes carry identical data.
#[channel("bench", server = Chat, codec = msgpack)]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PackChat(pub Chat);

/// The same message on a channel with a room in its address, for the soak test's 100 rooms.
#[channel("soak/<room>")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomChat {
    /// The sending client.
    pub from: u32,
    /// The sender's sequence number, from 0.
    pub seq: u64,
    /// When it was sent, µs on the load generator's clock.
    pub ts: u64,
    /// The payload.
    pub text: String,
}

/// `from` of the warm-up messages a broadcast publisher sends until every subscriber is
/// registered; subscribers skip them, so the measured sequence starts on a full room.
pub const WARMUP: u32 = u32::MAX;

/// What the load generator reads back: only the fields it checks, so its own parsing stays
/// cheap next to the server's.
#[derive(Debug, Deserialize)]
pub struct Header {
    /// The sending client.
    pub from: u32,
    /// The sender's sequence number.
    pub seq: u64,
    /// When it was sent, µs on the load generator's clock.
    pub ts: u64,
}

/// The JSON text of message `seq` from client `from`, stamped now: exactly what serde writes
/// for a [`Chat`] (a test checks), formatted directly to keep the load generator cheap.
pub fn chat_json(from: u32, seq: u64) -> String {
    ChatJson::now(from, seq).to_string()
}

/// Appends [`chat_json`]'s text to `out`.
pub fn write_chat_json(from: u32, seq: u64, out: &mut Vec<u8>) {
    use std::io::Write as _;
    // Writing to a `Vec` cannot fail.
    let _ = write!(out, "{}", ChatJson::now(from, seq));
}

/// The JSON of one chat message, formatted where it is written.
struct ChatJson {
    from: u32,
    seq: u64,
    ts: u64,
}

impl ChatJson {
    fn now(from: u32, seq: u64) -> Self {
        Self {
            from,
            seq,
            ts: now_us(),
        }
    }
}

impl std::fmt::Display for ChatJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { from, seq, ts } = self;
        write!(
            f,
            r#"{{"from":{from},"seq":{seq},"ts":{ts},"room":"lobby","text":"{TEXT}"}}"#
        )
    }
}

const TEXT: &str = "the quick brown fox jumps over";

/// The MessagePack of message `seq` from client `from`, stamped now: the [`Chat`] that
/// [`chat_json`] writes, as the `codec = msgpack` channel encodes it.
pub fn chat_msgpack(from: u32, seq: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    write_chat_msgpack(from, seq, &mut out)?;
    Ok(out)
}

/// Appends [`chat_msgpack`]'s bytes to `out`.
pub fn write_chat_msgpack(from: u32, seq: u64, out: &mut Vec<u8>) -> Result<()> {
    let chat = Chat {
        from,
        seq,
        ts: now_us(),
        room: "lobby".to_owned(),
        text: TEXT.to_owned(),
    };
    Ok(rmp_serde::encode::write_named(out, &chat)?)
}

/// How the load generator's clients encode the chat message and read the replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON text frames, what every server but one speaks.
    Json,
    /// MessagePack binary frames, what `ws-channels-msgpack` speaks.
    MsgPack,
}

impl Format {
    /// Message `seq` from client `from`, stamped now, as a frame of this format.
    pub fn chat(self, from: u32, seq: u64) -> Result<Message> {
        let mut payload = Vec::new();
        self.write_chat(from, seq, &mut payload)?;
        Ok(match self.binary() {
            true => Message::binary(payload),
            false => Message::text(String::from_utf8(payload)?),
        })
    }

    /// Appends the payload of message `seq` from client `from`, stamped now, to `out`; whether
    /// it goes in a binary frame is [`binary`](Self::binary).
    pub fn write_chat(self, from: u32, seq: u64, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Self::Json => {
                write_chat_json(from, seq, out);
                Ok(())
            }
            Self::MsgPack => write_chat_msgpack(from, seq, out),
        }
    }

    /// Whether this format's frames are binary (else text).
    pub fn binary(self) -> bool {
        self == Self::MsgPack
    }

    /// The checked fields of a data frame's payload (see [`header`](Self::header)).
    pub fn header_of(self, data: Data<'_>) -> Result<Header> {
        match (self, data) {
            (Self::Json, Data::Text(text)) => Ok(Header::parse(text)?),
            (Self::MsgPack, Data::Binary(bytes)) => Ok(rmp_serde::from_slice(bytes)?),
            (_, other) => Err(format!("unexpected frame {other:?} ({self:?} expected)").into()),
        }
    }

    /// The checked fields of a frame of this format; `None` for pings and pongs. A frame of
    /// the other kind is an error: a server answers in the format it was sent.
    pub fn header(self, frame: &Message) -> Result<Option<Header>> {
        let data = match frame {
            Message::Text(text) => Data::Text(text.as_str()),
            Message::Binary(bytes) => Data::Binary(bytes),
            Message::Ping(_) | Message::Pong(_) => return Ok(None),
            other => return Err(format!("unexpected frame {other:?} ({self:?} expected)").into()),
        };
        self.header_of(data).map(Some)
    }
}

/// The bytes on the wire of a server's (unmasked) frame carrying `payload` bytes: its header
/// (2 bytes, 2 or 8 more past 125 or 65 535 bytes, RFC 6455 §5.2) and the payload.
pub fn frame_len(payload: usize) -> usize {
    let extended = match payload {
        0..=125 => 0,
        126..=65_535 => 2,
        _ => 8,
    };
    2 + extended + payload
}

impl Header {
    /// Reads the checked fields in one pass where they lead the object in order, as every
    /// server writes them (compact JSON, struct order); else by scanning for their keys;
    /// else with a full parse. Broadcast subscribers read millions of these on the load
    /// generator's one core: it must cost far less than any server spends sending one.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        /// The number after `key` at the start of `rest`, and what follows it.
        fn leading<'a>(rest: &'a [u8], key: &[u8]) -> Option<(u64, &'a [u8])> {
            let rest = rest.strip_prefix(key)?;
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || digits > 19 {
                return None;
            }
            let value = rest[..digits].iter().fold(0, |n: u64, d| n * 10 + u64::from(d - b'0'));
            Some((value, &rest[digits..]))
        }
        let in_order = leading(text.as_bytes(), b"{\"from\":").and_then(|(from, rest)| {
            let (seq, rest) = leading(rest, b",\"seq\":")?;
            let (ts, _) = leading(rest, b",\"ts\":")?;
            Some(Self {
                from: u32::try_from(from).ok()?,
                seq,
                ts,
            })
        });
        if let Some(header) = in_order {
            return Ok(header);
        }
        fn field(text: &str, key: &str) -> Option<u64> {
            let start = text.find(key)? + key.len();
            let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
            text[start..start + digits].parse().ok()
        }
        match (
            field(text, "\"from\":"),
            field(text, "\"seq\":"),
            field(text, "\"ts\":"),
        ) {
            (Some(from), Some(seq), Some(ts)) => match u32::try_from(from) {
                Ok(from) => Ok(Self { from, seq, ts }),
                Err(_) => serde_json::from_str(text),
            },
            _ => serde_json::from_str(text),
        }
    }
}

/// Microseconds since this process first asked: the load generator's clock.
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_paths_agree_with_serde() {
        let json = chat_json(7, 42);
        let chat: Chat = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(serde_json::to_string(&chat).expect("serializes"), json);
        let header = Header::parse(&json).expect("parses");
        assert_eq!((header.from, header.seq, header.ts), (7, 42, chat.ts));
        let spaced = r#"{ "from": 7, "seq": 42, "ts": 1 }"#;
        assert_eq!(Header::parse(spaced).expect("falls back").seq, 42);
        let reordered = r#"{"seq":42,"from":7,"ts":1}"#;
        let header = Header::parse(reordered).expect("scans");
        assert_eq!((header.from, header.seq, header.ts), (7, 42, 1));
        let max = format!(r#"{{"from":{},"seq":{},"ts":0}}"#, u32::MAX, u64::MAX);
        let header = Header::parse(&max).expect("parses");
        assert_eq!((header.from, header.seq), (u32::MAX, u64::MAX));
        assert!(Header::parse(r#"{"from":7,"seq":"x","ts":1}"#).is_err());
    }

    #[test]
    fn the_msgpack_frame_is_the_chat_struct_and_its_header_reads_back() {
        let bytes = chat_msgpack(7, 42).expect("encodes");
        let chat: Chat = rmp_serde::from_slice(&bytes).expect("valid MessagePack");
        assert_eq!(
            (chat.from, chat.seq, chat.room.as_str(), chat.text.as_str()),
            (7, 42, "lobby", TEXT)
        );
        // The channel's own codec decodes it, as the server will.
        let pack: PackChat = rmp_serde::from_slice(&bytes).expect("decodes as the channel's message");
        assert_eq!(rmp_serde::to_vec_named(&pack).expect("encodes"), bytes);
        let frame = Format::MsgPack.chat(7, 42).expect("encodes");
        let header = Format::MsgPack.header(&frame).expect("reads").expect("a data frame");
        assert_eq!((header.from, header.seq), (7, 42));
        assert!(Format::Json.header(&frame).is_err(), "a binary frame is not JSON");
        assert!(
            Format::MsgPack
                .header(&Format::Json.chat(7, 42).expect("encodes"))
                .is_err()
        );
    }

    #[test]
    fn frame_lengths_follow_rfc_6455() {
        assert_eq!(frame_len(96), 98);
        assert_eq!(frame_len(125), 127);
        assert_eq!(frame_len(126), 130);
        assert_eq!(frame_len(65_536), 65_546);
    }

    #[test]
    fn a_chat_message_is_about_96_bytes() {
        let json = super::chat_json(12, 12_345);
        assert!((85..=100).contains(&json.len()), "{} bytes: {json}", json.len());
    }
}
