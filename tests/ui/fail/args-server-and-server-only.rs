// `server = …` and `server_only` together: a channel has one shape.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[derive(Serialize, Deserialize)]
struct ChatEvent {
    text: String,
}

#[channel("chat/<room>", server = ChatEvent, server_only)]
#[derive(Serialize, Deserialize)]
struct ChatCommand {
    text: String,
}

fn main() {}
