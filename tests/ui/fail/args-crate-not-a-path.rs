// A `crate = "…"` string that is not a path.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<userId>", crate = "ws-channels")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
