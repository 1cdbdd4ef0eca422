//! Typed WebSocket channels: declare a serde message type once with
//! `#[channel("user/events/<userId>")]` and get typed publish, subscribe and register functions,
//! URL parameters parsed into a struct, and a server that routes, validates and dispatches.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use ws_channels::{Channel, Server, channel};
//!
//! /// A user signed up.
//! #[channel("user/events/<userId>")]
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! #[serde(rename_all = "camelCase")]
//! pub struct UserSignedUp {
//!     user_id: String,
//!     email: String,
//! }
//!
//! # async fn run() -> Result<(), ws_channels::Error> {
//! // Server: reply to every message on `user/events/<userId>`.
//! let server = UserSignedUp::register(Server::new(), |handler| {
//!     handler.on_message(|conn, msg| async move {
//!         let reply = UserSignedUp { user_id: msg.user_id, email: "updated@example.com".into() };
//!         conn.send(&reply).await?;
//!         Ok(())
//!     })
//! });
//! tokio::spawn(server.listen("127.0.0.1:8080"));
//!
//! // Client: connect to `user/events/u1`, publish, read the typed reply.
//! use futures_util::StreamExt;
//! let params = UserSignedUpParams::new("u1");
//! let (client, mut events) = ws_channels::connect("ws://127.0.0.1:8080", &params).await?;
//! client.send(&UserSignedUp { user_id: "u1".into(), email: "user@example.com".into() }).await?;
//! let reply: Option<UserSignedUp> = events.next().await.expect("a reply")?.into_message();
//! # Ok(()) }
//! ```
//!
//! # The pieces
//!
//! - [`macro@channel`] turns a message type into a [`Channel`] with a [`Params`] struct.
//! - Clients [`connect`], or configure a [`ClientBuilder`] (credentials, TLS, timeouts,
//!   [`Reconnect`]ion): a [`Client`] sends, [`Events`] receive, and a background task drives
//!   the connection through its [`ConnectionState`]s. [`publish`] and [`subscribe`] work over
//!   any WebSocket ([`MessageSink`] / [`MessageStream`]).
//! - Servers register a [`Handler`] per channel on a [`Server`]; handlers get a [`Conn`].
//!   [`Handler::authenticate`] reads a credential from a [`TokenSource`]; `on_connect` refuses
//!   with a [`Reject`] before the upgrade.
//! - Every connection is subscribed to its own address, a [`Topic`]: [`Conn::broadcast`] reaches
//!   the room, [`Conn::join`] adds rooms, and a [`Hub`] publishes from anywhere. Each connection
//!   has a bounded queue; a channel's [`LagPolicy`] decides what a slow reader loses.
//! - A [`Backplane`] carries publishes to the other nodes of a cluster (with the `redis`
//!   feature, `RedisBackplane`); a [`ConnId`] names a connection on any node, and a publish
//!   says what it reached ([`Published`]).
//! - The [`Server`] table lists every limit (size, rate, connections, pings, idle, origins)
//!   and its outcome; [`Metrics`] counts what happened. [`Handshake::expire_at`] ends a
//!   connection when its credentials do, with [`CLOSE_CREDENTIALS_EXPIRED`] (4001).
//! - [`guide::bad_input`] lists every kind of bad input, its outcome and its regression test;
//!   [`guide::threat_model`] says what the library guarantees and what the application must do.
//! - [`Sessions`] serve the Centrifugo client protocol (JSON) at one more path, so a
//!   Centrifugo SDK connects to the server once (its `authenticate` hook answers an
//!   [`Identity`] or a [`SessionReject`]) and subscribes to any number of the server's
//!   channels over that one WebSocket, each run by the channel's own handler.
//! - [`TestServer`] runs a server's channels in memory, with the same checks and handlers: tests
//!   (and most examples here) need no socket.
//! - With the `axum` feature, `Server::into_router` mounts the same channels in an axum app,
//!   and `serve_app` serves it with the header read timeout `axum::serve` lacks.
//! - With the `asyncapi` feature, `AsyncApi` exports the contract: an AsyncAPI 3.0 document and
//!   a TypeScript client, derived from the same types.
//! - [`Validate`] adds checks beyond the serde shape; failures are [`Error::Validation`].
//!
//! A malformed template is a compile error:
//!
//! ```compile_fail
//! #[ws_channels::channel("user/<userId")]
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Broken;
//! ```
//!
//! # Feature flags
//!
//! All are off by default: channels, the client, the standalone server and the hub need
//! none of them.
//!
//! | feature | adds | brings in |
//! |---|---|---|
//! | `rustls` | `wss://` for clients (webpki roots; `ClientBuilder::tls` for your own) and `Server::serve_tls` | `rustls` (ring provider), `tokio-rustls`, `webpki-roots` |
//! | `rustls-native-roots` | as `rustls`, trusting the system's root certificates | `rustls-native-certs` instead of `webpki-roots` |
//! | `native-tls` | `wss://` for clients with the platform's TLS (OpenSSL on Linux: libssl-dev, pkg-config) | `native-tls` |
//! | `msgpack` | MessagePack channels (`codec = msgpack`) | `rmp-serde` |
//! | `metrics` | the counters mirrored to the `metrics` facade | `metrics` |
//! | `axum` | `Server::into_router`: the same channels as routes of an axum 0.8 `Router`, next to your HTTP routes (they share its path space: see [`macro@channel`]) | `axum`, `hyper`, `hyper-util` |
//! | `asyncapi` | `AsyncApi`: an AsyncAPI 3.0 document (JSON) and a TypeScript client derived from the channel types (message types derive `schemars::JsonSchema`) | `schemars` |
//! | `redis` | `RedisBackplane`: several nodes share topics, connection ids and member counts through Redis pub/sub | `redis` |
//!
//! ```toml
//! ws-channels = { version = "0.1", features = ["axum", "asyncapi"] }
//! ```
//!
//! On docs.rs, which documents every feature, items that need one say so.

// Feature badges on docs.rs: `doc(cfg)` is unstable, so it is enabled only under the `docsrs`
// cfg that docs.rs passes (package.metadata.docs.rs); a local `cargo doc` on stable does
// without the badges.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's code is compiled and run as a doctest, so the quick start stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

// The crate's own tests use `#[channel]`, whose expansion names `::ws_channels`.
#[cfg(test)]
extern crate self as ws_channels;

mod channel;
mod client;
mod codec;
mod conn_id;
mod error;
mod hub;
mod log;
mod metrics;
mod outbox;
mod pattern;
mod server;
mod session;
#[cfg(feature = "asyncapi")]
mod spec;
mod subprotocol;
mod transport;
mod validate;
#[cfg(test)]
mod wake_count;

pub use channel::{Channel, ClientSends, ErrorReply, LagPolicy, Message, NoMessage, ParamValue, Params, Shape};
pub use client::{
    Client, ClientBuilder, ClientSocket, ConnectionState, Event, Events, Publish, Publisher, Reconnect, Subscription,
    connect, publish, subscribe,
};
pub use codec::{Codec, Format, FrameError, FrameKind, Json, MsgPack, Passthrough, Raw};
pub use conn_id::{ConnId, ParseConnIdError};
pub use error::{BoxError, CodecError, Error, HandlerResult, ParamError, Report, ValidationError};
pub use hub::{
    Backplane, BackplaneError, Destination, EngineHealth, Envelope, Hub, Inbound, IntoTopic, Published, Sent, Topic,
};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use hub::{RedisBackplane, RedisConfig};
pub use log::Escaped;
pub use metrics::{Metrics, MetricsSnapshot};
pub use pattern::{Segment, Template};
pub use server::{
    Acceptor, CloseInfo, Conn, ConnectRequest, DEFAULT_SESSIONS_PATH, ExtractToken, Handler, Handshake, Identity,
    Lagged, ProxyHeader, RateLimit, RateLimitAction, Reject, Server, ServerHandle, SessionReject, Sessions, TestClient,
    TestRequest, TestServer, TestSocket, TokenSource,
};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use server::{ServeApp, serve_app};
#[cfg(feature = "asyncapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "asyncapi")))]
pub use spec::AsyncApi;
pub use transport::{MessageSink, MessageStream};
pub use validate::Validate;
#[doc = include_str!("../docs/channel.md")]
pub use ws_channels_macros::channel;

/// The HTTP types of handshakes ([`StatusCode`](http::StatusCode) for a [`Reject`], headers).
pub use http;
/// The rustls crate this one's TLS is built on (for `Server::serve_tls`'s `ServerConfig` and
/// a client's `TlsConnector::Rustls`), so the versions match. Feature `rustls`.
#[cfg(any(feature = "rustls", feature = "rustls-native-roots"))]
#[cfg_attr(docsrs, doc(cfg(feature = "rustls")))]
pub use rustls;
/// The TLS connector a [`ClientBuilder::tls`] takes: a rustls client configuration or a
/// native-tls connector. Feature `rustls`, `rustls-native-roots` or `native-tls`.
#[cfg(any(feature = "rustls", feature = "rustls-native-roots", feature = "native-tls"))]
#[cfg_attr(
    docsrs,
    doc(cfg(any(feature = "rustls", feature = "rustls-native-roots", feature = "native-tls")))
)]
pub use tokio_tungstenite::Connector as TlsConnector;
/// The WebSocket protocol types this crate speaks (messages, close frames).
pub use tokio_tungstenite::tungstenite;
/// WebSocket close codes, as passed to [`Conn::close`] and found in [`CloseInfo`].
pub use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Documents to read once, beyond the API: no items, only pages.
pub mod guide {
    #[doc = include_str!("../docs/bad-input.md")]
    pub mod bad_input {}

    #[doc = include_str!("../docs/threat-model.md")]
    pub mod threat_model {}

    #[doc = include_str!("../docs/logging.md")]
    pub mod logging {}
}

/// The close code of a connection whose credentials expired ([`Handshake::expire_at`]): 4001,
/// from the range RFC 6455 leaves to applications. A client should refresh its credentials
/// and reconnect.
pub const CLOSE_CREDENTIALS_EXPIRED: CloseCode = CloseCode::Library(4001);

/// Not public API: what generated code reaches through `ws_channels::__private`.
#[doc(hidden)]
pub mod __private {
    // The std items generated code names, so each is a two-segment path (`__wsc::String`) in
    // the expansion rather than a fully qualified one (`::std::string::String`, four segments):
    // every token of every channel costs the compiler, and these paths are most of them. Still
    // immune to the caller's shadowing, like any absolute path.
    pub use core::cmp::PartialEq;
    pub use core::option::Option::{self, Some};
    pub use core::primitive::str;
    pub use core::result::Result::{self, Ok};
    pub use std::convert::Into;
    pub use std::fmt::{self, Display, Formatter};
    pub use std::str::FromStr;
    pub use std::string::String;
    pub use std::vec::Vec;

    pub use crate::channel::{Channel, ClientSends, ErrorReply, LagPolicy, NoMessage, ParamValue, Params, Shape};
    pub use crate::codec::{Json, MsgPack, Passthrough, Raw};
    pub use crate::error::{Error, ParamError, ValidationError};
    pub use crate::pattern::{Segment, Template};
    pub use crate::validate::Validate;

    /// Parses one matched, decoded parameter value as its declared type.
    pub fn parse_param<T: ParamValue>(
        template: &'static str,
        name: &'static str,
        value: Option<&String>,
    ) -> Result<T, ParamError> {
        let value = value.ok_or(ParamError::Missing { template, name })?;
        value
            .parse()
            .map_err(|error: <T as std::str::FromStr>::Err| ParamError::Invalid {
                template,
                name,
                value: value.clone(),
                expected: std::any::type_name::<T>(),
                reason: error.to_string(),
            })
    }

    /// Formats a parameter for a path. Bounded by `Display` alone: a type that is not
    /// `FromStr` is reported once, by `parse_param`.
    pub fn format_param<T: fmt::Display + ?Sized>(value: &T) -> String {
        value.to_string()
    }

    /// `PartialEq` for generated params: the same address (parameter types need not be
    /// `PartialEq`, only `Display`).
    pub fn params_eq<P: Params>(a: &P, b: &P) -> bool {
        a.to_values() == b.to_values()
    }

    /// `Display` for generated params: the concrete address.
    pub fn fmt_params<P: Params>(params: &P, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&P::TEMPLATE.render(&params.to_values()))
    }

    /// The generated inherent `url`: never fails (an empty parameter gives an address no
    /// server matches; `Params::to_url` reports it instead).
    pub fn url<P: Params>(params: &P, base: &str) -> String {
        crate::pattern::join_url(base, &P::TEMPLATE.render(&params.to_values()))
    }
}
