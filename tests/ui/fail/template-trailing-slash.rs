// A trailing `/` leaves an empty last segment.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/events/")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
