// A string passed to `new` for a `u64` parameter.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("orders/<id: u64>")]
#[derive(Serialize, Deserialize)]
struct OrderEvents {
    text: String,
}

fn main() {
    let _ = OrderEventsParams::new("42");
}
