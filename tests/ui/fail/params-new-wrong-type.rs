// A number passed to `new` for a `String` parameter.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/events/<userId>")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {
    let _ = UserEventsParams::new(42u64);
}
