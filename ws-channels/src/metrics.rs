//! Counters a user can read: connections, messages, drops. One set per server, shared by the
//! hub, every connection task and the accept path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) handshakes_rejected: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) lag_disconnects: AtomicU64,
    pub(crate) rate_limited: AtomicU64,
    pub(crate) error_replies_dropped: AtomicU64,
}

/// A live view of a server's counters; cheap to clone. Read it with [`snapshot`](Self::snapshot).
///
/// ```
/// use futures_util::StreamExt;
/// use ws_channels::{Server, TestServer, channel};
///
/// #[channel("echo/<room>")]
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// struct Echo { text: String }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), ws_channels::Error> {
/// let server = Echo::register(Server::new(), |h| {
///     h.on_message(|conn, msg| async move {
///         conn.send(&msg).await?;
///         Ok(())
///     })
/// });
/// let metrics = server.metrics(); // take it before serving, to export from anywhere
/// let test = TestServer::new(server);
/// let (mut tx, mut rx) = test.connect(&EchoParams::new("r")).await?;
/// tx.send(&Echo { text: "hi".into() }).await?;
/// rx.next().await.expect("a reply")?;
/// let cross_site = test.request(&EchoParams::new("r")).header("origin", "https://evil.example");
/// assert!(cross_site.connect().await.is_err());
///
/// let now = metrics.snapshot();
/// assert_eq!(now.connections_open, 1);
/// assert_eq!(now.messages_in, 1);
/// assert_eq!(now.handshakes_rejected, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub(crate) counters: Arc<Counters>,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Connections open now (upgraded and not yet ended).
    pub connections_open: u64,
    /// Connections upgraded since the server started.
    pub connections_total: u64,
    /// Handshakes refused before the upgrade (404, 400, 401, 403, 503…), and sockets the
    /// standalone server closed over its pending-handshake caps. (Under axum, requests hyper
    /// refuses itself, such as a 431, are not counted.)
    pub handshakes_rejected: u64,
    /// Messages received from clients and decoded.
    pub messages_in: u64,
    /// Frames written to clients (messages and close frames).
    pub messages_out: u64,
    /// Messages dropped by a `drop_oldest` or `drop_new` lag policy.
    pub dropped: u64,
    /// Connections closed by a `disconnect` lag policy.
    pub lag_disconnects: u64,
    /// Messages refused by a rate limit.
    pub rate_limited: u64,
    /// Error replies not sent: over one rate-limit reply per second, or the connection's
    /// outbound queue had no room (an error reply never disconnects its own sender).
    pub error_replies_dropped: u64,
}

impl Metrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let c = &self.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            connections_open: read(&c.connections_open),
            connections_total: read(&c.connections_total),
            handshakes_rejected: read(&c.handshakes_rejected),
            messages_in: read(&c.messages_in),
            messages_out: read(&c.messages_out),
            dropped: read(&c.dropped),
            lag_disconnects: read(&c.lag_disconnects),
            rate_limited: read(&c.rate_limited),
            error_replies_dropped: read(&c.error_replies_dropped),
        }
    }
}
