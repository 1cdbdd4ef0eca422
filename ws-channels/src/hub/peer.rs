//! A connection as the hub sees it: a bounded outbox drained by the connection's writer task,
//! the channel's lag policy, and the signal that closes it.

use std::any::TypeId;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::metrics::Counters;
use crate::channel::LagPolicy;
use crate::server::ConnId;

/// What happened to one pushed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Queued, after dropping the oldest queued message (`LagPolicy::DropOldest`).
    DroppedOldest,
    /// Not queued: the queue was full (`LagPolicy::DropNew`).
    DroppedNew,
    /// Not queued: the queue was full and the connection is now closing (`LagPolicy::Disconnect`).
    Disconnected,
    /// Not queued: the connection is closing or closed.
    Closed,
}

/// Everything the writer takes, under one lock so that "accepted" and "closing" never race:
/// a message accepted before the close is always written before the close frame.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<WsMessage>,
    /// A ping waiting to go out. Kept apart from the queue so no lag policy can drop it (a
    /// dropped ping would close a slow but live reader for "ping timeout").
    ping: Option<WsMessage>,
    /// No more messages are accepted; the writer sends what is queued, then the close frame.
    closing: bool,
    /// The connection has ended: nothing more will be written.
    closed: bool,
}

pub(crate) struct Peer {
    pub(crate) id: ConnId,
    /// The connection's channel, so typed sends by id cannot reach another channel's client.
    pub(crate) channel: TypeId,
    outbox: Mutex<Outbox>,
    capacity: usize,
    policy: LagPolicy,
    /// Wakes the writer when the outbox gains a frame or the connection closes.
    ready: Notify,
    /// Mirrors `Outbox::closing` for lock-free reads.
    closing: AtomicBool,
    close: watch::Sender<Option<CloseFrame>>,
    /// Messages dropped since the last `on_lag` report, and the signal to report them.
    lagged: AtomicU64,
    pub(crate) lag: Notify,
    counters: Arc<Counters>,
}

impl Peer {
    pub(crate) fn new(
        id: ConnId,
        channel: TypeId,
        capacity: usize,
        policy: LagPolicy,
        counters: Arc<Counters>,
    ) -> Self {
        Self {
            id,
            channel,
            outbox: Mutex::default(),
            capacity,
            policy,
            ready: Notify::new(),
            closing: AtomicBool::new(false),
            close: watch::Sender::new(None),
            lagged: AtomicU64::new(0),
            lag: Notify::new(),
            counters,
        }
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a frame under the lag policy; never waits.
    pub(crate) fn push(&self, message: WsMessage) -> Pushed {
        let outcome = {
            let mut outbox = self.outbox();
            if outbox.closing {
                return Pushed::Closed;
            }
            if outbox.queue.len() < self.capacity {
                outbox.queue.push_back(message);
                Pushed::Queued
            } else {
                match self.policy {
                    LagPolicy::DropOldest => {
                        outbox.queue.pop_front();
                        outbox.queue.push_back(message);
                        Pushed::DroppedOldest
                    }
                    LagPolicy::DropNew => Pushed::DroppedNew,
                    LagPolicy::Disconnect => Pushed::Disconnected,
                }
            }
        };
        match outcome {
            Pushed::Queued => self.ready.notify_one(),
            Pushed::DroppedOldest | Pushed::DroppedNew => {
                if outcome == Pushed::DroppedOldest {
                    self.ready.notify_one();
                }
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                self.report_lag();
            }
            Pushed::Disconnected => {
                // Several publishers may hit the full queue at once: count the disconnect once.
                if self.request_close(CloseCode::Policy, "slow consumer: outbound queue full") {
                    self.counters.lag_disconnects.fetch_add(1, Ordering::Relaxed);
                }
                self.report_lag();
            }
            Pushed::Closed => {}
        }
        outcome
    }

    fn report_lag(&self) {
        self.lagged.fetch_add(1, Ordering::Relaxed);
        self.lag.notify_one();
    }

    /// Queues a ping ahead of the messages, whatever the lag policy. One slot: a ping not yet
    /// written is replaced, so a stuck writer cannot make this grow.
    pub(crate) fn push_ping(&self, ping: WsMessage) {
        {
            let mut outbox = self.outbox();
            if outbox.closing {
                return;
            }
            outbox.ping = Some(ping);
        }
        self.ready.notify_one();
    }

    /// Waits for frames and moves them all into `batch`, the ping first; `false` once closing
    /// with nothing left to write. Cancel-safe: frames are taken only in the poll that returns.
    pub(crate) async fn next_batch(&self, batch: &mut Vec<WsMessage>) -> bool {
        loop {
            let ready = self.ready.notified();
            {
                let mut outbox = self.outbox();
                if outbox.closed {
                    return false;
                }
                batch.extend(outbox.ping.take());
                batch.extend(outbox.queue.drain(..));
                if !batch.is_empty() {
                    return true;
                }
                if outbox.closing {
                    return false;
                }
            }
            ready.await;
        }
    }

    /// How many messages were dropped since the last call.
    pub(crate) fn take_lagged(&self) -> u64 {
        self.lagged.swap(0, Ordering::Relaxed)
    }

    /// Asks the connection to close with a close frame of `code` and `reason`; only the first
    /// request counts (`true` for it). Codes a close frame may not carry (1005, 1006, 1015)
    /// are sent as 1000.
    pub(crate) fn request_close(&self, code: CloseCode, reason: &str) -> bool {
        let code = if code.is_allowed() { code } else { CloseCode::Normal };
        let first = {
            let mut outbox = self.outbox();
            let first = !outbox.closing;
            outbox.closing = true;
            first
        };
        if first {
            self.closing.store(true, Ordering::Release);
            self.close.send_replace(Some(CloseFrame {
                code,
                reason: truncate_reason(reason).to_owned().into(),
            }));
            self.ready.notify_one();
        }
        first
    }

    /// The connection has ended (or its writer failed): later sends fail, queued frames are
    /// discarded, the writer stops.
    pub(crate) fn mark_closed(&self) {
        {
            let mut outbox = self.outbox();
            outbox.closed = true;
            outbox.closing = true;
            outbox.queue.clear();
            outbox.ping = None;
        }
        self.closing.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub(crate) fn close_requested(&self) -> watch::Receiver<Option<CloseFrame>> {
        self.close.subscribe()
    }

    pub(crate) fn close_frame(&self) -> Option<CloseFrame> {
        self.close.borrow().clone()
    }
}

/// Close reasons are limited to 123 bytes by RFC 6455; cut at a character boundary.
pub(crate) fn truncate_reason(reason: &str) -> &str {
    const MAX: usize = 123;
    if reason.len() <= MAX {
        return reason;
    }
    let mut end = MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(capacity: usize, policy: LagPolicy) -> Peer {
        Peer::new(ConnId(1), TypeId::of::<()>(), capacity, policy, Arc::default())
    }

    fn texts(batch: &[WsMessage]) -> Vec<String> {
        batch
            .iter()
            .map(|m| m.to_text().unwrap_or("<binary>").to_owned())
            .collect()
    }

    async fn batch(peer: &Peer) -> Vec<String> {
        let mut batch = Vec::new();
        peer.next_batch(&mut batch).await;
        texts(&batch)
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_and_never_drops_the_ping() {
        let p = peer(2, LagPolicy::DropOldest);
        p.push_ping(WsMessage::Ping(Default::default()));
        for m in ["a", "b", "c"] {
            p.push(WsMessage::text(m));
        }
        let mut frames = Vec::new();
        p.next_batch(&mut frames).await;
        assert!(frames[0].is_ping(), "the ping goes first");
        assert_eq!(texts(&frames[1..]), ["b", "c"]);
        assert_eq!(p.take_lagged(), 1);
        assert_eq!(p.counters.dropped.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn drop_new_keeps_the_oldest() {
        let p = peer(2, LagPolicy::DropNew);
        let outcomes: Vec<_> = ["a", "b", "c"].map(|m| p.push(WsMessage::text(m))).into();
        assert_eq!(outcomes, [Pushed::Queued, Pushed::Queued, Pushed::DroppedNew]);
        assert_eq!(batch(&p).await, ["a", "b"]);
    }

    #[test]
    fn disconnect_closes_with_1008_once_and_refuses_more() {
        let p = peer(1, LagPolicy::Disconnect);
        assert_eq!(p.push(WsMessage::text("a")), Pushed::Queued);
        assert_eq!(p.push(WsMessage::text("b")), Pushed::Disconnected);
        assert_eq!(p.close_frame().unwrap().code, CloseCode::Policy);
        assert_eq!(p.push(WsMessage::text("c")), Pushed::Closed);
        assert_eq!(p.counters.lag_disconnects.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn what_was_accepted_before_the_close_is_written_before_it() {
        let p = peer(8, LagPolicy::Disconnect);
        p.push(WsMessage::text("a"));
        p.push(WsMessage::text("b"));
        assert!(p.request_close(CloseCode::Normal, ""));
        assert!(!p.request_close(CloseCode::Away, ""), "only the first close counts");
        assert_eq!(p.push(WsMessage::text("late")), Pushed::Closed);
        assert_eq!(batch(&p).await, ["a", "b"]);
        let mut rest = Vec::new();
        assert!(!p.next_batch(&mut rest).await, "then the writer sends the close frame");
    }

    #[tokio::test]
    async fn a_closed_peer_refuses_everything_and_stops_the_writer() {
        let p = peer(8, LagPolicy::DropNew);
        p.push(WsMessage::text("a"));
        p.mark_closed();
        assert_eq!(p.push(WsMessage::text("b")), Pushed::Closed);
        let mut rest = Vec::new();
        assert!(!p.next_batch(&mut rest).await);
        assert!(rest.is_empty());
    }

    #[test]
    fn reserved_codes_are_sent_as_1000() {
        let p = peer(1, LagPolicy::Disconnect);
        p.request_close(CloseCode::Abnormal, "");
        assert_eq!(p.close_frame().unwrap().code, CloseCode::Normal);
    }

    #[test]
    fn reasons_are_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123 && cut.len() >= 121);
        assert_eq!(truncate_reason("short"), "short");
    }
}
