// An empty channel `name`.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<userId>", name = " ")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
