#![allow(
    dead_code,
    reason = "the wire layer lands before all of its users: the endpoint uses the server's half, \
              the session client (a later slice) the rest"
)]
//! Sessions: one WebSocket carrying many channel subscriptions over the Centrifugo client
//! protocol v2, JSON format (the design is `docs/design/sessions.md`).
//!
//! This folder is the wire layer only, and it is tokio-free (`tests/layers.rs` checks that it
//! imports nothing of `server`, `client`, `hub` or tokio), so a WebAssembly client can reuse it:
//!
//! - [`protocol`]: the JSON messages: commands a client sends, replies and pushes a server
//!   sends, and the pre-encoded pieces that wrap an already-encoded frame into a `pub` push;
//! - [`frame`]: a frame's `\n`-separated commands, and replies joined into frames;
//! - [`codes`]: the error, disconnect and unsubscribe codes, and what the SDKs do with each.

pub(crate) mod codes;
pub(crate) mod frame;
pub(crate) mod protocol;
