// A server_only channel: the server pushes `Notification`, clients only subscribe.
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, ClientSocket, Error, NoMessage, Server, Shape, channel};

#[channel("notify/<userId>", server_only)]
#[derive(Debug, Serialize, Deserialize)]
struct Notification {
    text: String,
}

async fn client(socket: ClientSocket) -> Result<(), Error> {
    let mut notifications = Notification::subscribe(socket);
    while let Some(notification) = notifications.next().await {
        println!("{}", notification?.text);
    }
    Ok(())
}

fn main() {
    let _ = client;
    let server = Notification::register(Server::new(), |h| {
        h.on_open(|conn| async move {
            conn.send(&Notification {
                text: format!("hello {}", conn.params().user_id),
            })
            .await?;
            Ok(())
        })
    });
    drop(server);
    assert_eq!(<Notification as Channel>::SHAPE, Shape::ServerOnly);
    let _: Option<<Notification as Channel>::ClientMessage> = None::<NoMessage>;
}
