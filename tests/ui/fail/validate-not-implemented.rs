// The `validate` flag on a message type that does not implement `ws_channels::Validate`.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<userId>", validate)]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
