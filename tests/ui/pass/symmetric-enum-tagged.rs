// A symmetric channel on an internally tagged enum.
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, ClientSocket, Error, Server, channel};

#[channel("rooms/<room>")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum RoomMessage {
    Join { user: String },
    Say { user: String, text: String },
    Leave,
}

async fn client(socket: &mut ClientSocket) -> Result<(), Error> {
    RoomMessage::publish(socket, &RoomMessage::Join { user: "ann".into() }).await?;
    RoomMessage::publish(socket, &RoomMessage::Leave).await
}

fn main() {
    let _ = client;
    let server = RoomMessage::register(Server::new(), |h| {
        h.on_message(|conn, message| async move {
            if let RoomMessage::Say { .. } = &message {
                conn.send(&message).await?;
            }
            Ok(())
        })
    });
    drop(server);

    let json = serde_json::to_string(&RoomMessage::Say {
        user: "ann".into(),
        text: "hi".into(),
    })
    .unwrap();
    assert_eq!(json, r#"{"type":"say","user":"ann","text":"hi"}"#);
    assert_eq!(
        RoomMessageParams::new("lobby").url("ws://h:1"),
        "ws://h:1/rooms/lobby"
    );
}
