// A parameter type that is not a Rust type.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<seq: 64bits>")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
