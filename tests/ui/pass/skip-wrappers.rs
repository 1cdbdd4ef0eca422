// `skip_wrappers`: the type keeps its own `publish`, `subscribe` and `register`; the channel is used through the generic functions.
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, ClientSocket, Error, Handler, Server, channel};

#[channel("user/<userId>", skip_wrappers)]
#[derive(Debug, Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

// The type's own functions, with the names the wrappers would have taken.
impl UserEvents {
    fn publish(&self) -> &str {
        &self.text
    }

    fn subscribe() -> u8 {
        1
    }

    fn register(&mut self) {
        self.text.push('!');
    }
}

async fn client(mut socket: ClientSocket) -> Result<(), Error> {
    ws_channels::publish::<UserEvents, _>(&mut socket, &UserEvents { text: "hi".into() }).await?;
    let _events = ws_channels::subscribe::<UserEvents, _>(socket);
    Ok(())
}

fn main() {
    let _ = client;
    let server = Server::new().register(Handler::<UserEvents>::new().on_message(|conn, msg| async move {
        conn.send(&msg).await?;
        Ok(())
    }));
    drop(server);
    let mut event = UserEvents { text: "hi".into() };
    event.register();
    assert_eq!((event.publish(), UserEvents::subscribe()), ("hi!", 1));
    assert_eq!(<UserEvents as Channel>::NAME, "UserEvents");
    assert_eq!(UserEventsParams::new("u1").to_string(), "user/u1");
}
