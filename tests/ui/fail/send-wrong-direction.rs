// A server handler sending the client's message type on an asymmetric channel.
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, Server, channel};

#[channel("chat/<room>", server = ChatEvent)]
#[derive(Serialize, Deserialize)]
enum ChatCommand {
    Say { text: String },
}

#[derive(Serialize, Deserialize)]
enum ChatEvent {
    Message { user: String, text: String },
}

fn main() {
    let _server = ChatCommand::register(Server::new(), |h| {
        h.on_message(|conn, _msg| async move {
            conn.send(&ChatCommand::Say { text: "hi".into() }).await?;
            Ok(())
        })
    });
}
