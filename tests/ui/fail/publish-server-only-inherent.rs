// A client calling `publish` on a `server_only` channel, which has none.
use serde::{Deserialize, Serialize};
use ws_channels::{ClientSocket, Error, channel};

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
