// `name = "…"` overrides the channel's name.
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, channel};

#[channel("user/events/<userId>", name = "userEvents")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {
    assert_eq!(<UserEvents as Channel>::NAME, "userEvents");
}
