// A server message type (`server = ChatEvent`) that does not implement serde's traits.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("chat/<room>", server = ChatEvent)]
#[derive(Serialize, Deserialize)]
struct ChatCommand {
    text: String,
}

struct ChatEvent {
    text: String,
}

fn main() {
    let _ = ChatEvent {
        text: String::new(),
    }
    .text;
}
