// An empty segment: a doubled `/`.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user//events")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
