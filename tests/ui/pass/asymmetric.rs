// An asymmetric channel: clients send `ChatCommand`, the server sends `ChatEvent`.
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, ClientSocket, Error, Server, Shape, channel};

#[channel("chat/<room>", server = ChatEvent)]
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ChatCommand {
    Say { text: String },
    Typing,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ChatEvent {
    Message { user: String, text: String },
}

async fn client(mut socket: ClientSocket) -> Result<(), Error> {
    ChatCommand::publish(&mut socket, &ChatCommand::Say { text: "hi".into() }).await?;
    ChatCommand::publish(&mut socket, &ChatCommand::Typing).await?;
    let mut events = ChatCommand::subscribe(socket);
    if let Some(event) = events.next().await {
        let ChatEvent::Message { user, text } = event?;
        println!("{user}: {text}");
    }
    Ok(())
}

fn main() {
    let _ = client;
    let server = ChatCommand::register(Server::new(), |h| {
        h.on_message(|conn, command| async move {
            if let ChatCommand::Say { text } = command {
                let user = conn.params().room.clone();
                conn.send(&ChatEvent::Message { user, text }).await?;
            }
            Ok(())
        })
    });
    drop(server);
    assert_eq!(<ChatCommand as Channel>::SHAPE, Shape::Asymmetric);
}
