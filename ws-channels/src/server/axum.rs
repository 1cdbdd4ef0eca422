//! The axum integration (feature `axum`): the same registrations, routing, auth, limits and
//! connection handling as the standalone server, mounted into an axum `Router`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::decision::Shared;
use super::socket::Socket;
use super::transport::BoxedTransport;
use super::{Reject, Server};

impl<S: Send + Sync + 'static> Server<S> {
    /// Mounts every registered channel into an axum [`Router`](axum::Router), to merge with
    /// your HTTP routes:
    ///
    /// ```no_run
    /// # #[ws_channels::channel("chat/<room>")]
    /// # #[derive(serde::Serialize, serde::Deserialize)]
    /// # struct Chat;
    /// use axum::routing::get;
    /// use ws_channels::{Channel, Server};
    ///
    /// # async fn run() -> std::io::Result<()> {
    /// let server = Chat::register(Server::new(), |h| h);
    /// let hub = server.hub(); // publish from HTTP routes
    /// let shutdown = server.handle();
    /// let app = axum::Router::new()
    ///     .route("/health", get(|| async { "ok" }))
    ///     .merge(server.into_router());
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    /// axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
    ///     .with_graceful_shutdown(async move {
    ///         let _ = tokio::signal::ctrl_c().await;
    ///         shutdown.shutdown().await; // close WebSocket connections with 1001
    ///     })
    ///     .await
    /// # }
    /// ```
    ///
    /// Each channel template becomes a `GET` route (`/chat/{room}`); a request is then
    /// checked exactly as the standalone server checks it (parameters, origin, limits,
    /// `on_connect`) and its connection runs the same task. Serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()` for `remote_addr` to be known.
    /// Upgraded connections outlive axum's graceful shutdown: call
    /// [`ServerHandle::shutdown`](crate::ServerHandle::shutdown) in its signal.
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    pub fn into_router<T: Clone + Send + Sync + 'static>(self) -> axum::Router<T> {
        let routes: Vec<String> = self.router.routes().collect();
        let shared = Arc::new(self.into_shared());
        routes
            .into_iter()
            .fold(axum::Router::new(), |router, route| {
                // Every method, so the one decision answers a POST as the standalone server does
                // (405 with its reason), rather than axum's bare 405.
                router.route(&route, axum::routing::any(upgrade::<S>))
            })
            .with_state(shared)
    }
}

/// The same decision as the standalone server's (hyper has read the request head), answered
/// with the same responses.
async fn upgrade<S: Send + Sync + 'static>(State(shared): State<Arc<Shared<S>>>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let remote_addr = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let on_upgrade = parts.extensions.remove::<OnUpgrade>();
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let accepted = match shared.decide(parts, remote_addr, deadline).await {
        Ok(accepted) => accepted,
        Err(reject) => return into_axum(reject.to_response()),
    };
    // hyper hands over every HTTP/1.1 request that asks to upgrade, and the decision refused
    // every other (HTTP/1.0 among them, before any hook ran); this is for a stack that still
    // cannot, and the accepted connection is dropped unopened.
    let Some(on_upgrade) = on_upgrade else {
        let reject = Reject::not_upgradable();
        shared.refused(remote_addr, &reject);
        return into_axum(reject.to_response());
    };
    let config = shared.config.websocket;
    shared.lifecycle.spawn(async move {
        // The 101 was written, but hyper could not hand over the socket (the peer left at
        // once): the connection never opened, so neither `on_open` nor `on_close` runs, as on
        // the standalone server when writing the 101 fails. Dropping the session frees its slot.
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(?remote_addr, %error, "upgrade failed after 101");
                return;
            }
        };
        let socket = Socket::server(TokioIo::new(upgraded), Vec::new(), config);
        (accepted.session)(BoxedTransport::new(socket));
    });
    into_axum(accepted.response)
}

fn into_axum(response: http::Response<String>) -> Response {
    response.map(Body::from).into_response()
}

/// Serves an axum app (your routes merged with [`Server::into_router`]) with the timeouts that
/// keep slow clients from holding sockets; see [`serve_app`].
#[must_use = "a server does nothing until run"]
pub struct ServeApp {
    listener: TcpListener,
    app: axum::Router,
    header_read_timeout: Duration,
    shutdown_timeout: Duration,
}

/// Serves an axum app on `listener` over HTTP/1.1 (WebSocket upgrades included), closing any
/// connection whose request head does not arrive within the
/// [header read timeout](ServeApp::header_read_timeout) (default 10 s, as the standalone
/// server's handshake timeout): idle sockets and slowloris clients that trickle a header byte
/// at a time cannot exhaust file descriptors.
///
/// `axum::serve` has no such timeout. If you serve with it (or with your own hyper loop), bound
/// request heads yourself: hyper's `http1::Builder::header_read_timeout` with a timer, or a
/// reverse proxy in front that does.
///
/// Handlers see the peer address through `ConnectInfo<SocketAddr>`, as with
/// `into_make_service_with_connect_info`, and `remote_addr` is known to channels.
///
/// ```no_run
/// # #[ws_channels::channel("chat/<room>")]
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # struct Chat;
/// use axum::routing::get;
/// use ws_channels::{Channel, Server};
///
/// # async fn run() -> std::io::Result<()> {
/// let server = Chat::register(Server::new(), |h| h);
/// let shutdown = server.handle();
/// let app = axum::Router::new()
///     .route("/health", get(|| async { "ok" }))
///     .merge(server.into_router());
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// ws_channels::serve_app(listener, app)
///     .with_graceful_shutdown(async move {
///         let _ = tokio::signal::ctrl_c().await;
///         shutdown.shutdown().await; // close WebSocket connections with 1001
///     })
///     .await
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub fn serve_app(listener: TcpListener, app: axum::Router) -> ServeApp {
    ServeApp {
        listener,
        app,
        header_read_timeout: Duration::from_secs(10),
        shutdown_timeout: Duration::from_secs(10),
    }
}

impl ServeApp {
    /// How long a client has to send a complete request head, on a new connection and between
    /// requests on a kept-alive one; past it the connection is closed. Default: 10 s.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// How long a graceful shutdown waits for HTTP requests in flight. Default: 10 s.
    /// (WebSocket connections are closed by [`ServerHandle::shutdown`](crate::ServerHandle::shutdown).)
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Serves until the process ends.
    pub async fn run(self) -> std::io::Result<()> {
        self.with_graceful_shutdown(std::future::pending()).await
    }

    /// Serves until `signal` completes, then stops accepting and waits (up to the shutdown
    /// timeout) for requests in flight.
    pub async fn with_graceful_shutdown(self, signal: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        let mut signal = std::pin::pin!(signal);
        let mut accept_warnings = crate::log::accept_throttle();
        loop {
            let (tcp, remote_addr) = tokio::select! {
                () = &mut signal => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        crate::log::accept_failed(&mut accept_warnings, &error).await;
                        continue;
                    }
                },
            };
            // Reap finished connections so the set holds only live ones.
            while connections.try_join_next().is_some() {}
            let _ = tcp.set_nodelay(true);
            let app = self.app.clone();
            let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote_addr));
                tower_service::Service::call(&mut app.clone(), request)
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(self.header_read_timeout)
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            let mut stopping = stopping.clone();
            connections.spawn(async move {
                let mut connection = std::pin::pin!(connection);
                let ended = tokio::select! {
                    ended = connection.as_mut() => ended,
                    _ = async { stopping.wait_for(|stop| *stop).await.map(|_| ()) } => {
                        // Finish the request in flight, then close.
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                };
                if let Err(error) = ended {
                    tracing::debug!(%remote_addr, %error, "http connection ended");
                }
            });
        }
        drop(self.listener);
        stop.send_replace(true);
        let drained = tokio::time::timeout(self.shutdown_timeout, async {
            while connections.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            tracing::warn!("shutdown timeout: dropping HTTP connections");
        }
        Ok(())
    }
}
