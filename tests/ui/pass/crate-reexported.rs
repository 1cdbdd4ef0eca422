// `crate = "…"` with a path through a module that re-exports the runtime.
use serde::{Deserialize, Serialize};

mod deps {
    pub use ws_channels as channels;
}

#[deps::channels::channel("user/<userId>", crate = "crate::deps::channels")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {
    assert_eq!(<UserEvents as deps::channels::Channel>::NAME, "UserEvents");
    assert_eq!(UserEventsParams::new("u1").to_string(), "user/u1");
}
