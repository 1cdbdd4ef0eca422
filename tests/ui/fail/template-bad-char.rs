// A character (`?`) that is not allowed in a path segment.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("a?b")]
#[derive(Serialize, Deserialize)]
struct Events {
    text: String,
}

fn main() {}
