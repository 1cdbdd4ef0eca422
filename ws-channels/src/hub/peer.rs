//! A connection as the hub sees it: a bounded outbox drained by the connection's writer task,
//! the channel's lag policy, and the signal that closes it.

use std::any::TypeId;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

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

pub(crate) struct Peer {
    pub(crate) id: ConnId,
    /// The connection's channel, so typed sends by id cannot reach another channel's client.
    pub(crate) channel: TypeId,
    queue: Mutex<VecDeque<WsMessage>>,
    capacity: usize,
    policy: LagPolicy,
    /// Wakes the writer when the queue gains a message or the connection closes.
    ready: Notify,
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
            queue: Mutex::new(VecDeque::new()),
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

    /// Queues a frame under the lag policy; never waits.
    pub(crate) fn push(&self, message: WsMessage) -> Pushed {
        if self.is_closing() {
            return Pushed::Closed;
        }
        let outcome = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.len() < self.capacity {
                queue.push_back(message);
                Pushed::Queued
            } else {
                match self.policy {
                    LagPolicy::DropOldest => {
                        queue.pop_front();
                        queue.push_back(message);
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
                self.lagged.fetch_add(1, Ordering::Relaxed);
                self.lag.notify_one();
            }
            Pushed::Disconnected => {
                self.counters.lag_disconnects.fetch_add(1, Ordering::Relaxed);
                self.lagged.fetch_add(1, Ordering::Relaxed);
                self.lag.notify_one();
                self.request_close(CloseCode::Policy, "slow consumer: outbound queue full");
            }
            Pushed::Closed => {}
        }
        outcome
    }

    /// Queues a control frame (a ping) whatever the lag policy: at most one is outstanding
    /// per ping interval before a missed pong closes the connection, so this stays bounded.
    pub(crate) fn push_control(&self, message: WsMessage) {
        if self.is_closing() {
            return;
        }
        self.queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(message);
        self.ready.notify_one();
    }

    /// Waits for queued frames and moves them all into `batch`; `false` once closing with
    /// nothing left. Cancel-safe: frames are taken only in the poll that returns.
    pub(crate) async fn next_batch(&self, batch: &mut Vec<WsMessage>) -> bool {
        loop {
            let ready = self.ready.notified();
            {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                if !queue.is_empty() {
                    batch.extend(queue.drain(..));
                    return true;
                }
            }
            if self.is_closing() {
                return false;
            }
            ready.await;
        }
    }

    #[cfg(test)]
    fn take_queued(&self) -> VecDeque<WsMessage> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// How many messages were dropped since the last call.
    pub(crate) fn take_lagged(&self) -> u64 {
        self.lagged.swap(0, Ordering::Relaxed)
    }

    /// Asks the connection to close with `frame`; only the first request counts.
    pub(crate) fn request_close(&self, code: CloseCode, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: truncate_reason(reason).to_owned().into(),
        };
        let first = self.close.send_if_modified(|close| {
            let first = close.is_none();
            if first {
                *close = Some(frame);
            }
            first
        });
        if first {
            self.closing.store(true, Ordering::Release);
            self.ready.notify_one();
        }
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
fn truncate_reason(reason: &str) -> &str {
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

    fn queued(peer: &Peer) -> Vec<String> {
        peer.take_queued()
            .into_iter()
            .map(|m| m.into_text().unwrap().to_string())
            .collect()
    }

    #[test]
    fn drop_oldest_keeps_the_newest() {
        let p = peer(2, LagPolicy::DropOldest);
        for m in ["a", "b", "c"] {
            p.push(WsMessage::text(m));
        }
        assert_eq!(queued(&p), ["b", "c"]);
        assert_eq!(p.take_lagged(), 1);
        assert_eq!(p.counters.dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn drop_new_keeps_the_oldest() {
        let p = peer(2, LagPolicy::DropNew);
        let outcomes: Vec<_> = ["a", "b", "c"].map(|m| p.push(WsMessage::text(m))).into();
        assert_eq!(outcomes, [Pushed::Queued, Pushed::Queued, Pushed::DroppedNew]);
        assert_eq!(queued(&p), ["a", "b"]);
    }

    #[test]
    fn disconnect_closes_with_1008_and_refuses_more() {
        let p = peer(1, LagPolicy::Disconnect);
        assert_eq!(p.push(WsMessage::text("a")), Pushed::Queued);
        assert_eq!(p.push(WsMessage::text("b")), Pushed::Disconnected);
        assert_eq!(p.close_frame().unwrap().code, CloseCode::Policy);
        assert_eq!(p.push(WsMessage::text("c")), Pushed::Closed);
        assert_eq!(p.counters.lag_disconnects.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn next_batch_takes_everything_queued_and_ends_when_closing() {
        let p = peer(8, LagPolicy::Disconnect);
        p.push(WsMessage::text("a"));
        p.push(WsMessage::text("b"));
        let mut batch = Vec::new();
        assert!(p.next_batch(&mut batch).await);
        assert_eq!(batch.len(), 2);
        p.request_close(CloseCode::Normal, "");
        assert!(!p.next_batch(&mut batch).await);
    }

    #[test]
    fn reasons_are_cut_at_a_char_boundary() {
        let long = "é".repeat(100);
        let cut = truncate_reason(&long);
        assert!(cut.len() <= 123 && cut.len() >= 121);
        assert_eq!(truncate_reason("short"), "short");
    }
}
