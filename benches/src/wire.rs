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

/// The JSON text of message `seq` from client `from`, stamped now.
pub fn chat_json(from: u32, seq: u64) -> String {
    let chat = Chat {
        from,
        seq,
        ts: now_us(),
        room: "lobby".to_owned(),
        text: "the quick brown fox jumps over".to_owned(),
    };
    serde_json::to_string(&chat).expect("a struct of strings and integers serializes")
}

/// Microseconds since this process first asked: the load generator's clock.
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_chat_message_is_about_96_bytes() {
        let json = super::chat_json(12, 12_345);
        assert!((85..=100).contains(&json.len()), "{} bytes: {json}", json.len());
    }
}
