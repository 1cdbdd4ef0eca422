//! Shared helpers for the integration tests: servers on `127.0.0.1:0`, raw WebSocket peers,
//! and time bounds so every test stops by itself.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use ws_channels::tungstenite::Message;
use ws_channels::tungstenite::protocol::CloseFrame;
use ws_channels::{ClientSocket, Error, Server};

/// The longest any single step of a test may take.
pub const STEP: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test with `what` if it takes longer than [`STEP`].
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(STEP, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

/// How a test server is served: the same registrations, two HTTP stacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `Server::serve_with_shutdown` on tokio-tungstenite.
    Standalone,
    /// `Server::into_router` merged into an axum `Router`, served by `axum::serve`.
    Axum,
}

/// A server running on an ephemeral loopback port until shut down or dropped.
pub struct TestServer {
    /// The bound address.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), Error>>>,
}

impl TestServer {
    /// Binds `127.0.0.1:0` and serves `server` standalone in the background.
    pub async fn start<S: Send + Sync + 'static>(server: Server<S>) -> Self {
        Self::start_on(Backend::Standalone, server).await
    }

    /// Binds `127.0.0.1:0` and serves `server` on `backend` in the background.
    pub async fn start_on<S: Send + Sync + 'static>(backend: Backend, server: Server<S>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = match backend {
            Backend::Standalone => tokio::spawn(server.serve_with_shutdown(listener, async {
                let _ = rx.await;
            })),
            Backend::Axum => {
                let handle = server.handle();
                let app = axum::Router::new()
                    .route("/health", axum::routing::get(|| async { "ok" }))
                    .merge(server.into_router());
                let serving = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                    .with_graceful_shutdown(async move {
                        let _ = rx.await;
                        handle.shutdown().await;
                    });
                tokio::spawn(async move { serving.await.map_err(Error::from) })
            }
        };
        Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `ws://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Starts a graceful shutdown; returns the server task, which ends when the shutdown does.
    pub fn begin_shutdown(&mut self) -> JoinHandle<Result<(), Error>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("the server task is only taken once")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Opens a raw WebSocket to `path` (with its query string) on `server`.
pub async fn raw_connect(server: &TestServer, path: &str) -> ClientSocket {
    let url = format!("{}{path}", server.base());
    let (socket, _) = within(
        &format!("connect {url}"),
        tokio_tungstenite::connect_async(url.as_str()),
    )
    .await
    .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    socket
}

/// The HTTP status a WebSocket handshake to `path` gets (101 when it is accepted).
pub async fn handshake_status(server: &TestServer, path: &str) -> u16 {
    let url = format!("{}{path}", server.base());
    match within("handshake", tokio_tungstenite::connect_async(url.as_str())).await {
        Ok((_, response)) => response.status().as_u16(),
        Err(ws_channels::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("handshake to {url} failed without a status: {other}"),
    }
}

/// Sends raw HTTP and returns the status line's code and the whole response.
pub async fn raw_http(addr: SocketAddr, request: &str) -> (u16, String) {
    within("raw http", async {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(request.as_bytes()).await.expect("write request");
        let mut response = Vec::new();
        tcp.read_to_end(&mut response).await.expect("read response");
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {response:?}"));
        (status, response)
    })
    .await
}

/// Reads frames to the end of the connection, as a well-behaved client does (reading on after
/// the server's close frame is what sends the close reply). Returns the text frames read and
/// the server's close frame, `None` if the connection ended without one.
pub async fn read_until_close(socket: &mut ClientSocket) -> (Vec<String>, Option<CloseFrame>) {
    within("waiting for the connection to close", async {
        let mut texts = Vec::new();
        let mut close = None;
        while let Some(frame) = socket.next().await {
            match frame {
                Ok(Message::Text(text)) => texts.push(text.to_string()),
                Ok(Message::Close(frame)) => close = frame,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        (texts, close)
    })
    .await
}

/// Reads the next text frame, skipping control frames.
pub async fn next_text(socket: &mut ClientSocket) -> String {
    within("waiting for a text frame", async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return text.to_string(),
                Some(Ok(Message::Close(frame))) => {
                    panic!("closed instead of a text frame: {frame:?}")
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => panic!("socket error instead of a text frame: {error}"),
                None => panic!("connection ended instead of a text frame"),
            }
        }
    })
    .await
}
