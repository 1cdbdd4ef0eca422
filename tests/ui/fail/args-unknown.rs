// A misspelled argument (`serverr`): the error lists the valid ones.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[derive(Serialize, Deserialize)]
struct ChatEvent {
    text: String,
}

#[channel("chat/<room>", serverr = ChatEvent)]
#[derive(Serialize, Deserialize)]
struct ChatCommand {
    text: String,
}

fn main() {}
