// A client publishing on a `server_only` channel through the generic `ws_channels::publish`.
use serde::{Deserialize, Serialize};
use ws_channels::{ClientSocket, Error, channel};

#[channel("notify/<userId>", server_only)]
#[derive(Serialize, Deserialize)]
struct Notification {
    text: String,
}

async fn client(sink: &mut ClientSocket, message: &Notification) -> Result<(), Error> {
    ws_channels::publish::<Notification, _>(sink, message).await
}

fn main() {
    let _ = client;
}
