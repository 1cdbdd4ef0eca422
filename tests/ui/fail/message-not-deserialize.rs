// A channel message type that derives `Serialize` but not `Deserialize`.
use serde::Serialize;
use ws_channels::channel;

#[channel("user/<userId>")]
#[derive(Serialize)]
struct UserEvents {
    text: String,
}

fn main() {}
