//! [`Handler`]: the typed callbacks a server runs for one channel.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use futures_util::future::{BoxFuture, Either};

use tokio_tungstenite::tungstenite::Bytes;

use super::conn::{CloseInfo, Conn, Lagged};
use super::handshake::{Handshake, TokenSource};
use super::response::Reject;
use super::running::{self, BoxRunner};
use crate::channel::{Channel, ClientSends};
use crate::codec;
use crate::error::{Error, HandlerResult};

pub(crate) type ConnectFn<C, S, D> =
    Arc<dyn Fn(Handshake<C, S>) -> BoxFuture<'static, Result<D, Reject>> + Send + Sync>;
pub(crate) type AuthorizeFn<C, D> = Arc<dyn Fn(&D, &<C as Channel>::Params) -> Result<(), Reject> + Send + Sync>;
type OpenFn<C, S, D> = Arc<dyn Fn(Conn<C, S, D>) -> BoxFuture<'static, HandlerResult> + Send + Sync>;
/// Makes a connection's runner of `on_message` (see `running`): its futures are made in place,
/// not boxed one by one.
type MessageFn<C, S, D> = Arc<dyn Fn(Conn<C, S, D>) -> BoxRunner + Send + Sync>;
type BinaryFn<C, S, D> = Arc<dyn Fn(Conn<C, S, D>, Bytes) -> BoxFuture<'static, HandlerResult> + Send + Sync>;
type CloseFn<C, S, D> = Arc<dyn Fn(Conn<C, S, D>, CloseInfo) -> BoxFuture<'static, ()> + Send + Sync>;
type ErrorFn<C, S, D> = Arc<dyn Fn(&Conn<C, S, D>, &Error) + Send + Sync>;
type LagFn<C, S, D> = Arc<dyn Fn(&Conn<C, S, D>, Lagged) + Send + Sync>;

/// The callbacks the server runs for one channel, in connection order:
///
/// 1. [`on_connect`](Self::on_connect) — before the upgrade: sees the [`Handshake`], refuses it
///    with a [`Reject`] (HTTP 401/403/…) or returns the connection's typed data `D`;
///    [`authenticate`](Self::authenticate) is an `on_connect` that reads a token first, and
///    [`authorize`](Self::authorize) checks the data against the path;
/// 2. [`on_open`](Self::on_open) — after the upgrade, before the first message. (The
///    connection joined its address's topic already, before its 101 was written: a client
///    whose handshake completed receives everything published to its address from then on);
/// 3. [`on_message`](Self::on_message) — once per decoded, validated client message, one at a
///    time and in order; [`on_binary`](Self::on_binary) for binary frames;
/// 4. [`on_error`](Self::on_error) — for every error on the connection (bad frames, limits,
///    handler errors and panics, transport errors);
/// 5. [`on_lag`](Self::on_lag) — when the connection's outbound queue overflowed;
/// 6. [`on_close`](Self::on_close) — once, when the connection has ended.
///
/// A handler that returns `Err` or panics closes only its own connection, with 1011. Three
/// callbacks return nothing, on purpose: `on_error` and `on_lag` observe an outcome the server
/// has already chosen (they run synchronously, inside the connection's task, so they must not
/// wait or fail), and `on_close` runs when there is no connection left to close.
///
/// Handlers of one connection run one at a time and in order, in its task: no message is read
/// while one awaits. Its clock keeps running meanwhile: credentials expire, a shutdown sends
/// 1001, and once the connection is closing a handler still running is dropped after the
/// close timeout. (Pings go out, but the peer's pong waits unread, so a ping timeout or the
/// idle limit never closes a connection during a handler.) Keep long work (a stream you
/// forward) in a task of its own that sends through a clone of the [`Conn`], so the
/// connection's messages keep being read.
///
/// `S` is the server's shared state, `D` the per-connection data `on_connect` returns (`()`
/// without an `on_connect`). Data is shared by every clone of a [`Conn`]; use interior
/// mutability (a `Mutex`, atomics) for data that changes. `on_connect` may come anywhere in the
/// chain, but only the callbacks set after it see its data: those set before it keep the
/// `()` they were written for.
#[must_use = "a handler does nothing until registered on a server"]
pub struct Handler<C: Channel, S = (), D = ()> {
    pub(crate) on_connect: ConnectFn<C, S, D>,
    pub(crate) authorize: Option<AuthorizeFn<C, D>>,
    pub(crate) callbacks: Callbacks<C, S, D>,
}

/// The callbacks that run on an open connection, each optional.
pub(crate) struct Callbacks<C: Channel, S, D> {
    pub(crate) on_open: Option<OpenFn<C, S, D>>,
    pub(crate) on_message: Option<MessageFn<C, S, D>>,
    pub(crate) on_binary: Option<BinaryFn<C, S, D>>,
    pub(crate) on_error: Option<ErrorFn<C, S, D>>,
    pub(crate) on_lag: Option<LagFn<C, S, D>>,
    pub(crate) on_close: Option<CloseFn<C, S, D>>,
}

impl<C: Channel, S: Send + Sync + 'static> Callbacks<C, S, ()> {
    /// The same callbacks on connections whose data is `D`: each sees the connection without
    /// its data, as it was written to.
    fn with_data<D: Send + Sync + 'static>(self) -> Callbacks<C, S, D> {
        Callbacks {
            on_open: self
                .on_open
                .map(|f| -> OpenFn<C, S, D> { Arc::new(move |conn| f(conn.without_data())) }),
            on_message: self
                .on_message
                .map(|make| -> MessageFn<C, S, D> { Arc::new(move |conn| make(conn.without_data())) }),
            on_binary: self
                .on_binary
                .map(|f| -> BinaryFn<C, S, D> { Arc::new(move |conn, bytes| f(conn.without_data(), bytes)) }),
            on_error: self
                .on_error
                .map(|f| -> ErrorFn<C, S, D> { Arc::new(move |conn, error| f(&conn.without_data(), error)) }),
            on_lag: self
                .on_lag
                .map(|f| -> LagFn<C, S, D> { Arc::new(move |conn, lagged| f(&conn.without_data(), lagged)) }),
            on_close: self
                .on_close
                .map(|f| -> CloseFn<C, S, D> { Arc::new(move |conn, info| f(conn.without_data(), info)) }),
        }
    }
}

impl<C: Channel, S, D> Default for Callbacks<C, S, D> {
    fn default() -> Self {
        Self {
            on_open: None,
            on_message: None,
            on_binary: None,
            on_error: None,
            on_lag: None,
            on_close: None,
        }
    }
}

impl<C: Channel, S, D> Clone for Callbacks<C, S, D> {
    fn clone(&self) -> Self {
        Self {
            on_open: self.on_open.clone(),
            on_message: self.on_message.clone(),
            on_binary: self.on_binary.clone(),
            on_error: self.on_error.clone(),
            on_lag: self.on_lag.clone(),
            on_close: self.on_close.clone(),
        }
    }
}

impl<C: Channel, S: Send + Sync + 'static> Handler<C, S, ()> {
    /// A handler that accepts every connection and ignores every message.
    pub fn new() -> Self {
        Self {
            on_connect: Arc::new(|_| Box::pin(async { Ok(()) })),
            authorize: None,
            callbacks: Callbacks::default(),
        }
    }

    /// Decides, before the upgrade, whether to accept a connection and with which typed data.
    ///
    /// The callbacks set after it receive the data it returns; those set before it keep
    /// seeing `()`.
    ///
    /// ```
    /// use ws_channels::{Handler, Reject};
    /// # #[ws_channels::channel("chat/<room>")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Chat;
    /// struct Member { name: String }
    ///
    /// let handler = Handler::<Chat>::new()
    ///     .on_connect(|handshake| async move {
    ///         let name = handshake.query_param("name").ok_or_else(|| Reject::bad_request("name required"))?;
    ///         Ok(Member { name })
    ///     })
    ///     .on_open(|conn| async move {
    ///         println!("{} joined {}", conn.data().name, conn.address());
    ///         Ok(())
    ///     });
    /// ```
    pub fn on_connect<D, F, Fut>(self, on_connect: F) -> Handler<C, S, D>
    where
        D: Send + Sync + 'static,
        F: Fn(Handshake<C, S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<D, Reject>> + Send + 'static,
    {
        Handler {
            on_connect: Arc::new(move |handshake| Box::pin(on_connect(handshake))),
            authorize: self
                .authorize
                .map(|f| -> AuthorizeFn<C, D> { Arc::new(move |_: &D, params: &C::Params| f(&(), params)) }),
            callbacks: self.callbacks.with_data(),
        }
    }

    /// Authenticates every connection before the upgrade: reads a credential from the first
    /// of `sources` that has one and passes it to `verify`, whose result becomes the
    /// connection's typed data. No credential is 401 (`missing credentials`); `verify` refuses
    /// with its own [`Reject`] (401 for a bad token, 403…).
    ///
    /// This is an [`on_connect`](Self::on_connect): use one or the other.
    ///
    /// ```
    /// use ws_channels::{Handler, Reject, TokenSource};
    /// # #[ws_channels::channel("user/events/<userId>")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct UserEvents;
    /// struct User { id: String }
    ///
    /// let handler = Handler::<UserEvents>::new()
    ///     .authenticate([TokenSource::Bearer, TokenSource::Query("token")], |token, _handshake| async move {
    ///         match token.strip_prefix("valid-") {
    ///             Some(id) => Ok(User { id: id.to_owned() }),
    ///             None => Err(Reject::unauthorized("invalid token")),
    ///         }
    ///     })
    ///     // A user may only open their own address.
    ///     .authorize(|user, params| match user.id == params.user_id {
    ///         true => Ok(()),
    ///         false => Err(Reject::forbidden("not your events")),
    ///     });
    /// ```
    pub fn authenticate<D, F, Fut>(self, sources: impl IntoIterator<Item = TokenSource>, verify: F) -> Handler<C, S, D>
    where
        D: Send + Sync + 'static,
        F: Fn(String, Handshake<C, S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<D, Reject>> + Send + 'static,
    {
        let sources: Vec<TokenSource> = sources.into_iter().collect();
        self.on_connect(move |handshake| match handshake.token(&sources) {
            Some(token) => Either::Left(verify(token, handshake)),
            None => Either::Right(std::future::ready(Err(Reject::unauthorized("missing credentials")))),
        })
    }
}

impl<C: Channel, S: Send + Sync + 'static> Default for Handler<C, S, ()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Channel, S: Send + Sync + 'static, D: Send + Sync + 'static> Handler<C, S, D> {
    /// Checks, after `on_connect` and before the upgrade, that the connection's data allows
    /// this address: compare the verified identity with the path parameters (a user may only
    /// open `user/events/<their id>`). An `Err` refuses the handshake (usually 403).
    pub fn authorize<F>(mut self, authorize: F) -> Self
    where
        F: Fn(&D, &C::Params) -> Result<(), Reject> + Send + Sync + 'static,
    {
        self.authorize = Some(Arc::new(authorize));
        self
    }

    /// Runs after the upgrade, before the first message (send a welcome, announce a join).
    pub fn on_open<F, Fut>(mut self, on_open: F) -> Self
    where
        F: Fn(Conn<C, S, D>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.callbacks.on_open = Some(Arc::new(move |conn| Box::pin(on_open(conn))));
        self
    }

    /// Handles each client message. Only channels clients may publish on have one.
    pub fn on_message<F, Fut>(mut self, on_message: F) -> Self
    where
        C: ClientSends,
        F: Fn(Conn<C, S, D>, C::ClientMessage) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        let on_message = Arc::new(on_message);
        self.callbacks.on_message = Some(Arc::new(move |conn| {
            running::runner(on_message.clone(), conn, |frame| {
                codec::decode_data::<C, _>(frame, C::validate_client)
            })
        }));
        self
    }

    /// Handles binary frames as raw bytes, beside a JSON channel's text messages. Without it, a
    /// binary frame is input of the wrong kind: close 1003, or an error reply. On MessagePack
    /// and raw channels binary frames are the messages, for `on_message`; this is not called.
    pub fn on_binary<F, Fut>(mut self, on_binary: F) -> Self
    where
        F: Fn(Conn<C, S, D>, Bytes) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = HandlerResult> + Send + 'static,
    {
        self.callbacks.on_binary = Some(Arc::new(move |conn, bytes| Box::pin(on_binary(conn, bytes))));
        self
    }

    /// Observes a slow consumer: its outbound queue overflowed and the channel's
    /// [`LagPolicy`](crate::LagPolicy) dropped messages or is disconnecting it.
    pub fn on_lag<F>(mut self, on_lag: F) -> Self
    where
        F: Fn(&Conn<C, S, D>, Lagged) + Send + Sync + 'static,
    {
        self.callbacks.on_lag = Some(Arc::new(on_lag));
        self
    }

    /// Runs once when the connection has ended, with the close code and reason.
    pub fn on_close<F, Fut>(mut self, on_close: F) -> Self
    where
        F: Fn(Conn<C, S, D>, CloseInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.callbacks.on_close = Some(Arc::new(move |conn, info| Box::pin(on_close(conn, info))));
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
        self.callbacks.on_error = Some(Arc::new(on_error));
        self
    }
}

impl<C: Channel, S, D> Clone for Handler<C, S, D> {
    fn clone(&self) -> Self {
        Self {
            on_connect: self.on_connect.clone(),
            authorize: self.authorize.clone(),
            callbacks: self.callbacks.clone(),
        }
    }
}

impl<C: Channel, S, D> fmt::Debug for Handler<C, S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.callbacks;
        f.debug_struct("Handler")
            .field("channel", &C::NAME)
            .field("authorize", &self.authorize.is_some())
            .field("on_open", &c.on_open.is_some())
            .field("on_message", &c.on_message.is_some())
            .field("on_binary", &c.on_binary.is_some())
            .field("on_error", &c.on_error.is_some())
            .field("on_lag", &c.on_lag.is_some())
            .field("on_close", &c.on_close.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    /// A channel for handler tests.
    #[crate::channel("t/<id>")]
    #[derive(Serialize, Deserialize)]
    struct T;

    #[test]
    fn callbacks_set_before_on_connect_are_kept() {
        let handler = Handler::<T>::new()
            .on_binary(|_, _| async { Ok(()) })
            .on_close(|_conn: Conn<T>, _| async {})
            .authorize(|_: &(), _| Ok(()))
            .on_connect(|_| async { Ok(1u8) })
            .on_open(|conn: Conn<T, (), u8>| async move {
                assert_eq!(*conn.data(), 1);
                Ok(())
            });
        let c = &handler.callbacks;
        assert!(c.on_binary.is_some() && c.on_close.is_some() && c.on_open.is_some());
        assert!(handler.authorize.is_some());
    }
}
