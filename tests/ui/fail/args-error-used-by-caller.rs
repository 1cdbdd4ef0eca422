// A misspelt argument in a channel that other code uses: the argument error is the only error; the rest is generated from the arguments that parsed.
use serde::{Deserialize, Serialize};
use ws_channels::{Channel, Server, channel};

#[channel("chat/<room>", server = ChatEvent, on_lag = drop_oldest, validat)]
#[derive(Debug, Serialize, Deserialize)]
struct ChatCommand {
    text: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChatEvent {
    text: String,
}

fn main() {
    let params = ChatCommandParams::new("lobby");
    println!("{params} {}", params.room);
    let _server = ChatCommand::register(Server::new(), |h| {
        h.on_message(|conn, msg| async move {
            conn.send(&ChatEvent { text: msg.text }).await?;
            Ok(())
        })
    });
}
