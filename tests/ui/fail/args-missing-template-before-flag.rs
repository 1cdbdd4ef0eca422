// Arguments without the address template in front of them.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel(server_only)]
#[derive(Serialize, Deserialize)]
struct Notification {
    text: String,
}

fn main() {}
