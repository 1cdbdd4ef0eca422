// An `on_invalid` policy other than `close` or `reply`.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<userId>", on_invalid = ignore)]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
