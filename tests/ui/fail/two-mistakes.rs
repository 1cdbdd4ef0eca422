// Two independent mistakes (the one file allowed two): an unclosed `<` AND an unknown argument, both reported in one build.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<userId", serverr = UserEvents)]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
