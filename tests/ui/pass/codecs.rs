//! Every codec declares and registers; a raw channel's messages are `Raw` both ways.
use ws_channels::{Channel, Raw, Server, channel};

#[channel("json/<id>", codec = json)]
#[derive(serde::Serialize, serde::Deserialize)]
struct JsonEvent {
    id: String,
}

#[channel("pack/<id>", codec = msgpack)]
#[derive(serde::Serialize, serde::Deserialize)]
struct PackEvent {
    id: String,
}

#[channel("proxy/<id>", codec = raw)]
struct Proxy;

#[channel("feed", codec = raw, server_only)]
struct Feed;

fn main() {
    let server = JsonEvent::register(Server::new(), |h| h);
    let server = PackEvent::register(server, |h| h);
    let server = Proxy::register(server, |h| {
        h.on_message(|conn, message: Raw| async move {
            conn.send(&message).await?;
            Ok(())
        })
    });
    let _ = Feed::register(server, |h| h);
    let _publish = async |sink: &mut ws_channels::ClientSocket| Proxy::publish(sink, &Raw::text("hi")).await;
}
