// `#[channel]` on a generic enum: a channel's messages are one concrete type.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<userId>")]
#[derive(Serialize, Deserialize)]
enum UserEvents<T> {
    Created(T),
    Deleted,
}

fn main() {}
