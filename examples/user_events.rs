//! A user service, typed: channel `user/events/<userId>` carrying `UserSignedUp`
//! (`{"userId": …, "email": …}` on the wire, no envelope). The server answers every message
//! with the same `userId` and the email `updated@example.com`.
//!
//! Run the server (address from the first argument or `WS_ADDR`, default `127.0.0.1:8080`):
//!
//! ```text
//! cargo run --example user_events
//! ```
//!
//! Then, in another terminal, the client side (connect, publish, print what `subscribe` yields):
//!
//! ```text
//! cargo run --example user_events -- --client ws://127.0.0.1:8080
//! ```
//!
//! or any WebSocket client: connect to `ws://127.0.0.1:8080/user/events/user123` and send
//! `{"userId":"user123","email":"user@example.com"}`.
//!
//! Print the channel's AsyncAPI 3.0 document (JSON) and exit:
//!
//! ```text
//! cargo run --example user_events -- --asyncapi
//! ```
//!
//! or its TypeScript client (checked in as `examples/user_events.ts`):
//!
//! ```text
//! cargo run --example user_events -- --typescript
//! ```

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use ws_channels::{AsyncApi, Channel, Event, Server, channel};

/// A user signed up.
#[channel("user/events/<userId>", name = "userEvents")]
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserSignedUp {
    /// The user identifier.
    pub user_id: String,
    /// The address they signed up with.
    pub email: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match args.next() {
        Some(flag) if flag == "--asyncapi" => {
            println!("{}", asyncapi().to_json_string());
            Ok(())
        }
        Some(flag) if flag == "--typescript" => {
            print!("{}", asyncapi().to_typescript());
            Ok(())
        }
        Some(flag) if flag == "--client" => {
            let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:8080".to_owned());
            client(&base).await
        }
        addr => server(addr.or_else(|| std::env::var("WS_ADDR").ok())).await,
    }
}

/// The service's AsyncAPI document, derived from the Rust type instead of written by hand.
fn asyncapi() -> AsyncApi {
    AsyncApi::new("User Service", "1.0.0")
        .description("WebSocket-based user event system")
        .server("local", "localhost:8080", "ws")
        .channel::<UserSignedUp>()
}

async fn server(addr: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    let server = UserSignedUp::register(Server::new(), |handler| {
        handler
            .on_connect(|handshake| async move {
                println!("user {} connected", handshake.params().user_id);
                Ok(())
            })
            .on_message(|conn, message| async move {
                println!("received {message:?}");
                let reply = UserSignedUp {
                    user_id: message.user_id,
                    email: "updated@example.com".to_owned(),
                };
                conn.send(&reply).await?;
                Ok(())
            })
    });
    let listener = tokio::net::TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:8080")).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    server.serve_with_shutdown(listener, ctrl_c).await?;
    Ok(())
}

async fn client(base: &str) -> Result<(), Box<dyn std::error::Error>> {
    let params = UserSignedUpParams::new("user123");
    println!("connecting to {}", params.url(base));
    let (client, mut events) = ws_channels::connect(base, &params).await?;
    let message = UserSignedUp {
        user_id: "user123".to_owned(),
        email: "user@example.com".to_owned(),
    };
    client.send(&message).await?;
    println!("published {message:?}");
    match events.next().await {
        Some(Ok(Event::Message(reply))) => println!("received {reply:?}"),
        Some(Ok(other)) => println!("{other:?}"),
        Some(Err(error)) => println!("error: {error}"),
        None => println!("the server closed the connection: {:?}", events.state()),
    }
    client.close().await;
    Ok(())
}
