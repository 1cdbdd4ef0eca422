// The annotated type has functions of its own named `publish`, `subscribe` and `register`: they
// take precedence over the `Channel` trait's, which stay reachable as `<T as Channel>::…`.
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, ClientSocket, Error, Server, channel};

#[channel("user/<userId>")]
#[derive(Debug, Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

// The type's own functions, with the names of the trait's.
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
    <UserEvents as Channel>::publish(&mut socket, &UserEvents { text: "hi".into() }).await?;
    let _events = <UserEvents as Channel>::subscribe(socket);
    Ok(())
}

fn main() {
    let _ = client;
    let server = <UserEvents as Channel>::register(Server::new(), |h| {
        h.on_message(|conn, msg| async move {
            conn.send(&msg).await?;
            Ok(())
        })
    });
    drop(server);
    // Path calls, as the trait's functions are called: the type's own win.
    let mut event = UserEvents { text: "hi".into() };
    UserEvents::register(&mut event);
    assert_eq!((UserEvents::publish(&event), UserEvents::subscribe()), ("hi!", 1));
    assert_eq!(<UserEvents as Channel>::NAME, "UserEvents");
    assert_eq!(UserEventsParams::new("u1").to_string(), "user/u1");
}
