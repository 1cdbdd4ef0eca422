// A client calling `Channel::publish` on a `server_only` channel: the first error says why; the
// second follows from it (a `server_only` channel's client message type is `NoMessage`).
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, ClientSocket, Error, channel};

#[channel("notify/<userId>", server_only)]
#[derive(Serialize, Deserialize)]
struct Notification {
    text: String,
}

async fn client(sink: &mut ClientSocket) -> Result<(), Error> {
    Notification::publish(sink, &Notification { text: "hi".into() }).await
}

fn main() {
    let _ = client;
}
