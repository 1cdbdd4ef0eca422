// A client publishing the server's message type on an asymmetric channel.
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, ClientSocket, Error, channel};

#[channel("chat/<room>", server = ChatEvent)]
#[derive(Serialize, Deserialize)]
enum ChatCommand {
    Say { text: String },
}

#[derive(Serialize, Deserialize)]
enum ChatEvent {
    Message { user: String, text: String },
}

async fn client(sink: &mut ClientSocket) -> Result<(), Error> {
    let event = ChatEvent::Message {
        user: "ann".into(),
        text: "hi".into(),
    };
    ChatCommand::publish(sink, &event).await
}

fn main() {
    let _ = client;
}
