// A parameter opened with `<` and never closed.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<userId")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
