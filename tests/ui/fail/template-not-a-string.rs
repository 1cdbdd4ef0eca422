// The template written as a path instead of a string literal.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel(user / events)]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
