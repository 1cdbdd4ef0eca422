// A template error in a channel that other code uses: the template error is the only error (no "no function named `register`", no "cannot find type `UserEventsParams`").
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, ClientSocket, Error, Server, channel};

#[channel("user/events/<userId")]
#[derive(Debug, Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

async fn client(mut socket: ClientSocket) -> Result<(), Error> {
    UserEvents::publish(&mut socket, &UserEvents { text: "hi".into() }).await?;
    let _events = UserEvents::subscribe(socket);
    Ok(())
}

fn main() {
    let _ = client;
    let params = UserEventsParams::new("u1");
    println!("{params} {}", params.user_id);
    let _server = UserEvents::register(Server::new(), |h| {
        h.on_message(|conn, msg| async move {
            conn.send(&msg).await?;
            Ok(())
        })
    });
}
