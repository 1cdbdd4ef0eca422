// A server `on_message` handler on a `server_only` channel, where clients send nothing.
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, Server, channel};

#[channel("notify/<userId>", server_only)]
#[derive(Serialize, Deserialize)]
struct Notification {
    text: String,
}

fn main() {
    let _server = Notification::register(Server::new(), |h| {
        h.on_message(|_conn, _msg| async move { Ok(()) })
    });
}
