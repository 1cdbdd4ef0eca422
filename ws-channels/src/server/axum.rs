//! The axum integration (feature `axum`): the same registrations, routing, auth, limits and
//! connection handling as the standalone server, mounted into an axum `Router`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::accept::Shared;
use super::task::BoxedTransport;
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
    /// use ws_channels::Server;
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
                router.route(&route, axum::routing::get(upgrade::<S>))
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
    let Some(on_upgrade) = on_upgrade else {
        let reject = Reject::new(http::StatusCode::INTERNAL_SERVER_ERROR, "connection not upgradable");
        return into_axum(reject.to_response());
    };
    let config = shared.config.websocket;
    shared.lifecycle.spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
        (accepted.session)(BoxedTransport::new(socket)).await;
    });
    into_axum(accepted.response)
}

fn into_axum(response: http::Response<String>) -> Response {
    response.map(Body::from).into_response()
}
