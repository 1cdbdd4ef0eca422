// `server` written as a flag, without the server's message type.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("chat/<room>", server)]
#[derive(Serialize, Deserialize)]
struct ChatCommand {
    text: String,
}

fn main() {}
