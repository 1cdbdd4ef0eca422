// `server = …` naming a type that does not exist (a typo).
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("chat/<room>", server = ChatEvnt)]
#[derive(Serialize, Deserialize)]
struct ChatCommand {
    text: String,
}

#[derive(Serialize, Deserialize)]
struct ChatEvent {
    text: String,
}

fn main() {}
