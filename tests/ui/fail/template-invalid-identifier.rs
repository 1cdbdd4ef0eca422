// A parameter name that is not an identifier: it starts with a digit.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<1st>")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
