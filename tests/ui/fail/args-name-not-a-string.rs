// `name` given an identifier instead of a string literal.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<userId>", name = userEvents)]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
