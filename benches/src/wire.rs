//! What every server speaks: the benchmark's chat message as JSON text frames.

use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use ws_channels::channel;

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
    let ts = now_us();
    format!(r#"{{"from":{from},"seq":{seq},"ts":{ts},"room":"lobby","text":"{TEXT}"}}"#)
}

const TEXT: &str = "the quick brown fox jumps over";

impl Header {
    /// Reads the checked fields by scanning for their keys (every server writes them as
    /// compact JSON), falling back to a full parse.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
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
    }

    #[test]
    fn a_chat_message_is_about_96_bytes() {
        let json = super::chat_json(12, 12_345);
        assert!((85..=100).contains(&json.len()), "{} bytes: {json}", json.len());
    }
}
