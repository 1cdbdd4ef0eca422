//! Counters a user can read: connections, messages, drops. One set per server, shared by the
//! hub, every connection task and the accept path. They are the one owner of these numbers;
//! with the `metrics` feature every change is mirrored to the `metrics` facade (for Prometheus,
//! OpenTelemetry… exporters), labelled by channel `NAME` (never by address: an unbounded label
//! set), with two histograms the counters cannot express.

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
    pub(crate) engine_out: AtomicU64,
    pub(crate) engine_refused: AtomicU64,
    pub(crate) engine_lost: AtomicU64,
    pub(crate) engine_in: AtomicU64,
    pub(crate) engine_skipped: AtomicU64,
    pub(crate) engine_reconnects: AtomicU64,
    pub(crate) engine_outage_ms: AtomicU64,
}

/// The backplane's counters, by what they count. Not labelled by channel: an engine carries
/// envelopes, and most of what it reports (a reconnect, an outage) belongs to no channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EngineCount {
    Out,
    Refused,
    Lost,
    In,
    Skipped,
    Reconnects,
    OutageMs,
}

/// The counters that only grow, by what they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    MessagesIn,
    MessagesOut,
    Dropped,
    LagDisconnects,
    RateLimited,
    ErrorRepliesDropped,
}

impl Count {
    /// Its name in the `metrics` facade.
    #[cfg(feature = "metrics")]
    fn name(self) -> &'static str {
        match self {
            Self::MessagesIn => "ws_channels_messages_in_total",
            Self::MessagesOut => "ws_channels_messages_out_total",
            Self::Dropped => "ws_channels_dropped_total",
            Self::LagDisconnects => "ws_channels_lag_disconnects_total",
            Self::RateLimited => "ws_channels_rate_limited_total",
            Self::ErrorRepliesDropped => "ws_channels_error_replies_dropped_total",
        }
    }
}

/// When a handler started, where something records it.
pub(crate) struct Stopwatch {
    #[cfg(feature = "metrics")]
    started: std::time::Instant,
}

impl Counters {
    fn cell(&self, count: Count) -> &AtomicU64 {
        match count {
            Count::MessagesIn => &self.messages_in,
            Count::MessagesOut => &self.messages_out,
            Count::Dropped => &self.dropped,
            Count::LagDisconnects => &self.lag_disconnects,
            Count::RateLimited => &self.rate_limited,
            Count::ErrorRepliesDropped => &self.error_replies_dropped,
        }
    }

    /// Adds `n` to a counter of `channel`.
    pub(crate) fn add(&self, count: Count, channel: &'static str, n: u64) {
        self.cell(count).fetch_add(n, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!(count.name(), "channel" => channel).increment(n);
        #[cfg(not(feature = "metrics"))]
        let _ = channel;
    }

    /// Adds `n` to a backplane counter.
    pub(crate) fn engine(&self, count: EngineCount, n: u64) {
        let (cell, _name) = match count {
            EngineCount::Out => (&self.engine_out, "ws_channels_backplane_out_total"),
            EngineCount::Refused => (&self.engine_refused, "ws_channels_backplane_refused_total"),
            EngineCount::Lost => (&self.engine_lost, "ws_channels_backplane_lost_total"),
            EngineCount::In => (&self.engine_in, "ws_channels_backplane_in_total"),
            EngineCount::Skipped => (&self.engine_skipped, "ws_channels_backplane_skipped_total"),
            EngineCount::Reconnects => (&self.engine_reconnects, "ws_channels_backplane_reconnects_total"),
            EngineCount::OutageMs => (
                &self.engine_outage_ms,
                "ws_channels_backplane_outage_milliseconds_total",
            ),
        };
        cell.fetch_add(n, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!(_name).increment(n);
    }

    /// A connection of `channel` was upgraded.
    pub(crate) fn opened(&self, channel: &'static str) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        {
            metrics::gauge!("ws_channels_connections_open", "channel" => channel).increment(1.0);
            metrics::counter!("ws_channels_connections_total", "channel" => channel).increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = channel;
    }

    /// A connection of `channel` ended.
    pub(crate) fn closed(&self, channel: &'static str) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::gauge!("ws_channels_connections_open", "channel" => channel).decrement(1.0);
        #[cfg(not(feature = "metrics"))]
        let _ = channel;
    }

    /// A handshake was refused with `status` (labelled by status: the channel is not known
    /// for every refusal, such as a 404).
    pub(crate) fn refused(&self, status: http::StatusCode) {
        self.handshakes_rejected.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("ws_channels_handshakes_rejected_total", "status" => status.as_str().to_owned()).increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = status;
    }

    /// Starts timing a handler: reads the clock only with the `metrics` feature, which is the
    /// only one to record it.
    pub(crate) fn handler_started(&self) -> Stopwatch {
        Stopwatch {
            #[cfg(feature = "metrics")]
            started: std::time::Instant::now(),
        }
    }

    /// How long a handler of `channel` ran (facade only: a histogram).
    pub(crate) fn handler_ran(&self, channel: &'static str, stopwatch: Stopwatch) {
        #[cfg(feature = "metrics")]
        metrics::histogram!("ws_channels_handler_seconds", "channel" => channel)
            .record(stopwatch.started.elapsed().as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = (channel, stopwatch);
    }

    /// How many messages were waiting in a connection's queue when one more was queued (facade
    /// only: a histogram; a growing depth is a reader falling behind).
    pub(crate) fn queue_depth(&self, channel: &'static str, depth: usize) {
        #[cfg(feature = "metrics")]
        metrics::histogram!("ws_channels_outbound_queue_depth", "channel" => channel).record(depth as f64);
        #[cfg(not(feature = "metrics"))]
        let _ = (channel, depth);
    }
}

/// A live view of a server's counters; cheap to clone. Read it with [`snapshot`](Self::snapshot).
///
/// ```
/// use futures_util::StreamExt;
/// use ws_channels::{Channel, Server, TestServer, channel};
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
    /// Messages handed to the backplane for the other nodes.
    pub backplane_out: u64,
    /// Messages the backplane refused (it was down, or its queue full): they reached this
    /// node's subscribers only, and the publisher was told ([`Published::engine`](crate::Published::engine)).
    pub backplane_refused: u64,
    /// Messages the backplane had taken but lost when its connection broke.
    pub backplane_lost: u64,
    /// Messages received from other nodes, handed to this node's subscribers.
    pub backplane_in: u64,
    /// Envelopes from other nodes skipped: of a wire version this release does not read
    /// (a rolling deploy), or malformed.
    pub backplane_skipped: u64,
    /// Times the backplane reconnected after losing its connection.
    pub backplane_reconnects: u64,
    /// How long the backplane was down, in total, in milliseconds (counted when it reconnects).
    pub backplane_outage_ms: u64,
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
            backplane_out: read(&c.engine_out),
            backplane_refused: read(&c.engine_refused),
            backplane_lost: read(&c.engine_lost),
            backplane_in: read(&c.engine_in),
            backplane_skipped: read(&c.engine_skipped),
            backplane_reconnects: read(&c.engine_reconnects),
            backplane_outage_ms: read(&c.engine_outage_ms),
        }
    }
}
