//! A connection bound to its channel's handler: the typed half of a connection, behind an
//! object-safe trait ([`Binding`]).
//!
//! The connection task (`task`, `reader`, `writer`) is written once and compiled once: it
//! reaches the channel's types (decoding and validating a message, the handler's callbacks,
//! the channel's error reply) only through a connection's `Binding`, one indirect call per
//! message. Generic over the channel, it would be compiled again for every registered channel,
//! and an application's build would grow by the whole task per channel.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::conn::{CloseInfo, Conn, Core, Lagged};
use super::guard;
use super::handler::Handler;
use super::running::Running;
use crate::channel::Channel;
use crate::codec::{self, Codec};
use crate::error::Error;

/// What the connection task asks of a connection's channel.
pub(crate) trait Binding: Send + Sync {
    /// The connection, as far as it does not depend on the channel's types.
    fn core(&self) -> &Core;

    /// The channel's name, for logs and metrics.
    fn channel(&self) -> &'static str;

    /// Starts `on_open` in `running`, if the handler has one: `true` if it did.
    fn open(&self, running: &mut Running) -> bool;

    /// Dispatches a data frame (text or binary; the task handles the others): decodes and
    /// validates it and starts the handler for it in `running`. `Ok(true)` if a handler
    /// started, `Ok(false)` for a valid message nobody handles, `Err` for one that does not
    /// decode or validate.
    fn dispatch(&self, frame: WsMessage, running: &mut Running) -> Result<bool, Error>;

    /// The channel's error reply to `error`, encoded; `None` when the channel closes instead.
    fn error_reply(&self, error: &Error) -> Option<Result<WsMessage, Error>>;

    /// Passes an error to `on_error`: `false` if the handler has none (the task logs it).
    fn on_error(&self, error: &Error) -> bool;

    /// Passes a lag report to `on_lag`: `false` if the handler has none (the task logs it).
    fn on_lag(&self, dropped: u64) -> bool;

    /// `on_close`'s future, if the handler has one. The callback is called when the future is
    /// first polled, so a caller guarding the future catches a panic in its synchronous part.
    fn on_close(&self, info: CloseInfo) -> Option<BoxFuture<'static, ()>>;
}

/// A connection and its channel's handler: the [`Binding`] every connection task holds.
pub(crate) struct Bound<C: Channel, S, D> {
    handler: Arc<Handler<C, S, D>>,
    conn: Conn<C, S, D>,
}

impl<C, S, D> Bound<C, S, D>
where
    C: Channel,
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
{
    pub(crate) fn new(handler: Arc<Handler<C, S, D>>, conn: Conn<C, S, D>) -> Self {
        Self { handler, conn }
    }
}

impl<C, S, D> Binding for Bound<C, S, D>
where
    C: Channel,
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
{
    fn core(&self) -> &Core {
        self.conn.core()
    }

    fn channel(&self) -> &'static str {
        C::NAME
    }

    fn open(&self, running: &mut Running) -> bool {
        let Some(on_open) = &self.handler.callbacks.on_open else {
            return false;
        };
        let (on_open, conn) = (on_open.clone(), self.conn.clone());
        running.start_other(Box::pin(async move { on_open(conn).await }));
        true
    }

    // Inline into the trait object's entry: once per message.
    #[inline]
    fn dispatch(&self, frame: WsMessage, running: &mut Running) -> Result<bool, Error> {
        let callbacks = &self.handler.callbacks;
        // Binary frames are side-band bytes only where messages are text: on MessagePack and
        // raw channels they are the messages.
        if let (WsMessage::Binary(bytes), Some(on_binary), false) =
            (&frame, &callbacks.on_binary, <C::Codec as Codec>::BINARY)
        {
            running.start_other(on_binary(self.conn.clone(), bytes.clone()));
            return Ok(true);
        }
        match &callbacks.on_message {
            Some(make) => running.start_message(|| make(self.conn.clone()), frame).map(|()| true),
            // Decoded all the same: an invalid message gets the channel's answer to it.
            None => codec::decode_data::<C, C::ClientMessage>(frame, C::validate_client).map(|_| false),
        }
    }

    fn error_reply(&self, error: &Error) -> Option<Result<WsMessage, Error>> {
        C::on_invalid(error).map(|reply| self.conn.hub().encode::<C>(&reply))
    }

    fn on_error(&self, error: &Error) -> bool {
        let Some(on_error) = &self.handler.callbacks.on_error else {
            return false;
        };
        guard::observe(C::NAME, "on_error", &mut || on_error(&self.conn, error));
        true
    }

    fn on_lag(&self, dropped: u64) -> bool {
        let Some(on_lag) = &self.handler.callbacks.on_lag else {
            return false;
        };
        let lagged = Lagged {
            dropped,
            policy: C::LAG_POLICY,
        };
        guard::observe(C::NAME, "on_lag", &mut || on_lag(&self.conn, lagged));
        true
    }

    fn on_close(&self, info: CloseInfo) -> Option<BoxFuture<'static, ()>> {
        let on_close = self.handler.callbacks.on_close.clone()?;
        let conn = self.conn.clone();
        Some(Box::pin(async move { on_close(conn, info).await }))
    }
}
