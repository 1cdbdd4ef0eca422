//! The axum integration (feature `axum`): the same registrations, routing, auth, limits and
//! connection handling as the standalone server, mounted into an axum `Router`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::router::BoxedIo;
use super::{Reject, Server, Shared};

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
        let routes = self.router.routes();
        let shared = Arc::new(self.into_shared());
        routes
            .into_iter()
            .fold(axum::Router::new(), |router, route| {
                router.route(&route, axum::routing::get(upgrade::<S>))
            })
            .with_state(shared)
    }
}

async fn upgrade<S: Send + Sync + 'static>(State(shared): State<Arc<Shared<S>>>, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let remote_addr = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let on_upgrade = parts.extensions.remove::<OnUpgrade>();
    // As on the standalone server, `on_connect` has the handshake timeout to decide.
    let decided = tokio::time::timeout(shared.config.handshake_timeout, shared.decide(parts, remote_addr)).await;
    let accepted = match decided {
        Ok(Ok(accepted)) => accepted,
        Ok(Err(reject)) => return refusal(&reject),
        Err(_) => return refusal(&Reject::new(StatusCode::REQUEST_TIMEOUT, "handshake timeout")),
    };
    let Some(on_upgrade) = on_upgrade else {
        return refusal(&Reject::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "connection not upgradable",
        ));
    };
    let accept_key = derive_accept_key(accepted.key.as_bytes());
    let connection = shared.clone();
    shared.lifecycle.spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let io: BoxedIo = Box::new(TokioIo::new(upgraded));
        let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(connection.config.websocket)).await;
        (accepted.session)(socket, connection.env(remote_addr)).await;
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::UPGRADE, "websocket".to_owned()),
            (header::CONNECTION, "upgrade".to_owned()),
            (header::SEC_WEBSOCKET_ACCEPT, accept_key),
        ],
    )
        .into_response()
}

/// The same refusal the standalone server writes.
fn refusal(reject: &Reject) -> Response {
    let mut response = Response::new(Body::from(reject.reason().to_owned()));
    *response.status_mut() = reject.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if reject.status() == StatusCode::UPGRADE_REQUIRED {
        headers.insert(header::UPGRADE, header::HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_VERSION, header::HeaderValue::from_static("13"));
    }
    response
}
