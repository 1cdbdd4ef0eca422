// A `:` after a parameter name with no type after it.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<seq: >")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
