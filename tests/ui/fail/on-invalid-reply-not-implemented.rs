// `on_invalid = reply` on a channel whose server message type does not implement `ErrorReply`.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("chat/<room>", server = ChatEvent, on_invalid = reply)]
#[derive(Serialize, Deserialize)]
struct ChatCommand {
    text: String,
}

#[derive(Serialize, Deserialize)]
struct ChatEvent {
    text: String,
}

fn main() {}
