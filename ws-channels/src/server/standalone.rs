//! The standalone front end: the accept loop, each socket's TLS and WebSocket handshakes over
//! `http1`, then its connection. What to answer is the decision's (`decision`), as on the
//! other front ends (`axum`, `testing`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::decision::{Session, Shared};
use super::http1;
use super::limits::{self, Pending, PendingHandshakes};
use super::socket::Socket;
use super::transport::BoxedTransport;

/// Accepts sockets from `listener` until `signal` completes or the server shuts down.
pub(super) async fn serve<S: Send + Sync + 'static>(
    shared: Arc<Shared<S>>,
    listener: TcpListener,
    wire: Wire,
    signal: impl Future<Output = ()> + Send,
) {
    let handshakes = Arc::new(PendingHandshakes::new(
        shared.config.max_pending_handshakes,
        shared.config.max_pending_handshakes_per_ip,
    ));
    let mut signal = std::pin::pin!(signal);
    // `ServerHandle::shutdown` ends the loop too, so the listener is released.
    let mut shutdown = shared.lifecycle.watch();
    let mut accept_warnings = crate::log::accept_throttle();
    loop {
        tokio::select! {
            () = &mut signal => break,
            // `wait_for`, not `changed`: a shutdown that began before serving counts too.
            // (The guard `wait_for` returns is dropped inside, so the future stays `Send`.)
            _ = async { shutdown.wait_for(|shutting_down| *shutting_down).await.map(|_| ()) } => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, remote_addr)) => {
                    // IPv4 peers of a dual-stack listener arrive IPv4-mapped.
                    let ip = remote_addr.ip().to_canonical();
                    let per_ip = limits::counted_per_ip(ip, &shared.config.trusted_proxies);
                    let Some(pending) = handshakes.acquire(ip, per_ip) else {
                        // Too many sockets mid-handshake (from this address, or in all):
                        // drop this one rather than queue it.
                        shared.hub.counters().refused(http::StatusCode::SERVICE_UNAVAILABLE);
                        tracing::debug!(%remote_addr, "too many pending handshakes");
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    shared.lifecycle.spawn(connection(shared.clone(), wire.clone(), tcp, remote_addr, pending));
                }
                Err(error) => crate::log::accept_failed(&mut accept_warnings, &error).await,
            },
        }
    }
}

/// What the standalone server speaks on an accepted socket: WebSocket over TCP, or over TLS.
#[derive(Clone)]
pub(super) enum Wire {
    /// WebSocket over the TCP stream itself.
    Plain,
    /// WebSocket over TLS.
    #[cfg(any(feature = "rustls", feature = "rustls-native-roots"))]
    Rustls(tokio_rustls::TlsAcceptor),
}

/// One socket of the standalone server: its TLS handshake if any, its WebSocket handshake,
/// then its connection's start (the connection runs in a task of its own).
async fn connection<S: Send + Sync + 'static>(
    shared: Arc<Shared<S>>,
    wire: Wire,
    tcp: TcpStream,
    remote_addr: SocketAddr,
    pending: Pending,
) {
    let deadline = Instant::now() + shared.config.handshake_timeout;
    match wire {
        Wire::Plain => upgrade(shared, tcp, remote_addr, pending, deadline).await,
        #[cfg(any(feature = "rustls", feature = "rustls-native-roots"))]
        Wire::Rustls(acceptor) => {
            let Ok(Ok(tls)) = tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await else {
                // Not TLS, a failed TLS handshake, or too slow: nothing to answer in.
                return;
            };
            upgrade(shared, tls, remote_addr, pending, deadline).await
        }
    }
}

/// The WebSocket handshake on an accepted stream, then the connection.
async fn upgrade<S, IO>(shared: Arc<Shared<S>>, io: IO, remote_addr: SocketAddr, pending: Pending, deadline: Instant)
where
    S: Send + Sync + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed: the task spawned for every accepted socket stays small, and spawning, polling and
    // reaping it moves little (the handshake's state is a few KiB, needed only for a moment).
    let Some((session, socket)) = Box::pin(answer(&shared, io, remote_addr, deadline)).await else {
        return;
    };
    // The handshake is over: make room for the next.
    drop(pending);
    // The connection runs in a task of its own; this one, and its handshake state, end here.
    session(BoxedTransport::new(socket));
}

/// Reads the request head, has it decided, and writes the answer. A head that does not arrive
/// within the handshake timeout drops the socket; a decision that does not come by then
/// answers 408.
async fn answer<S, IO>(
    shared: &Arc<Shared<S>>,
    mut tcp: IO,
    remote_addr: SocketAddr,
    deadline: Instant,
) -> Option<(Session, Socket<IO>)>
where
    S: Send + Sync + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let head = match tokio::time::timeout_at(deadline, http1::read_request_head(&mut tcp)).await {
        Ok(Ok(Some(head))) => head,
        // The peer left, or was too slow to say anything.
        Ok(Ok(None)) | Err(_) => return None,
        Ok(Err(reject)) => {
            shared.refused(Some(remote_addr), &reject);
            let _ = http1::write_response(&mut tcp, &reject.to_response()).await;
            return None;
        }
    };
    let accepted = match shared.decide(head.parts, Some(remote_addr), deadline).await {
        Ok(accepted) => accepted,
        Err(reject) => {
            let _ = http1::write_response(&mut tcp, &reject.to_response()).await;
            return None;
        }
    };
    http1::write_response(&mut tcp, &accepted.response).await.ok()?;
    let socket = Socket::server(tcp, head.leftover, shared.config.websocket);
    Some((accepted.session, socket))
}
