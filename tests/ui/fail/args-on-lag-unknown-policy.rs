// An `on_lag` policy that does not exist.
use serde::{Deserialize, Serialize};
use ws_channels::channel;

#[channel("feed/<id>", server_only, on_lag = drop_everything)]
#[derive(Serialize, Deserialize)]
struct Feed {
    seq: u64,
}

fn main() {}
