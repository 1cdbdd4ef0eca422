// A client sending through the publisher `connect` returns for a `server_only` channel.
use serde::{Deserialize, Serialize};
use ws_channels::{Error, channel};

#[channel("notify/<userId>", server_only)]
#[derive(Serialize, Deserialize)]
struct Notification {
    text: String,
}

async fn client(message: &Notification) -> Result<(), Error> {
    let params = NotificationParams::new("u1");
    let (mut tx, _rx) = ws_channels::connect("ws://localhost:8080", &params).await?;
    tx.send(message).await
}

fn main() {
    let _ = client;
}
