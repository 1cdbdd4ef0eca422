//! The standalone server: accept → route → `on_connect` → upgrade → connection task.

mod conn;
mod handler;
mod handshake;
mod router;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

pub use conn::{CloseInfo, Conn, ConnId};
pub use handler::Handler;
pub use handshake::{Handshake, Reject};

use self::conn::ConnEnv;
use self::router::{BoxedIo, Router};
use crate::channel::Channel;
use crate::error::Error;

/// Tunables, each with a documented default.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) websocket: WebSocketConfig,
    pub(crate) outbound_queue: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            websocket: WebSocketConfig::default()
                .read_buffer_size(DEFAULT_READ_BUFFER)
                .write_buffer_size(DEFAULT_WRITE_BUFFER)
                .max_write_buffer_size(DEFAULT_MAX_MESSAGE + DEFAULT_WRITE_BUFFER + 1024)
                .max_message_size(Some(DEFAULT_MAX_MESSAGE))
                .max_frame_size(Some(DEFAULT_MAX_MESSAGE)),
            outbound_queue: 64,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(3),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// 4 KiB: tungstenite's 128 KiB default costs ~134 KiB of memory per idle connection.
const DEFAULT_READ_BUFFER: usize = 4 * 1024;
const DEFAULT_WRITE_BUFFER: usize = 8 * 1024;
const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;

/// A standalone WebSocket server for typed channels, on tokio-tungstenite.
///
/// Register one [`Handler`] per channel, then [`serve`](Self::serve) a listener. Each request
/// path is matched against every registered template:
///
/// | request | outcome |
/// |---|---|
/// | path matches no template | HTTP 404 before the upgrade |
/// | not a WebSocket upgrade | HTTP 426 (405 for a method other than GET) |
/// | a parameter does not parse as its type | HTTP 400, the reason in the body |
/// | `on_connect` returns a [`Reject`] | its status (401, 403…) and reason |
/// | `on_connect` panics | HTTP 500 |
/// | no complete request within the [handshake timeout](Self::handshake_timeout) | the socket is dropped |
/// | otherwise | 101, then the connection task runs the handler |
///
/// Once connected, bad input never panics and never affects other connections:
///
/// | event | outcome (default) |
/// |---|---|
/// | a text frame that is not JSON of the client message type | close 1007 (or an error reply, under `on_invalid = reply`) |
/// | a message that fails [`Validate`](crate::Validate) | close 1008 (or an error reply, under `on_invalid = reply`) |
/// | a binary frame | close 1007 (or an error reply): messages are JSON text |
/// | a message larger than [`max_message_size`](Self::max_message_size) | close 1009 |
/// | a handler returns `Err` or panics | close 1011 (`internal error`) for this connection only |
/// | shutdown | close 1001 for every connection |
/// | the peer drops mid-message or without a close frame | `on_close` sees 1006 |
/// | the peer does not answer the server's close frame | dropped after the [close timeout](Self::close_timeout) |
///
/// Every outcome is also reported to [`Handler::on_error`].
#[must_use = "a server does nothing until served"]
pub struct Server<S = ()> {
    router: Router<S>,
    state: Arc<S>,
    config: Config,
}

impl Server<()> {
    /// A server without shared state.
    pub fn new() -> Self {
        Self::with_state(())
    }
}

impl Default for Server<()> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Send + Sync + 'static> Server<S> {
    /// A server whose handlers share `state` (through `conn.state()` and `handshake.state()`).
    pub fn with_state(state: S) -> Self {
        Self {
            router: Router::new(),
            state: Arc::new(state),
            config: Config::default(),
        }
    }

    /// Attaches a handler to its channel's address template.
    ///
    /// Generated `register` functions (`UserEvents::register(server, |h| …)`) call this.
    ///
    /// # Panics
    ///
    /// When the template conflicts with one already registered (the same address shape, such
    /// as `chat/<room>` and `chat/<id>`): a programming error, caught at startup.
    pub fn register<C: Channel, D: Send + Sync + 'static>(
        mut self,
        handler: Handler<C, S, D>,
    ) -> Self {
        self.router.insert(Box::new(Arc::new(handler)));
        self
    }

    /// The largest message (and frame) accepted, in bytes; a larger one closes the connection
    /// with 1009. Default: 1 MiB.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.websocket = self
            .config
            .websocket
            .max_message_size(Some(bytes))
            .max_frame_size(Some(bytes))
            .max_write_buffer_size(
                bytes.saturating_add(self.config.websocket.write_buffer_size + 1024),
            );
        self
    }

    /// The size of each connection's read buffer. Default: 4 KiB (memory per idle connection
    /// is dominated by it; tungstenite's own default is 128 KiB).
    pub fn read_buffer_size(mut self, bytes: usize) -> Self {
        self.config.websocket = self.config.websocket.read_buffer_size(bytes);
        self
    }

    /// How many outgoing messages may wait for a connection's writer; `Conn::send` waits while
    /// the queue is full. Default: 64.
    ///
    /// # Panics
    ///
    /// If `messages` is zero.
    pub fn outbound_queue(mut self, messages: usize) -> Self {
        assert!(
            messages > 0,
            "the outbound queue needs room for at least one message"
        );
        self.config.outbound_queue = messages;
        self
    }

    /// How long a client has to send its upgrade request and `on_connect` has to decide.
    /// Default: 10 s; a slower handshake is dropped without a response.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.handshake_timeout = timeout;
        self
    }

    /// How long a connection waits for the peer's close reply after the server closed it.
    /// Default: 3 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.config.close_timeout = timeout;
        self
    }

    /// How long a graceful shutdown waits for connections to finish closing before dropping
    /// them. Default: 10 s.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// Binds `addr` and serves until the process ends.
    pub async fn listen(self, addr: impl ToSocketAddrs) -> Result<(), Error> {
        let listener = TcpListener::bind(addr).await?;
        self.serve(listener).await
    }

    /// Serves connections from `listener` until the process ends.
    pub async fn serve(self, listener: TcpListener) -> Result<(), Error> {
        self.serve_with_shutdown(listener, std::future::pending())
            .await
    }

    /// Serves connections from `listener` until `signal` completes, then shuts down
    /// gracefully: stops accepting, closes every connection with 1001 (after the messages
    /// already queued for it), and waits up to the [shutdown timeout](Self::shutdown_timeout)
    /// for them to finish.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        if self.router.is_empty() {
            tracing::warn!("serving with no channel registered: every request gets 404");
        }
        let shared = Arc::new(Shared {
            router: self.router,
            state: self.state,
            config: Arc::new(self.config),
            next_id: AtomicU64::new(1),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut signal = std::pin::pin!(signal);
        loop {
            tokio::select! {
                () = &mut signal => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((tcp, remote_addr)) => {
                        let _ = tcp.set_nodelay(true);
                        tasks.spawn(shared.clone().connection(Box::new(tcp), Some(remote_addr), shutdown_rx.clone()));
                    }
                    Err(error) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        let _ = shutdown_tx.send(true);
        let drained = tokio::time::timeout(shared.config.shutdown_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = tasks.len(),
                "shutdown timeout: dropping connections"
            );
        }
        Ok(())
    }
}

struct Shared<S> {
    router: Router<S>,
    state: Arc<S>,
    config: Arc<Config>,
    next_id: AtomicU64,
}

impl<S: Send + Sync + 'static> Shared<S> {
    /// Handshake (bounded by the handshake timeout), then the connection task.
    async fn connection(
        self: Arc<Self>,
        mut io: BoxedIo,
        remote_addr: Option<SocketAddr>,
        shutdown: watch::Receiver<bool>,
    ) {
        let handshake = tokio::time::timeout(
            self.config.handshake_timeout,
            self.handshake(&mut io, remote_addr),
        );
        let Ok(Some((session, leftover))) = handshake.await else {
            return;
        };
        let socket = WebSocketStream::from_partially_read(
            io,
            leftover,
            Role::Server,
            Some(self.config.websocket),
        )
        .await;
        let env = ConnEnv {
            id: ConnId(self.next_id.fetch_add(1, Ordering::Relaxed)),
            remote_addr,
            state: self.state.clone(),
            config: self.config.clone(),
            shutdown,
        };
        session(socket, env).await;
    }

    /// Reads the upgrade request, routes it, runs `on_connect` and answers. `None`: refused
    /// (the response is written) or the peer left.
    async fn handshake(
        &self,
        io: &mut BoxedIo,
        remote_addr: Option<SocketAddr>,
    ) -> Option<(router::Session<S>, Vec<u8>)> {
        let outcome = async {
            let Some(request) = handshake::read_request_head(io).await? else {
                return Ok(None);
            };
            let route = self.router.at(request.parts.uri.path()).ok_or_else(|| {
                Reject::new(http::StatusCode::NOT_FOUND, "no channel at this address")
            })?;
            let key = handshake::check_upgrade(&request.parts)?;
            let session = route
                .accept(Arc::new(request.parts), remote_addr, self.state.clone())
                .await?;
            Ok(Some((session, key, request.leftover)))
        };
        match outcome.await {
            Ok(Some((session, key, leftover))) => {
                handshake::accept(io, &key).await.ok()?;
                Some((session, leftover))
            }
            Ok(None) => None,
            Err(reject) => {
                tracing::debug!(?remote_addr, %reject, "handshake refused");
                let _ = handshake::refuse(io, &reject).await;
                None
            }
        }
    }
}
