//! A front end of the application's own: a plain tokio-tungstenite server that accepts
//! WebSockets itself and hands each to [`Acceptor::serve_socket`]. The same decision as the
//! standalone server and axum (routing, parameters, origin, limits, `on_connect`), the same
//! connection task (typed messages, bad input, broadcast, shutdown); refusals, which come after
//! the upgrade here, are close codes.

// A failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use ws_channels::http::header::SEC_WEBSOCKET_PROTOCOL;
use ws_channels::tungstenite::Message;
use ws_channels::tungstenite::client::IntoClientRequest;
use ws_channels::tungstenite::handshake::server::{Request, Response};
use ws_channels::{Acceptor, Channel, Event, Reject, Server, channel};
use ws_channels_tests::{handshake_status_at, next_text, read_until_close, within};

/// Said in a room, echoed to everyone there with the speaker's name.
#[channel("room/<name>/<seat: u8>", name = "room")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Say {
    text: String,
}

/// Whoever `?user=` names; `?user=` missing or `mallory` is refused, `panic` panics.
struct User(String);

fn rooms() -> Server {
    let server = Server::new()
        .max_connections_per_address(2)
        .close_timeout(Duration::from_millis(300));
    Say::register(server, |h| {
        h.on_connect(|handshake| async move {
            match handshake.query_param("user") {
                Some(user) if user == "panic" => panic!("on_connect fails on purpose"),
                Some(user) if user != "mallory" => Ok(User(user)),
                _ => Err(Reject::unauthorized("who are you?")),
            }
        })
        .on_message(|conn, say| async move {
            let text = format!("{}: {}", conn.data().0, say.text);
            let _ = conn.broadcast(&Say { text }).await?;
            Ok(())
        })
    })
}

/// A tokio-tungstenite server of its own, as the acceptor's documentation shows it.
async fn serve(acceptor: Acceptor) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut head = None;
                #[expect(clippy::result_large_err, reason = "the signature is tokio-tungstenite's callback's")]
                let check = |request: &Request, mut response: Response| match acceptor.check(request) {
                    Ok(protocol) => {
                        if let Some(protocol) = protocol {
                            response.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, protocol);
                        }
                        head = Some((request.uri().clone(), request.headers().clone()));
                        Ok(response)
                    }
                    Err(reject) => Err(reject.to_response().map(Some)),
                };
                let config = Some(acceptor.websocket_config());
                let handshake = tokio_tungstenite::accept_hdr_async_with_config(tcp, check, config);
                let Ok(Ok(socket)) = tokio::time::timeout(Duration::from_secs(10), handshake).await else {
                    return;
                };
                if let Some((uri, headers)) = head {
                    let _ = acceptor.serve_socket(&uri, &headers, Some(peer), socket).await;
                }
            });
        }
    });
    addr
}

/// The close code and reason a raw client gets at `path`.
async fn closed_with(addr: SocketAddr, path: &str) -> (u16, String) {
    let url = format!("ws://{addr}{path}");
    let (mut socket, _) = within("connect", tokio_tungstenite::connect_async(url.as_str()))
        .await
        .unwrap();
    let (_, close) = read_until_close(&mut socket).await;
    let close = close.unwrap_or_else(|| panic!("{path}: closed without a close frame"));
    (u16::from(close.code), close.reason.to_string())
}

#[tokio::test]
async fn typed_clients_talk_through_a_server_of_ones_own() {
    let server = rooms();
    let (hub, metrics) = (server.hub(), server.metrics());
    let addr = serve(server.into_acceptor()).await;
    let base = format!("ws://{addr}");
    let params = SayParams::new("lobby", 1);
    let (alice, mut alice_events) = within("alice connects", join(&base, &params, "alice")).await;
    let (_bob, mut bob_events) = within("bob connects", join(&base, &params, "bob")).await;
    alice.send(&Say { text: "hi".into() }).await.unwrap();
    for events in [&mut alice_events, &mut bob_events] {
        match within("the broadcast", events.next()).await.unwrap().unwrap() {
            Event::Message(say) => assert_eq!(say.text, "alice: hi"),
            other => panic!("{other:?}"),
        }
    }
    // From outside any handler, through the same hub.
    let published = hub
        .publish(
            &params,
            &Say {
                text: "from the hub".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(published.local, 2, "both members, on this one node");
    // The subprotocol the typed clients offered was answered: one handshake each, no
    // connection made and dropped first.
    let counted = metrics.snapshot();
    assert_eq!(
        (counted.connections_total, counted.handshakes_rejected),
        (2, 0),
        "{counted:?}"
    );
    match within("the hub's message", bob_events.next()).await.unwrap().unwrap() {
        Event::Message(say) => assert_eq!(say.text, "from the hub"),
        other => panic!("{other:?}"),
    }
}

/// A typed client, as `user`.
async fn join(base: &str, params: &SayParams, user: &str) -> (ws_channels::Client<Say>, ws_channels::Events<Say>) {
    ws_channels::Client::builder(base, params)
        .query("user", user)
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn refusals_after_the_upgrade_are_close_codes_and_counted() {
    let server = rooms();
    let metrics = server.metrics();
    let addr = serve(server.into_acceptor()).await;
    // Before the upgrade, in the handshake callback: HTTP statuses.
    assert_eq!(handshake_status_at(addr, "/nowhere?user=a", &[]).await, 404);
    assert_eq!(
        handshake_status_at(addr, "/room/lobby/1?user=a", &[("origin", "https://evil.example")]).await,
        403
    );
    assert_eq!(
        handshake_status_at(
            addr,
            "/room/lobby/1?user=a",
            &[("sec-websocket-protocol", "wsc.v1.json.other")]
        )
        .await,
        400,
        "a typed client of another channel"
    );
    // After it: close codes.
    let cases = [
        ("/room/lobby/300?user=a", 1008, "seat"),
        ("/room/lobby/1", 1008, "who are you?"),
        ("/room/lobby/1?user=mallory", 1008, "who are you?"),
        ("/room/%zz/1?user=a", 1008, "percent-encoded"),
        ("/room/lobby/1?user=panic", 1011, "internal error"),
    ];
    for (path, code, reason) in cases {
        let (got, said) = closed_with(addr, path).await;
        assert_eq!(got, code, "{path}: {said}");
        assert!(said.contains(reason), "{path}: {said}");
    }
    // Limits: the third connection to one address is told to try again later.
    let url = format!("ws://{addr}/room/full/1?user=a");
    let mut kept = Vec::new();
    for _ in 0..2 {
        let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
        socket.send(Message::text(r#"{"text":"here"}"#)).await.unwrap();
        assert_eq!(next_text(&mut socket).await, r#"{"text":"a: here"}"#);
        kept.push(socket);
    }
    assert_eq!(closed_with(addr, "/room/full/1?user=a").await.0, 1013);
    let counted = metrics.snapshot();
    assert_eq!(counted.handshakes_rejected, 9, "{counted:?}");
    assert_eq!(counted.connections_total, 2, "{counted:?}");
}

#[tokio::test]
async fn bad_input_and_shutdown_end_connections_as_on_every_front_end() {
    let acceptor = rooms().into_acceptor();
    let handle = acceptor.handle();
    let addr = serve(acceptor).await;
    let url = format!("ws://{addr}/room/lobby/2?user=a");
    let (mut bad, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    bad.send(Message::text("{not json")).await.unwrap();
    let (_, close) = read_until_close(&mut bad).await;
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1007));

    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    let ((), (_, close)) = tokio::join!(handle.shutdown(), read_until_close(&mut socket));
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1001));
    assert_eq!(
        handshake_status_at(addr, "/room/lobby/2?user=a", &[]).await,
        503,
        "shutting down"
    );
}

/// Sessions through a server of one's own: the acceptor serves the sessions endpoint as any
/// route (its `centrifuge-json` subprotocol answered), and a session subscribes to a room and
/// hears a direct client of it.
#[tokio::test]
async fn sessions_are_served_through_a_server_of_ones_own() {
    let server = rooms().sessions(ws_channels::Sessions::new());
    let addr = serve(server.into_acceptor()).await;
    // The room's `on_connect` reads `?user=` of the session's own request.
    let mut request = format!("ws://{addr}/connection/websocket?user=ann")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert(SEC_WEBSOCKET_PROTOCOL, "centrifuge-json".parse().unwrap());
    let (mut session, response) = within("a session", tokio_tungstenite::connect_async(request))
        .await
        .unwrap();
    assert_eq!(
        response.headers().get(SEC_WEBSOCKET_PROTOCOL).map(|v| v.as_bytes()),
        Some(&b"centrifuge-json"[..])
    );
    let hello = "{\"id\":1,\"connect\":{}}\n{\"id\":2,\"subscribe\":{\"channel\":\"room/lobby/1\"}}";
    within("send", session.send(Message::text(hello))).await.unwrap();
    let mut lines = Vec::new();
    while lines.len() < 2 {
        lines.extend(next_text(&mut session).await.split('\n').map(str::to_owned));
    }
    assert!(lines[0].contains(r#""connect":{"client":"#), "{lines:?}");
    assert_eq!(lines[1], r#"{"id":2,"subscribe":{}}"#);
    let (bob, _bob_events) = within(
        "bob connects",
        join(&format!("ws://{addr}"), &SayParams::new("lobby", 1), "bob"),
    )
    .await;
    bob.send(&Say { text: "hi".into() }).await.unwrap();
    assert_eq!(
        next_text(&mut session).await,
        r#"{"push":{"channel":"room/lobby/1","pub":{"data":{"text":"bob: hi"}}}}"#
    );
}
