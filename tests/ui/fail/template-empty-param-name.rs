// A parameter with no name: `<>`.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<>")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
