// The same parameter name used twice in one template.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("user/<id>/<id>")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {}
