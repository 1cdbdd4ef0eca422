// A parameter sharing its segment with literal text.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("files/<id>.json")]
#[derive(Serialize, Deserialize)]
struct FileEvents {
    text: String,
}

fn main() {}
