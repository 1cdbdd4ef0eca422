// Calling a channel's `register` without the `Channel` trait in scope: rustc names the import.
use serde::{Deserialize, Serialize};
use ws_channels::{Server, channel};

#[channel("user/<userId>")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {
    let _server = UserEvents::register(Server::new(), |h| h);
}
