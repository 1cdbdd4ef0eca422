// A symmetric channel on a struct: both sides send `UserEvents`.
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, ClientSocket, Error, Params, Server, Shape, channel};

#[channel("user/events/<userId>")]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserEvents {
    user_id: String,
    email: String,
}

async fn client(socket: &mut ClientSocket) -> Result<(), Error> {
    let message = UserEvents {
        user_id: "u1".into(),
        email: "a@example.com".into(),
    };
    UserEvents::publish(socket, &message).await?;
    ws_channels::publish::<UserEvents, _>(socket, &message).await
}

async fn connected() -> Result<(), Error> {
    let (mut tx, _rx) =
        ws_channels::connect("ws://localhost:8080", &UserEventsParams::new("u1")).await?;
    tx.send(&UserEvents {
        user_id: "u1".into(),
        email: "a@example.com".into(),
    })
    .await
}

fn main() {
    let _ = (client, connected);
    let server = UserEvents::register(Server::new(), |handler| {
        handler.on_message(|conn, message| async move {
            let reply = UserEvents {
                user_id: conn.params().user_id.clone(),
                ..message
            };
            conn.send(&reply).await?;
            Ok(())
        })
    });
    drop(server);

    assert_eq!(<UserEvents as Channel>::NAME, "UserEvents");
    assert_eq!(<UserEvents as Channel>::SHAPE, Shape::Symmetric);
    assert_eq!(
        <UserEventsParams as Params>::TEMPLATE.address(),
        "user/events/{userId}"
    );
    let params = UserEventsParams::new("u1");
    assert_eq!(params.user_id, "u1");
    assert_eq!(params.to_string(), "user/events/u1");
}
