// An empty address template.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
