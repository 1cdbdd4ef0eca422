//! [`Handler`]: the typed callbacks a server runs for one channel.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::conn::{CloseInfo, Conn};
use super::handshake::{Handshake, Reject};
use crate::channel::{Channel, ClientSends};
use crate::error::{Error, HandlerResult};

pub(crate) type ConnectFn<C, S, D> =
    Arc<dyn Fn(Handshake<C, S>) -> BoxFuture<'static, Result<D, Reject>> + Send + Sync>;
pub(crate) type OpenFn<C, S, D> =
    Arc<dyn Fn(Conn<C, S, D>) -> BoxFuture<'static, HandlerResult> + Send + Sync>;
pub(crate) type MessageFn<C, S, D> = Arc<
    dyn Fn(Conn<C, S, D>, <C as Channel>::ClientMessage) -> BoxFuture<'static, HandlerResult>
        + Send
        + Sync,
>;
pub(crate) type CloseFn<C, S, D> =
    Arc<dyn Fn(Conn<C, S, D>, CloseInfo) -> BoxFuture<'static, ()> + Send + Sync>;
pub(crate) type ErrorFn<C, S, D> = Arc<dyn Fn(&Conn<C, S, D>, &Error) + Send + Sync>;

/// The callbacks the server runs for one channel, in connection order:
///
/// 1. [`on_connect`](Self::on_connect) — before the upgrade: sees the [`Handshake`], refuses it
///    with a [`Reject`] (HTTP 401/403/…) or returns the connection's typed data `D`;
/// 2. [`on_open`](Self::on_open) — after the upgrade, before the first message;
/// 3. [`on_message`](Self::on_message) — once per decoded, validated client message, one at a
///    time and in order;
/// 4. [`on_error`](Self::on_error) — for every error on the connection (bad frames, handler
///    errors and panics, transport errors);
/// 5. [`on_close`](Self::on_close) — once, when the connection has ended.
///
/// A handler that returns `Err` or panics closes only its own connection, with 1011.
///
/// `S` is the server's shared state, `D` the per-connection data `on_connect` returns (`()`
/// without an `on_connect`). Data is shared by every clone of a [`Conn`]; use interior
/// mutability (a `Mutex`, atomics) for data that changes.
#[must_use = "a handler does nothing until registered on a server"]
pub struct Handler<C: Channel, S = (), D = ()> {
    pub(crate) on_connect: ConnectFn<C, S, D>,
    pub(crate) on_open: Option<OpenFn<C, S, D>>,
    pub(crate) on_message: Option<MessageFn<C, S, D>>,
    pub(crate) on_close: Option<CloseFn<C, S, D>>,
    pub(crate) on_error: Option<ErrorFn<C, S, D>>,
}

impl<C: Channel, S: Send + Sync + 'static> Handler<C, S, ()> {
    /// A handler that accepts every connection and ignores every message.
    pub fn new() -> Self {
        Self {
            on_connect: Arc::new(|_| Box::pin(async { Ok(()) })),
            on_open: None,
            on_message: None,
            on_close: None,
            on_error: None,
        }
    }

    /// Decides, before the upgrade, whether to accept a connection and with which typed data.
    ///
    /// Call it first: the other callbacks receive the data it returns.
    ///
    /// # Panics
    ///
    /// If another callback was set before it (their data type would be lost).
    pub fn on_connect<D, F, Fut>(self, on_connect: F) -> Handler<C, S, D>
    where
        D: Send + Sync + 'static,
        F: Fn(Handshake<C, S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<D, Reject>> + Send + 'static,
    {
        assert!(
            self.on_open.is_none()
                && self.on_message.is_none()
                && self.on_close.is_none()
                && self.on_error.is_none(),
            "call `on_connect` before the other callbacks of the `{}` handler: they receive the data it returns",
            C::NAME
        );
        Handler {
            on_connect: Arc::new(move |handshake| Box::pin(on_connect(handshake))),
            on_open: None,
            on_message: None,
            on_close: None,
            on_error: None,
        }
    }
}

impl<C: Channel, S: Send + Sync + 'static> Default for Handler<C, S, ()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Channel, S: Send + Sync + 'static, D: Send + Sync + 'static> Handler<C, S, D> {
    /// Runs after the upgrade, before the first message (send a welcome, announce a join).
    pub fn on_open<F, Fut>(mut self, on_open: F) -> Self
    where
        F: Fn(Conn<C, S, D>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.on_open = Some(Arc::new(move |conn| Box::pin(on_open(conn))));
        self
    }

    /// Handles each client message. Only channels clients may publish on have one.
    pub fn on_message<F, Fut>(mut self, on_message: F) -> Self
    where
        C: ClientSends,
        F: Fn(Conn<C, S, D>, C::ClientMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.on_message = Some(Arc::new(move |conn, message| {
            Box::pin(on_message(conn, message))
        }));
        self
    }

    /// Runs once when the connection has ended, with the close code and reason.
    pub fn on_close<F, Fut>(mut self, on_close: F) -> Self
    where
        F: Fn(Conn<C, S, D>, CloseInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.on_close = Some(Arc::new(move |conn, info| Box::pin(on_close(conn, info))));
        self
    }

    /// Observes every error on a connection. The server has already chosen the outcome
    /// (documented on each [`Error`] variant); this is for logging and metrics.
    ///
    /// Without it, errors are logged with `tracing`.
    pub fn on_error<F>(mut self, on_error: F) -> Self
    where
        F: Fn(&Conn<C, S, D>, &Error) + Send + Sync + 'static,
    {
        self.on_error = Some(Arc::new(on_error));
        self
    }
}

impl<C: Channel, S, D> Clone for Handler<C, S, D> {
    fn clone(&self) -> Self {
        Self {
            on_connect: self.on_connect.clone(),
            on_open: self.on_open.clone(),
            on_message: self.on_message.clone(),
            on_close: self.on_close.clone(),
            on_error: self.on_error.clone(),
        }
    }
}

impl<C: Channel, S, D> fmt::Debug for Handler<C, S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handler")
            .field("channel", &C::NAME)
            .field("on_open", &self.on_open.is_some())
            .field("on_message", &self.on_message.is_some())
            .field("on_close", &self.on_close.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}
