// A parameter named `self`, which cannot be a field name (not even a raw one).
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<self>")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
