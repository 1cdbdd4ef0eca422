// `crate = "wsc"` when the runtime is imported under another name.
use serde::{Deserialize, Serialize};
use ws_channels as wsc;
use wsc::Channel as _;

#[wsc::channel("user/events/<userId>", crate = "wsc")]
#[derive(Serialize, Deserialize)]
struct UserEvents {
    text: String,
}

fn main() {
    let server = UserEvents::register(wsc::Server::new(), |h| {
        h.on_message(|conn, message| async move {
            conn.send(&message).await?;
            Ok(())
        })
    });
    drop(server);
    assert_eq!(<UserEvents as wsc::Channel>::NAME, "UserEvents");
    assert_eq!(UserEventsParams::new("u1").to_string(), "user/events/u1");
}
