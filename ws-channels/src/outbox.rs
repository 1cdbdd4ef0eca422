//! A connection's outbox: the bounded queue of frames waiting to be written, the channel's lag
//! policy, and the connection's one close state.
//!
//! Like a channel it has two ends. [`OutboxSender`]s are cloned into the hub's registry and into
//! the `Conn` handle: they push frames and ask the connection to close. The one
//! [`OutboxReceiver`] is owned by the connection task: it drains frames in batches, learns the
//! close frame, and reports lag. Dropping the receiver (the task ended, however) ends the
//! outbox: later pushes fail.
//!
//! A session's outbox (`session_outbox`) is the same queue under the same lock, shared by the
//! session's subscriptions: each pushes into a slot of its own, bounded under its channel's lag
//! policy, and the session's own replies join into frames as they are queued (see [`Slots`]).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use futures_util::future::poll_fn;
use futures_util::task::AtomicWaker;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message as WsMessage};

use crate::channel::{Channel, LagPolicy};
use crate::codec::{self, FrameKind};
use crate::error::Error;
use crate::metrics::{Count, Counters};
use crate::session::codes::{DisconnectCode, UnsubscribeCode};
use crate::transport::close_frame;

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

impl Pushed {
    /// Whether the message will be written.
    pub(crate) fn delivered(self) -> bool {
        matches!(self, Self::Queued | Self::DroppedOldest)
    }
}

/// A frame waiting in an outbox.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A frame of its own: a broadcast's shared bytes, an error reply, a control frame.
    Message(WsMessage),
    /// A data frame whose payload a send encoded straight into the outbox's bytes: `len` of
    /// them at `at` (see [`Batch::payload`]). A connection's replies cost no allocation each.
    Encoded { at: usize, len: usize, kind: FrameKind },
}

/// What the writer takes from the outbox at once: frames, and the bytes of the encoded ones.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) frames: VecDeque<Frame>,
    bytes: Vec<u8>,
}

impl Batch {
    /// The payload of an [`Encoded`](Frame::Encoded) frame of this batch.
    pub(crate) fn payload(&self, at: usize, len: usize) -> &[u8] {
        &self.bytes[at..at + len]
    }

    /// Queues one more frame of its own (the writer's close frame).
    pub(crate) fn push_message(&mut self, message: WsMessage) {
        self.frames.push_back(Frame::Message(message));
    }

    /// Takes what `state` holds, swapping buffers, so a busy connection's two byte buffers go
    /// back and forth without allocating.
    ///
    /// The batch is empty here: the connection's writer asks for the next batch only once it
    /// wrote the last one whole, and ends when writing fails. (There used to be a branch that
    /// merged new frames after unwritten ones; nothing could reach it.)
    fn take(&mut self, state: &mut State) {
        debug_assert!(self.frames.is_empty(), "a batch is taken only once written");
        self.bytes.clear();
        std::mem::swap(&mut state.queue, &mut self.frames);
        std::mem::swap(&mut state.bytes, &mut self.bytes);
        if let Some(slots) = state.session.as_deref_mut() {
            slots.taken();
        }
    }

    /// Appends an encoded frame, as a send to the outbox does.
    #[cfg(test)]
    pub(crate) fn push_payload(&mut self, kind: FrameKind, payload: &[u8]) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(payload);
        self.frames.push_back(Frame::Encoded {
            at,
            len: payload.len(),
            kind,
        });
    }

    /// The frames as text, for tests: a control frame by its kind.
    #[cfg(test)]
    pub(crate) fn texts(&self) -> Vec<String> {
        self.frames
            .iter()
            .map(|frame| match frame {
                Frame::Message(WsMessage::Text(text)) => text.to_string(),
                Frame::Message(WsMessage::Ping(_)) => "<ping>".to_owned(),
                Frame::Message(_) => "<other>".to_owned(),
                Frame::Encoded { at, len, .. } => String::from_utf8_lossy(self.payload(*at, *len)).into_owned(),
            })
            .collect()
    }
}

/// A send's frame on its way into the queue, under the outbox's lock (see
/// [`OutboxSender::push_encoded`]).
pub(crate) struct Queueing<'a> {
    state: &'a mut State,
}

impl Queueing<'_> {
    /// The outbox's bytes, to append a payload to: only append.
    pub(crate) fn bytes(&mut self) -> &mut Vec<u8> {
        &mut self.state.bytes
    }

    /// Queues a data frame of `kind` whose payload is what was appended to the bytes since
    /// their length was `at`. Made here rather than returned through the encoder's closure,
    /// so the optimiser can build it in its slot of the queue (returned, it was copied through
    /// four stack slots, each copy stalling on store forwarding).
    pub(crate) fn encoded(&mut self, at: usize, kind: FrameKind) {
        let len = self.state.bytes.len() - at;
        self.state.queue.push_back(Frame::Encoded { at, len, kind });
    }

    /// Queues a frame of its own.
    pub(crate) fn whole(&mut self, message: WsMessage) {
        self.state.queue.push_back(Frame::Message(message));
    }
}

/// Creates a connection's outbox.
pub(crate) fn outbox(
    channel: &'static str,
    capacity: usize,
    policy: LagPolicy,
    counters: Arc<Counters>,
) -> (OutboxSender, OutboxReceiver) {
    new_outbox(channel, capacity, policy, counters, State::default())
}

/// Creates a session's outbox: its subscriptions' pushes go into [slots](Slots), each bounded
/// by `limits.per_slot` frames under its channel's lag policy, and everything queued by
/// `limits.max_queued_bytes`; its own messages join into frames of at most `limits.max_frame`
/// bytes.
pub(crate) fn session_outbox(limits: SessionLimits, counters: Arc<Counters>) -> (OutboxSender, OutboxReceiver) {
    let state = State {
        session: Some(Box::new(Slots::new(limits))),
        ..State::default()
    };
    // A session has no lag policy of its own: each slot has its channel's.
    new_outbox(SESSION, limits.per_slot, LagPolicy::Disconnect, counters, state)
}

fn new_outbox(
    channel: &'static str,
    capacity: usize,
    policy: LagPolicy,
    counters: Arc<Counters>,
    state: State,
) -> (OutboxSender, OutboxReceiver) {
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        pressure: AtomicUsize::new(0),
        capacity,
        policy,
        ready: AtomicWaker::new(),
        attention: Mutex::new(None),
        attention_due: AtomicBool::new(false),
        lagged: AtomicU64::new(0),
        channel,
        counters,
    });
    (OutboxSender { shared: shared.clone() }, OutboxReceiver { shared })
}

struct Shared {
    state: Mutex<State>,
    /// What the connection task looks at for every frame and every write, kept up to date by
    /// every unlock of `state` (see [`Locked`]) so it reads it without the lock: the queue's
    /// length shifted left by two, whether the outbox ended in bit 1, and whether the
    /// connection is closing in bit 0.
    pressure: AtomicUsize,
    capacity: usize,
    policy: LagPolicy,
    /// Wakes the writer: the queue is no longer empty (or its oldest frame was replaced), a
    /// ping is due, or the connection is closing. One writer waits,
    /// registered under the state's lock when it found nothing to write, so a waker slot is
    /// enough (no list of waiters, no second lock).
    ready: AtomicWaker,
    /// The reader's waker (the one task that waits on it), woken when a close was requested or
    /// messages were dropped. A wake leaves it here, unlike an `AtomicWaker`'s: the reader
    /// registers only when its waker changes, and a wake that took the waker after the reader
    /// looked could otherwise leave the slot empty while the reader thinks it registered.
    attention: Mutex<Option<Waker>>,
    /// Set with every wake of `attention`, taken by the reader: a wake it was not waiting
    /// for is not lost.
    attention_due: AtomicBool,
    /// Messages dropped since the last `on_lag` report.
    lagged: AtomicU64,
    /// The connection's channel, for the counters' label.
    channel: &'static str,
    counters: Arc<Counters>,
}

/// Everything under one lock, so that "accepted" and "closing" never race: a message accepted
/// before the close is always written before the close frame.
#[derive(Default)]
struct State {
    queue: VecDeque<Frame>,
    /// The payloads of the queue's encoded frames (bytes of frames dropped under the lag
    /// policy stay until the writer takes the batch). Let go while the connection is idle.
    bytes: Vec<u8>,
    /// A ping (with no payload) waiting to go out. Kept apart from the queue so no lag policy
    /// can drop it (a dropped ping would close a slow but live reader for "ping timeout").
    ping: bool,
    /// Set once, by the first close request: the connection is closing, and this is the frame
    /// the writer sends after what is queued. Boxed: most of a connection's life it is `None`,
    /// and every connection's outbox would otherwise keep room for one.
    close: Option<Box<CloseFrame>>,
    /// The connection task has ended: nothing more will be written.
    ended: bool,
    /// A session's slots (`None` for a direct connection). Boxed: a direct connection's
    /// outbox keeps room for a pointer only.
    session: Option<Box<Slots>>,
}

impl State {
    fn is_closing(&self) -> bool {
        self.close.is_some() || self.ended
    }

    /// Drops the oldest queued frame (`LagPolicy::DropOldest`). The bytes before the end of
    /// an encoded one belong to no queued frame any more (payloads are in queue order): once
    /// they are half the buffer they are cut off, so a reader that stopped reading cannot make
    /// the buffer grow past twice what its queue holds.
    fn drop_oldest(&mut self) {
        let Some(Frame::Encoded { at, len, .. }) = self.queue.pop_front() else {
            return;
        };
        let dead = at + len;
        if dead < self.bytes.len() / 2 {
            return;
        }
        self.bytes.drain(..dead);
        for frame in &mut self.queue {
            if let Frame::Encoded { at, .. } = frame {
                *at -= dead;
            }
        }
    }
}

/// The locked state. Unlocking mirrors the queue's length and the ended and closing flags into
/// [`Shared::pressure`], so every change made under the lock is published, whichever path
/// made it.
struct Locked<'a> {
    guard: MutexGuard<'a, State>,
    pressure: &'a AtomicUsize,
}

impl Deref for Locked<'_> {
    type Target = State;

    fn deref(&self) -> &State {
        &self.guard
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    /// Runs before the guard's own drop, so still under the lock.
    fn drop(&mut self) {
        let pressure =
            self.guard.queue.len() << 2 | usize::from(self.guard.ended) << 1 | usize::from(self.guard.is_closing());
        self.pressure.store(pressure, Ordering::Release);
    }
}

impl Shared {
    fn state(&self) -> Locked<'_> {
        Locked {
            guard: self.state.lock().unwrap_or_else(PoisonError::into_inner),
            pressure: &self.pressure,
        }
    }

    fn request_close(&self, code: CloseCode, reason: &str) -> bool {
        // Codes a close frame may not carry (1005, 1006, 1015) are sent as 1000.
        let code = if code.is_allowed() { code } else { CloseCode::Normal };
        {
            let mut state = self.state();
            if state.is_closing() {
                return false;
            }
            state.close = Some(Box::new(close_frame(code, reason)));
        }
        self.ready.wake();
        self.call_attention();
        true
    }

    fn call_attention(&self) {
        // Only the call that sets the flag wakes: until the reader takes it, it will look.
        if self.attention_due.swap(true, Ordering::AcqRel) {
            return;
        }
        let waker = self.attention.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn report_lag(&self) {
        self.lagged.fetch_add(1, Ordering::Relaxed);
        self.call_attention();
    }
}

/// The sending end of a connection's outbox: cheap to clone, never waits.
#[derive(Clone)]
pub(crate) struct OutboxSender {
    shared: Arc<Shared>,
}

impl OutboxSender {
    /// Queues a frame under the lag policy.
    pub(crate) fn push(&self, message: WsMessage) -> Pushed {
        let queued = self.push_with(|state| {
            state.queue.push_back(Frame::Message(message));
            Ok::<_, Infallible>(())
        });
        queued.unwrap_or_else(|never| match never {})
    }

    /// Queues the frame `encode` makes under the lag policy: it runs under the outbox's lock,
    /// only once the frame will be queued, and queues it through [`Queueing`] (appending its
    /// payload to the outbox's bytes, or whole); if it fails, what it appended is discarded
    /// and nothing is queued.
    pub(crate) fn push_encoded<E>(&self, encode: impl FnOnce(&mut Queueing<'_>) -> Result<(), E>) -> Result<Pushed, E> {
        self.push_with(|state| {
            let at = state.bytes.len();
            let queued = state.queue.len();
            let encoded = encode(&mut Queueing { state });
            match encoded {
                Ok(()) => debug_assert_eq!(state.queue.len(), queued + 1, "a push queues one frame"),
                Err(_) => {
                    // Back to the length it had, even from a codec that wrongly cut it short:
                    // the earlier frames' payloads must stay in bounds.
                    state.bytes.resize(at, 0);
                    state.queue.truncate(queued);
                }
            }
            encoded
        })
    }

    /// Applies the lag policy, and queues a frame with `queue` (under the lock) if the policy
    /// admits one.
    fn push_with<E>(&self, queue: impl FnOnce(&mut State) -> Result<(), E>) -> Result<Pushed, E> {
        let shared = &*self.shared;
        let (outcome, queued) = {
            let mut state = shared.state();
            debug_assert!(state.session.is_none(), "a session's pushes go into its slots");
            if state.is_closing() {
                return Ok(Pushed::Closed);
            }
            let queued = state.queue.len();
            let outcome = match (queued < shared.capacity, shared.policy) {
                (true, _) => Pushed::Queued,
                (false, LagPolicy::DropOldest) => Pushed::DroppedOldest,
                (false, LagPolicy::DropNew) => Pushed::DroppedNew,
                (false, LagPolicy::Disconnect) => Pushed::Disconnected,
            };
            if outcome.delivered() {
                queue(&mut state)?;
                if outcome == Pushed::DroppedOldest {
                    state.drop_oldest();
                }
            }
            (outcome, queued)
        };
        // Recorded once the lock is released: a histogram (feature `metrics`) may take a while,
        // and every publisher to this connection waits on the lock.
        shared.counters.queue_depth(shared.channel, queued);
        match outcome {
            // The writer waits only on an empty queue: the push that fills it wakes it.
            Pushed::Queued => {
                if queued == 0 {
                    shared.ready.wake();
                }
            }
            Pushed::DroppedOldest | Pushed::DroppedNew => {
                if outcome == Pushed::DroppedOldest {
                    shared.ready.wake();
                }
                shared.counters.add(Count::Dropped, shared.channel, 1);
                shared.report_lag();
            }
            Pushed::Disconnected => {
                // Several publishers may hit the full queue at once: count the disconnect once.
                if shared.request_close(CloseCode::Again, "slow consumer: outbound queue full") {
                    shared.counters.add(Count::LagDisconnects, shared.channel, 1);
                }
                shared.report_lag();
            }
            Pushed::Closed => {}
        }
        Ok(outcome)
    }

    /// Queues a frame only if there is room, whatever the lag policy: for the runtime's error
    /// replies, which must never disconnect (or drop messages of) the client they answer.
    /// `false` when it was not queued.
    pub(crate) fn offer(&self, message: WsMessage) -> bool {
        {
            let mut state = self.shared.state();
            debug_assert!(state.session.is_none(), "a session's replies are never dropped");
            if state.is_closing() || state.queue.len() >= self.shared.capacity {
                return false;
            }
            state.queue.push_back(Frame::Message(message));
        }
        self.shared.ready.wake();
        true
    }

    /// Asks the connection to close with a close frame of `code` and `reason` (cut to 123
    /// bytes); only the first request counts (`true` for it).
    pub(crate) fn request_close(&self, code: CloseCode, reason: &str) -> bool {
        self.shared.request_close(code, reason)
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.shared.state().is_closing()
    }
}

/// The draining end of a connection's outbox, owned by its connection task.
pub(crate) struct OutboxReceiver {
    shared: Arc<Shared>,
}

impl OutboxReceiver {
    /// Queues a ping ahead of the messages, whatever the lag policy. One slot: a ping not yet
    /// written is not queued twice, so a stuck writer cannot make this grow.
    pub(crate) fn push_ping(&self) {
        {
            let mut state = self.shared.state();
            if state.is_closing() {
                return;
            }
            state.ping = true;
        }
        self.shared.ready.wake();
    }

    /// Waits for frames and moves them all into `batch`, the ping first; `false` once closing
    /// with nothing left to write. Cancel-safe: frames are taken only in the poll that returns.
    ///
    /// An empty `batch` trades places with the queue rather than taking a copy of it: the
    /// writer's emptied buffer becomes the queue, and the two buffers take turns.
    pub(crate) async fn next_batch(&self, batch: &mut Batch) -> bool {
        poll_fn(|cx| {
            let mut state = self.shared.state();
            if state.ended {
                return Poll::Ready(false);
            }
            batch.take(&mut state);
            if std::mem::take(&mut state.ping) {
                batch.frames.push_front(Frame::Message(WsMessage::Ping(Bytes::new())));
            }
            if !batch.frames.is_empty() {
                return Poll::Ready(true);
            }
            if state.close.is_some() {
                return Poll::Ready(false);
            }
            // Idle: neither end keeps a byte buffer.
            batch.bytes = Vec::new();
            state.bytes = Vec::new();
            // Under the lock: whoever queues next sees this waker.
            self.shared.ready.register(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// Whether the connection is closing, and how many messages wait to be written, without
    /// the lock: the reader's loop looks for every frame.
    pub(crate) fn pressure(&self) -> (bool, usize) {
        let pressure = self.shared.pressure.load(Ordering::Acquire);
        (pressure & 1 == 1, pressure >> 2)
    }

    /// How many messages wait to be written.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.shared.state().queue.len()
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.shared.state().is_closing()
    }

    /// Whether nothing more may be written: the writer failed, the task ended, or the peer's
    /// close frame was read.
    pub(crate) fn is_ended(&self) -> bool {
        self.shared.pressure.load(Ordering::Acquire) & 2 == 2
    }

    /// Ready when a close was requested or messages were dropped since it was last ready.
    ///
    /// The one task that waits keeps `registered`, the waker it last left here: the reader
    /// looks at every turn of its loop (for every frame), so it takes the lock to register
    /// only with another waker. Sound because a wake leaves the waker in its slot: the waker
    /// left here stays here until the reader replaces it.
    pub(crate) fn poll_attention(&self, cx: &mut Context<'_>, registered: &mut Option<Waker>) -> Poll<()> {
        // Registered before the flag is read: a call after the read still wakes the reader.
        if !registered.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
            let waker = cx.waker().clone();
            *self.shared.attention.lock().unwrap_or_else(PoisonError::into_inner) = Some(waker.clone());
            *registered = Some(waker);
        }
        let due = &self.shared.attention_due;
        match due.load(Ordering::Relaxed) && due.swap(false, Ordering::AcqRel) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        }
    }

    /// The close frame the server sends (or sent), once a close was requested.
    pub(crate) fn close_frame(&self) -> Option<CloseFrame> {
        self.shared.state().close.as_deref().cloned()
    }

    /// How many messages were dropped since the last call.
    pub(crate) fn take_lagged(&self) -> u64 {
        self.shared.lagged.swap(0, Ordering::Relaxed)
    }

    /// Asks the connection to close (the task's own decisions: limits, errors, liveness).
    pub(crate) fn request_close(&self, code: CloseCode, reason: &str) -> bool {
        self.shared.request_close(code, reason)
    }

    /// Nothing more can be written (the writer failed, or the peer's close frame was read):
    /// later sends fail.
    pub(crate) fn end(&self) {
        {
            let mut state = self.shared.state();
            state.ended = true;
            state.queue.clear();
            state.bytes = Vec::new();
            state.ping = false;
            if let Some(slots) = state.session.as_deref_mut() {
                slots.ended();
            }
        }
        self.shared.ready.wake();
        self.shared.call_attention();
    }
}

impl Drop for OutboxReceiver {
    /// The connection task ended (normally, by a panic, or aborted at a shutdown timeout):
    /// nothing queued can be delivered now, and later sends must fail.
    fn drop(&mut self) {
        self.end();
    }
}

// A session's slots (`docs/design/sessions.md`, B3): one outbox per session, the same lock and
// batch swap as a direct connection's, with each subscription's pushes bounded in a slot of
// their own, so one slow channel cannot drop another's messages.

/// The counters' label of a session's outbox as a whole (its queue depth, a close for its byte
/// bound); its slots' drops and lag disconnects count under their channels.
const SESSION: &str = "(session)";

/// The owner of a queued frame that no slot owns: one of the session's own messages, or a push
/// of a slot closed since.
const NO_SLOT: u32 = u32::MAX;

/// A subscription's slot in its session's outbox: the slot's index and the generation of that
/// index. Indexes are reused (the lowest free one), generations never: a handle kept past its
/// subscription's end (a `Conn` clone, a message runner) reaches nothing rather than the
/// subscription that took the index next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlotId {
    index: u32,
    generation: u32,
}

/// A session outbox's bounds (`docs/design/sessions.md`, B7).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionLimits {
    /// Pushes one subscription may have queued or held: the server's `outbound_queue`.
    pub(crate) per_slot: usize,
    /// Payload bytes the session may have queued, pushes held and replies included, before it
    /// is closed with 3008 "slow".
    pub(crate) max_queued_bytes: usize,
    /// The largest frame the session's own messages are joined into: the largest outgoing
    /// message.
    pub(crate) max_frame: usize,
}

/// What a session's task learns of one live slot ([`OutboxReceiver::take_slot_events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotEvent {
    pub(crate) slot: SlotId,
    /// Pushes its lag policy dropped since the last report (for `on_lag`; for `Disconnect`,
    /// the one that did not fit).
    pub(crate) dropped: u64,
    /// It was ended, and how the client is to be told: the task sends this `unsubscribe`
    /// push, drops the subscription and runs its `on_close`.
    pub(crate) ended: Option<SlotEnd>,
}

/// How a slot was ended: the `unsubscribe` push's code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotEnd {
    pub(crate) code: u32,
    pub(crate) reason: String,
}

/// A session's part of its outbox, under the outbox's lock.
///
/// In a session's queue a [`Frame::Encoded`] is always one of the session's own messages (see
/// [`OutboxReceiver::push_reply`]), joined with the one before it when both fit in a frame
/// (the SDK splits a frame at `\n`); a [`Frame::Message`] is always a subscription's push,
/// whose bytes every session member of its topic shares, so it goes out as a frame of its own.
/// Joining as replies are queued rather than as the writer writes them costs no copy (they
/// are adjacent in the outbox's bytes already) and serves every transport alike.
struct Slots {
    /// By slot number; `None` for a number free to reuse.
    slots: Vec<Option<Slot>>,
    /// The slot of each frame of the queue, in the queue's order ([`NO_SLOT`] for the
    /// session's own): what finds a slot's oldest frame for `DropOldest`. (A `Frame` cannot
    /// carry it: the transports match on it.)
    owners: VecDeque<u32>,
    /// The payload bytes of every frame queued or held.
    queued_bytes: usize,
    limits: SessionLimits,
    /// Subscriptions the server asked for or ended (`Hub::subscribe_session`), for the task.
    requests: Vec<SubscriptionRequest>,
    /// The generation of the next slot opened.
    next_generation: u32,
}

/// The most [`SubscriptionRequest`]s a session may have waiting for its task.
const MAX_REQUESTS: usize = 1024;

/// A server-side change to a session's subscriptions, by channel string (an address, which
/// names its channel too), which its task carries out in turn with its commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubscriptionRequest {
    /// Subscribe it (the channel decides; the client gets a `subscribe` push).
    Subscribe(String),
    /// End its subscription (an `unsubscribe` push, 2000).
    Unsubscribe(String),
}

/// One subscription's share of its session's outbox.
struct Slot {
    /// Which subscription of this index it is (see [`SlotId`]).
    generation: u32,
    /// Its channel, the counters' label.
    channel: &'static str,
    /// Its channel's lag policy, applied to this slot alone.
    policy: LagPolicy,
    /// Its pushes queued or held, against [`SessionLimits::per_slot`].
    queued: usize,
    /// Pushes held until its `subscribe` reply is queued (`Some` while the subscription is
    /// pending), so that no `pub` precedes that reply and nothing published once the
    /// subscription is registered is lost.
    pending: Option<Vec<WsMessage>>,
    /// It takes no more pushes: its lag policy ended it, or the session task is ending it.
    ended: bool,
    /// Pushes dropped since the last report.
    dropped: u64,
    /// How it was ended (its lag policy, or its subscription's `close`); not reported yet.
    ending: Option<SlotEnd>,
    /// Its `subscribe` reply is queued: only a live slot's events are reported, so no
    /// `unsubscribe` push can precede that reply.
    live: bool,
}

/// What a push into a slot did, acted on once the lock is released.
struct SlotPushed {
    pushed: Pushed,
    /// The slot's channel (the session's label if there is no such slot).
    channel: &'static str,
    /// The session went over its byte bound: it closes with 3008.
    slow: bool,
}

impl Slots {
    fn new(limits: SessionLimits) -> Self {
        Self {
            slots: Vec::new(),
            owners: VecDeque::new(),
            queued_bytes: 0,
            limits,
            requests: Vec::new(),
            next_generation: 0,
        }
    }

    /// A new pending slot, at the lowest free index.
    fn open(&mut self, channel: &'static str, policy: LagPolicy) -> SlotId {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let slot = Slot {
            generation,
            channel,
            policy,
            queued: 0,
            pending: Some(Vec::new()),
            ended: false,
            dropped: 0,
            ending: None,
            live: false,
        };
        let free = self.slots.iter().position(Option::is_none);
        let number = free.unwrap_or(self.slots.len());
        match free {
            Some(free) => self.slots[free] = Some(slot),
            None => self.slots.push(Some(slot)),
        }
        SlotId {
            index: u32::try_from(number).unwrap_or(NO_SLOT),
            generation,
        }
    }

    /// Slot `id`, if it is still open.
    fn slot(&mut self, id: SlotId) -> Option<&mut Slot> {
        self.slots
            .get_mut(id.index as usize)
            .and_then(Option::as_mut)
            .filter(|slot| slot.generation == id.generation)
    }

    /// Puts `frame` in slot `number` under its lag policy and the session's byte bound: held
    /// while the slot is pending, queued once it is live, refused once it ended.
    fn push(&mut self, queue: &mut VecDeque<Frame>, id: SlotId, frame: WsMessage) -> SlotPushed {
        let limits = self.limits;
        let number = id.index;
        let Some(slot) = self
            .slots
            .get_mut(number as usize)
            .and_then(Option::as_mut)
            .filter(|slot| slot.generation == id.generation)
        else {
            return SlotPushed {
                pushed: Pushed::Closed,
                channel: SESSION,
                slow: false,
            };
        };
        let channel = slot.channel;
        let outcome = |pushed| SlotPushed {
            pushed,
            channel,
            slow: false,
        };
        if slot.ended {
            return outcome(Pushed::Closed);
        }
        let mut pushed = Pushed::Queued;
        if slot.queued >= limits.per_slot {
            match slot.policy {
                LagPolicy::DropNew => {
                    slot.dropped += 1;
                    return outcome(Pushed::DroppedNew);
                }
                LagPolicy::Disconnect => {
                    self.queued_bytes -= slot.end();
                    slot.dropped += 1;
                    let state = UnsubscribeCode::InsufficientState;
                    slot.ending = Some(SlotEnd {
                        code: state.code(),
                        reason: state.reason().to_owned(),
                    });
                    return outcome(Pushed::Disconnected);
                }
                LagPolicy::DropOldest => {
                    self.queued_bytes -= slot.drop_oldest(number, queue, &mut self.owners);
                    slot.dropped += 1;
                    pushed = Pushed::DroppedOldest;
                }
            }
        }
        let len = codec::payload_len(&frame);
        if self.queued_bytes + len > limits.max_queued_bytes {
            return SlotPushed {
                pushed: Pushed::Disconnected,
                channel,
                slow: true,
            };
        }
        self.queued_bytes += len;
        slot.queued += 1;
        match &mut slot.pending {
            Some(held) => held.push(frame),
            None => {
                queue.push_back(Frame::Message(frame));
                self.owners.push_back(number);
            }
        }
        outcome(pushed)
    }

    /// Encodes one of the session's own messages at the end of the queue: joined with a `\n`
    /// to the frame before it if that is one of the session's own too and both fit in
    /// `max_frame`, a frame of its own otherwise (a message larger than `max_frame` goes
    /// alone: refusing it is the encoder's business). If `encode` fails, what it appended is
    /// discarded and nothing is queued.
    fn queue_own<E>(
        &mut self,
        queue: &mut VecDeque<Frame>,
        bytes: &mut Vec<u8>,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let end = bytes.len();
        // Payloads are in queue order, so the last frame's payload ends the bytes (past a
        // `\n` left by a message that did not fit behind it, the same).
        let behind = match queue.back() {
            Some(Frame::Encoded {
                at,
                len,
                kind: FrameKind::Text,
            }) if at + len == end => Some(*len),
            _ => None,
        };
        if behind.is_some() {
            bytes.push(b'\n');
        }
        let at = bytes.len();
        let encoded = encode(bytes);
        let len = match (encoded, bytes.len().checked_sub(at)) {
            (Ok(()), Some(len)) => len,
            (encoded, _) => {
                // Back to the length it had, even from an encoder that wrongly cut it short:
                // the earlier frames' payloads must stay in bounds.
                bytes.resize(end, 0);
                debug_assert!(encoded.is_err(), "an encoder cut the outbox's bytes short");
                return encoded;
            }
        };
        debug_assert!(
            std::str::from_utf8(&bytes[at..]).is_ok_and(|json| !json.contains('\n')),
            "a session's message is compact JSON: UTF-8 without a raw `\\n`"
        );
        match (behind, queue.back_mut()) {
            (Some(before), Some(Frame::Encoded { len: joined, .. })) if before + 1 + len <= self.limits.max_frame => {
                *joined += 1 + len;
                self.queued_bytes += 1 + len;
            }
            _ => {
                queue.push_back(Frame::Encoded {
                    at,
                    len,
                    kind: FrameKind::Text,
                });
                self.owners.push_back(NO_SLOT);
                self.queued_bytes += len;
            }
        }
        Ok(())
    }

    /// Makes a pending slot live: its held pushes are queued, in order (behind its
    /// `subscribe` reply, which the caller queued just before).
    fn release(&mut self, queue: &mut VecDeque<Frame>, id: SlotId) {
        let number = id.index;
        let Some(slot) = self.slot(id) else {
            return;
        };
        slot.live = true;
        let Some(held) = slot.pending.take() else {
            return;
        };
        for frame in held {
            queue.push_back(Frame::Message(frame));
            self.owners.push_back(number);
        }
    }

    /// Frees slot `number`: its held pushes are dropped, its queued ones still go out but
    /// belong to no slot any more (so a subscription that reuses the number starts empty).
    fn close(&mut self, id: SlotId) {
        if self.slot(id).is_none() {
            return;
        }
        let number = id.index;
        let Some(mut slot) = self.slots.get_mut(number as usize).and_then(Option::take) else {
            return;
        };
        self.queued_bytes -= slot.end();
        for owner in self.owners.iter_mut().filter(|owner| **owner == number) {
            *owner = NO_SLOT;
        }
    }

    /// Ends slot `id` for its subscription's `close`: no more pushes; those it holds or
    /// queued still go out (held ones behind its `subscribe` reply), as a connection's queued
    /// messages go out before its close. `false` if it has ended already (only the first end
    /// counts).
    fn end_for(&mut self, id: SlotId, end: SlotEnd) -> bool {
        let Some(slot) = self.slot(id) else {
            return false;
        };
        if slot.ended {
            return false;
        }
        slot.ended = true;
        slot.ending = Some(end);
        true
    }

    fn take_events(&mut self) -> Vec<SlotEvent> {
        let mut events = Vec::new();
        for (number, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot
                .as_mut()
                .filter(|slot| slot.live && (slot.dropped > 0 || slot.ending.is_some()))
            else {
                continue;
            };
            events.push(SlotEvent {
                slot: SlotId {
                    index: u32::try_from(number).unwrap_or(NO_SLOT),
                    generation: slot.generation,
                },
                dropped: std::mem::take(&mut slot.dropped),
                ended: slot.ending.take(),
            });
        }
        events
    }

    fn is_over(&self) -> bool {
        self.queued_bytes > self.limits.max_queued_bytes
    }

    /// The writer took the queue: only held pushes are left.
    fn taken(&mut self) {
        self.owners.clear();
        self.queued_bytes = 0;
        for slot in self.slots.iter_mut().flatten() {
            let held = slot.pending.as_deref().unwrap_or_default();
            slot.queued = held.len();
            self.queued_bytes += held.iter().map(codec::payload_len).sum::<usize>();
        }
    }

    /// The outbox ended: nothing is queued or held any more.
    fn ended(&mut self) {
        self.owners.clear();
        self.queued_bytes = 0;
        for slot in self.slots.iter_mut().flatten() {
            slot.end();
        }
    }
}

impl Slot {
    /// Takes no more pushes, and drops the held ones; returns their bytes.
    fn end(&mut self) -> usize {
        self.ended = true;
        let held = self.pending.take().unwrap_or_default();
        self.queued -= held.len();
        held.iter().map(codec::payload_len).sum()
    }

    /// Drops this slot's oldest push, held or queued (found by a scan of the queue: only a
    /// full slot under `DropOldest` looks); returns its bytes.
    fn drop_oldest(&mut self, number: u32, queue: &mut VecDeque<Frame>, owners: &mut VecDeque<u32>) -> usize {
        let dropped = match &mut self.pending {
            Some(held) => (!held.is_empty()).then(|| held.remove(0)),
            None => owners.iter().position(|owner| *owner == number).and_then(|at| {
                owners.remove(at);
                match queue.remove(at) {
                    Some(Frame::Message(frame)) => Some(frame),
                    _ => None,
                }
            }),
        };
        dropped.map_or(0, |frame| {
            self.queued -= 1;
            codec::payload_len(&frame)
        })
    }
}

impl Shared {
    /// Closes a session over its byte bound: 3008 "slow".
    fn close_slow(&self) {
        let slow = DisconnectCode::Slow;
        if self.request_close(CloseCode::from(slow.code()), slow.reason()) {
            self.counters.add(Count::LagDisconnects, SESSION, 1);
        }
    }
}

impl OutboxSender {
    /// Pushes a subscription's message into its slot of its session's outbox (see [`Slots`]):
    /// held while the subscription is pending, refused once it ended, under its channel's lag
    /// policy when the slot is full (`Disconnect` ends the slot and calls the session task's
    /// attention, see [`OutboxReceiver::take_slot_events`]). A push that would take the session
    /// over its byte bound closes the session with 3008 (`Disconnected`).
    pub(crate) fn push_slot(&self, slot: SlotId, frame: WsMessage) -> Pushed {
        let shared = &*self.shared;
        let (outcome, was_empty, is_empty) = {
            let mut state = shared.state();
            if state.is_closing() {
                return Pushed::Closed;
            }
            let State { queue, session, .. } = &mut *state;
            let Some(slots) = session.as_deref_mut() else {
                debug_assert!(false, "a slot of a direct connection's outbox");
                return Pushed::Closed;
            };
            let was_empty = queue.is_empty();
            (slots.push(queue, slot, frame), was_empty, queue.is_empty())
        };
        if was_empty && !is_empty {
            shared.ready.wake();
        }
        match outcome.pushed {
            _ if outcome.slow => shared.close_slow(),
            Pushed::DroppedOldest | Pushed::DroppedNew => {
                shared.counters.add(Count::Dropped, outcome.channel, 1);
                shared.call_attention();
            }
            Pushed::Disconnected => {
                shared.counters.add(Count::LagDisconnects, outcome.channel, 1);
                shared.call_attention();
            }
            Pushed::Queued | Pushed::Closed => {}
        }
        outcome.pushed
    }
}

impl OutboxSender {
    /// Ends a subscription's slot because its handler closed it: it takes no more pushes
    /// (held ones are dropped, queued ones still go out), and the session task, called to
    /// attention, sends the client `end` as an `unsubscribe` push once the slot is live.
    /// `false` if the slot had ended already: only the first end counts.
    pub(crate) fn end_slot(&self, slot: SlotId, end: SlotEnd) -> bool {
        let ended = {
            let mut state = self.shared.state();
            match state.session.as_deref_mut() {
                Some(slots) => slots.end_for(slot, end),
                None => false,
            }
        };
        if ended {
            self.shared.call_attention();
        }
        ended
    }

    /// Asks a session's task to change its subscriptions (see [`SubscriptionRequest`]);
    /// `false` when this is no session's outbox, or it is closing.
    pub(crate) fn request(&self, request: SubscriptionRequest) -> bool {
        {
            let mut state = self.shared.state();
            if state.is_closing() {
                return false;
            }
            match state.session.as_deref_mut() {
                // A session that does not carry them out (its connect refused, a task stuck in
                // a handler) keeps a bounded backlog.
                Some(slots) if slots.requests.len() >= MAX_REQUESTS => return false,
                Some(slots) => slots.requests.push(request),
                None => return false,
            }
        }
        self.shared.call_attention();
        true
    }

    /// Whether a subscription's slot takes no more pushes (it ended, or the session is
    /// closing).
    pub(crate) fn is_slot_ended(&self, slot: SlotId) -> bool {
        let mut state = self.shared.state();
        if state.is_closing() {
            return true;
        }
        match state.session.as_deref_mut() {
            Some(slots) => slots.slot(slot).is_none_or(|slot| slot.ended),
            None => true,
        }
    }
}

impl OutboxReceiver {
    /// Opens a pending slot for a subscription of `channel` (pushes are held until
    /// [`release_slots`](Self::release_slots)); returns its number, the lowest free one.
    ///
    /// The number is what the registry routes the subscription's pushes to: it is reused only
    /// after [`close_slot`](Self::close_slot), which must come after the registry dropped the
    /// route.
    pub(crate) fn open_slot(&self, channel: &'static str, policy: LagPolicy) -> SlotId {
        let mut state = self.shared.state();
        match state.session.as_deref_mut() {
            Some(slots) => slots.open(channel, policy),
            None => SlotId {
                index: NO_SLOT,
                generation: 0,
            },
        }
    }

    /// Queues the reply that makes pending slots live (what `encode` appends: a `subscribe`
    /// reply, or the `connect` reply of server-side subscriptions), then the pushes each held,
    /// in order; the slots are live from then on. `false` (nothing encoded) when the session
    /// is closing.
    pub(crate) fn release_slots<E>(
        &self,
        slots: &[SlotId],
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<bool, E> {
        self.queue_own(slots, encode)
    }

    /// Frees a slot (after the registry dropped its route): held pushes are dropped, queued
    /// ones still go out, later pushes to the number are refused until it is opened again.
    pub(crate) fn close_slot(&self, slot: SlotId) {
        let mut state = self.shared.state();
        if let Some(slots) = state.session.as_deref_mut() {
            slots.close(slot);
        }
    }

    /// Queues one of the session's own messages (what `encode` appends: compact JSON): a
    /// command's reply, the ping, an `unsubscribe` push. Never dropped, joined with the
    /// session's own messages next to it into one frame when they fit, and counted toward
    /// the byte bound (going over it closes the session with 3008, after this message).
    /// `false` (nothing encoded) when the session is closing.
    pub(crate) fn push_reply<E>(&self, encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<bool, E> {
        self.queue_own(&[], encode)
    }

    fn queue_own<E>(&self, release: &[SlotId], encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<bool, E> {
        let shared = &*self.shared;
        let (was_empty, slow) = {
            let mut state = shared.state();
            if state.is_closing() {
                return Ok(false);
            }
            let State {
                queue, bytes, session, ..
            } = &mut *state;
            let Some(slots) = session.as_deref_mut() else {
                debug_assert!(false, "a session's message in a direct connection's outbox");
                return Ok(false);
            };
            let was_empty = queue.is_empty();
            slots.queue_own(queue, bytes, encode)?;
            for slot in release {
                slots.release(queue, *slot);
            }
            (was_empty, slots.is_over())
        };
        if was_empty {
            shared.ready.wake();
        }
        if slow {
            shared.close_slow();
        }
        Ok(true)
    }

    /// The server's requests to change the session's subscriptions since the last call.
    pub(crate) fn take_requests(&self) -> Vec<SubscriptionRequest> {
        let mut state = self.shared.state();
        state
            .session
            .as_deref_mut()
            .map(|slots| std::mem::take(&mut slots.requests))
            .unwrap_or_default()
    }

    /// What happened to live slots since the last call: pushes their lag policy dropped, and
    /// slots ended (by their lag policy or their subscription's `close`). The session task
    /// looks when its attention is called, and after a slot goes live.
    pub(crate) fn take_slot_events(&self) -> Vec<SlotEvent> {
        let mut state = self.shared.state();
        state.session.as_deref_mut().map(Slots::take_events).unwrap_or_default()
    }
}

/// Encodes an already validated message into an outbox: its payload appended to the outbox's
/// bytes (see [`Format::encode_to`](crate::Format::encode_to)), or a frame of its own where the codec makes only whole
/// frames. `check` sees the payload's size before the frame is queued.
pub(crate) fn encode_to<C, M>(
    message: &M,
    queueing: &mut Queueing<'_>,
    check: impl FnOnce(usize) -> Result<(), Error>,
) -> Result<(), Error>
where
    C: Channel,
    C::Codec: codec::Format<M>,
{
    /// Room made in an empty buffer before encoding (serde writes a message in many small
    /// pieces, which would grow it step by step): enough for a burst of small replies, and
    /// under 1 KiB, which allocators serve from their fast per-thread caches.
    const FIRST: usize = 1000;
    let bytes = queueing.bytes();
    let at = bytes.len();
    if bytes.capacity() == 0 {
        bytes.reserve(FIRST);
    }
    match <C::Codec as codec::Format<M>>::encode_to(message, bytes).map_err(codec::encode_error::<C>)? {
        Some(kind) => {
            let Some(len) = bytes.len().checked_sub(at) else {
                return Err(codec::encode_error::<C>(crate::error::CodecError::new(
                    "the codec changed bytes it did not append",
                )));
            };
            debug_assert!(
                kind == FrameKind::Binary || std::str::from_utf8(&bytes[at..]).is_ok(),
                "a codec's text payload must be UTF-8"
            );
            check(len)?;
            queueing.encoded(at, kind);
        }
        None => {
            let frame = <C::Codec as codec::Format<M>>::encode(message).map_err(codec::encode_error::<C>)?;
            check(codec::payload_len(&frame))?;
            queueing.whole(frame);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wake_count::WakeCount;

    fn new(capacity: usize, policy: LagPolicy) -> (OutboxSender, OutboxReceiver) {
        outbox("T", capacity, policy, Arc::default())
    }

    async fn batch(rx: &OutboxReceiver) -> Vec<String> {
        let mut batch = Batch::default();
        rx.next_batch(&mut batch).await;
        batch.texts()
    }

    /// Encodes `text` into the outbox, as a connection's own send does.
    fn send(tx: &OutboxSender, text: &str) -> Pushed {
        let encoded = tx.push_encoded(|queueing| {
            let at = queueing.bytes().len();
            queueing.bytes().extend_from_slice(text.as_bytes());
            queueing.encoded(at, FrameKind::Text);
            Ok::<_, Infallible>(())
        });
        encoded.unwrap_or_else(|never| match never {})
    }

    #[tokio::test]
    async fn drop_oldest_keeps_the_newest_and_never_drops_the_ping() {
        let (tx, rx) = new(2, LagPolicy::DropOldest);
        rx.push_ping();
        for m in ["a", "b", "c"] {
            tx.push(WsMessage::text(m));
        }
        assert_eq!(batch(&rx).await, ["<ping>", "b", "c"], "the ping goes first");
        assert_eq!(rx.take_lagged(), 1);
        assert_eq!(tx.shared.counters.dropped.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn drop_new_keeps_the_oldest() {
        let (tx, rx) = new(2, LagPolicy::DropNew);
        let outcomes: Vec<_> = ["a", "b", "c"].map(|m| tx.push(WsMessage::text(m))).into();
        assert_eq!(outcomes, [Pushed::Queued, Pushed::Queued, Pushed::DroppedNew]);
        assert_eq!(batch(&rx).await, ["a", "b"]);
    }

    #[test]
    fn disconnect_closes_with_1013_once_and_refuses_more() {
        let (tx, rx) = new(1, LagPolicy::Disconnect);
        assert_eq!(tx.push(WsMessage::text("a")), Pushed::Queued);
        assert_eq!(tx.push(WsMessage::text("b")), Pushed::Disconnected);
        assert_eq!(rx.close_frame().unwrap().code, CloseCode::Again);
        assert_eq!(tx.push(WsMessage::text("c")), Pushed::Closed);
        assert_eq!(tx.shared.counters.lag_disconnects.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn what_was_accepted_before_the_close_is_written_before_it() {
        let (tx, rx) = new(8, LagPolicy::Disconnect);
        tx.push(WsMessage::text("a"));
        tx.push(WsMessage::text("b"));
        assert!(tx.request_close(CloseCode::Normal, ""));
        assert!(!tx.request_close(CloseCode::Away, ""), "only the first close counts");
        assert_eq!(tx.push(WsMessage::text("late")), Pushed::Closed);
        assert_eq!(batch(&rx).await, ["a", "b"]);
        let mut rest = Batch::default();
        assert!(!rx.next_batch(&mut rest).await, "then the writer sends the close frame");
    }

    #[tokio::test]
    async fn an_ended_outbox_refuses_everything_and_stops_the_writer() {
        let (tx, rx) = new(8, LagPolicy::DropNew);
        tx.push(WsMessage::text("a"));
        rx.end();
        assert_eq!(tx.push(WsMessage::text("b")), Pushed::Closed);
        assert!(tx.is_closing());
        let mut rest = Batch::default();
        assert!(!rx.next_batch(&mut rest).await);
        assert!(rest.frames.is_empty());
        drop(rx);
        assert_eq!(
            tx.push(WsMessage::text("c")),
            Pushed::Closed,
            "and so does a dropped one"
        );
    }

    #[test]
    fn an_offer_never_overflows_nor_disconnects() {
        let (tx, rx) = new(1, LagPolicy::Disconnect);
        assert!(tx.offer(WsMessage::text("reply")));
        assert!(!tx.offer(WsMessage::text("another")), "no room: not queued");
        assert!(!tx.is_closing(), "and not disconnected");
        assert_eq!(rx.queued(), 1);
    }

    /// A reader looking at its outbox's attention, as the connection's read loop does.
    struct Looking {
        wakes: Arc<WakeCount>,
        waker: Waker,
        registered: Option<Waker>,
    }

    impl Looking {
        fn new() -> Self {
            let (wakes, waker) = WakeCount::new();
            Self {
                wakes,
                waker,
                registered: None,
            }
        }

        fn look(&mut self, rx: &OutboxReceiver) -> Poll<()> {
            rx.poll_attention(&mut Context::from_waker(&self.waker), &mut self.registered)
        }

        fn woken(&self) -> usize {
            self.wakes.get()
        }
    }

    #[test]
    fn attention_is_kept_until_the_reader_looks_and_then_cleared() {
        let (tx, rx) = new(1, LagPolicy::DropNew);
        let mut reader = Looking::new();
        assert!(reader.look(&rx).is_pending());
        tx.push(WsMessage::text("a"));
        assert!(
            reader.look(&rx).is_pending(),
            "a queued message is the writer's business"
        );
        assert_eq!(reader.woken(), 0);
        tx.push(WsMessage::text("b"));
        assert_eq!(
            reader.woken(),
            1,
            "a dropped one wakes the reader, registered once for both looks"
        );
        assert!(reader.look(&rx).is_ready(), "and calls it");
        assert!(reader.look(&rx).is_pending(), "once");
        tx.request_close(CloseCode::Normal, "");
        assert_eq!(reader.woken(), 2, "the waker stays registered after a wake");
        assert!(reader.look(&rx).is_ready(), "and so does a close");

        // Another task's waker is registered in its place.
        let (tx, rx) = new(1, LagPolicy::DropNew);
        let mut reader = Looking::new();
        assert!(reader.look(&rx).is_pending());
        let (other, other_waker) = WakeCount::new();
        reader.waker = other_waker;
        assert!(reader.look(&rx).is_pending());
        tx.request_close(CloseCode::Normal, "");
        assert_eq!((reader.woken(), other.get()), (0, 1));
    }

    /// Another thread's `call_attention` preempted between its store and its wake.
    #[test]
    fn a_wake_that_took_the_waker_late_does_not_lose_the_next_one() {
        let (tx, rx) = new(1, LagPolicy::DropNew);
        let mut reader = Looking::new();
        assert!(reader.look(&rx).is_pending());
        // Thread A, first half of call_attention.
        tx.shared.attention_due.store(true, Ordering::Release);
        // The reader is polled for a frame meanwhile: it takes the flag, then registers again.
        assert!(reader.look(&rx).is_ready());
        assert!(reader.look(&rx).is_pending());
        // Thread A, second half: its wake comes late (an `AtomicWaker` would take the waker the
        // reader just registered).
        if let Some(late) = tx.shared.attention.lock().unwrap().clone() {
            late.wake();
        }
        assert_eq!(reader.woken(), 1);
        // The reader is polled for that (spurious) wake: nothing due, it does not register.
        assert!(reader.look(&rx).is_pending());
        // Thread B asks for a close: the reader must be woken.
        tx.request_close(CloseCode::Normal, "");
        assert_eq!(reader.woken(), 2, "the close's wake was lost");
    }

    #[tokio::test]
    async fn pressure_follows_every_change_to_the_queue_and_the_close() {
        let (tx, rx) = new(2, LagPolicy::DropOldest);
        assert_eq!(rx.pressure(), (false, 0));
        tx.push(WsMessage::text("a"));
        assert!(tx.offer(WsMessage::text("b")));
        assert_eq!(rx.pressure(), (false, 2));
        tx.push(WsMessage::text("c"));
        assert_eq!(rx.pressure(), (false, 2), "dropping the oldest keeps the length");
        assert_eq!(batch(&rx).await, ["b", "c"]);
        assert_eq!(rx.pressure(), (false, 0));
        tx.push(WsMessage::text("d"));
        tx.request_close(CloseCode::Normal, "");
        assert_eq!(rx.pressure(), (true, 1));
        assert!(!rx.is_ended(), "closing is not ended: what is queued still goes out");
        rx.end();
        assert_eq!(rx.pressure(), (true, 0));
        assert!(rx.is_ended());
    }

    #[tokio::test]
    async fn encoded_and_shared_frames_keep_their_order_and_payloads_under_drop_oldest() {
        let (tx, rx) = new(3, LagPolicy::DropOldest);
        send(&tx, "a");
        tx.push(WsMessage::text("shared"));
        send(&tx, "bb");
        assert_eq!(send(&tx, "ccc"), Pushed::DroppedOldest, "drops the encoded `a`");
        assert_eq!(batch(&rx).await, ["shared", "bb", "ccc"]);
    }

    #[tokio::test]
    async fn a_reader_that_stopped_reading_cannot_grow_the_buffer_under_drop_oldest() {
        let (tx, rx) = new(4, LagPolicy::DropOldest);
        let text = "x".repeat(100);
        for _ in 0..10_000 {
            send(&tx, &text);
        }
        let held = tx.shared.state().bytes.len();
        assert!(held <= 2 * 4 * 100, "{held} bytes held for 4 queued messages");
        tx.push(WsMessage::text("shared"));
        send(&tx, "last");
        assert_eq!(batch(&rx).await, [text.as_str(), text.as_str(), "shared", "last"]);
    }

    #[tokio::test]
    async fn a_failed_encode_queues_nothing_and_a_full_queue_does_not_encode() {
        let (tx, rx) = new(2, LagPolicy::DropNew);
        send(&tx, "a");
        let failed = tx.push_encoded(|queueing| {
            queueing.bytes().extend_from_slice(b"half a messa");
            Err("serde failed")
        });
        assert_eq!(failed.unwrap_err(), "serde failed");
        send(&tx, "b");
        let full = tx.push_encoded(|_| -> Result<(), Infallible> { unreachable!("not encoded") });
        assert_eq!(full.unwrap(), Pushed::DroppedNew);
        assert_eq!(batch(&rx).await, ["a", "b"], "the failed bytes are gone");
    }

    #[tokio::test]
    async fn a_failed_encode_undoes_what_it_queued_and_drops_nothing_under_drop_oldest() {
        let (tx, rx) = new(2, LagPolicy::DropOldest);
        send(&tx, "a");
        send(&tx, "b");
        // Queued, then failed (a size check after the encode, say).
        let failed = tx.push_encoded(|queueing| {
            let at = queueing.bytes().len();
            queueing.bytes().extend_from_slice(b"too big");
            queueing.encoded(at, FrameKind::Text);
            Err("too big")
        });
        assert_eq!(failed.unwrap_err(), "too big");
        // A codec that wrongly cut the bytes short: earlier payloads keep their length.
        let cut = tx.push_encoded(|queueing| {
            queueing.bytes().truncate(1);
            Err("changed bytes it did not append")
        });
        assert!(cut.is_err());
        assert_eq!(rx.take_lagged(), 0, "nothing was dropped");
        assert_eq!(
            batch(&rx).await.len(),
            2,
            "the oldest stays, and the batch is in bounds"
        );
        send(&tx, "c");
        assert_eq!(batch(&rx).await, ["c"]);
    }

    #[test]
    fn an_idle_connection_keeps_no_byte_buffer() {
        fn poll_batch(rx: &OutboxReceiver, batch: &mut Batch) -> Poll<bool> {
            let next = std::pin::pin!(rx.next_batch(batch));
            next.poll(&mut Context::from_waker(std::task::Waker::noop()))
        }
        let (tx, rx) = new(8, LagPolicy::DropNew);
        let mut writing = Batch::default();
        for text in ["a", "b"] {
            send(&tx, text);
            assert_eq!(poll_batch(&rx, &mut writing), Poll::Ready(true));
            writing.frames.clear(); // written
        }
        assert!(writing.bytes.capacity() > 0, "a busy connection keeps its buffers");
        assert!(poll_batch(&rx, &mut writing).is_pending());
        assert_eq!(writing.bytes.capacity(), 0);
        assert_eq!(tx.shared.state().bytes.capacity(), 0);
    }

    // -- A session's slots.

    fn session(per_slot: usize, max_queued_bytes: usize, max_frame: usize) -> (OutboxSender, OutboxReceiver) {
        let limits = SessionLimits {
            per_slot,
            max_queued_bytes,
            max_frame,
        };
        session_outbox(limits, Arc::default())
    }

    /// Queues one of the session's own messages, as its task does.
    fn reply(rx: &OutboxReceiver, text: &str) -> bool {
        let queued = rx.push_reply(|bytes| {
            bytes.extend_from_slice(text.as_bytes());
            Ok::<_, Infallible>(())
        });
        queued.unwrap_or_else(|never| match never {})
    }

    /// Makes a pending slot live behind its `subscribe` reply `text`.
    fn release(rx: &OutboxReceiver, slot: SlotId, text: &str) -> bool {
        let released = rx.release_slots(&[slot], |bytes| {
            bytes.extend_from_slice(text.as_bytes());
            Ok::<_, Infallible>(())
        });
        released.unwrap_or_else(|never| match never {})
    }

    fn push(tx: &OutboxSender, slot: SlotId, text: &str) -> Pushed {
        tx.push_slot(slot, WsMessage::text(text))
    }

    fn queued_bytes(tx: &OutboxSender) -> usize {
        tx.shared.state().session.as_ref().map_or(0, |slots| slots.queued_bytes)
    }

    #[tokio::test]
    async fn a_pending_slot_holds_its_pushes_until_its_reply_and_releases_them_behind_it() {
        let (tx, rx) = session(8, 1 << 20, 1 << 20);
        let lobby = rx.open_slot("Room", LagPolicy::DropNew);
        let other = rx.open_slot("Room", LagPolicy::DropNew);
        assert_ne!(lobby, other);
        assert!(release(&rx, other, r#"{"id":1,"subscribe":{}}"#));
        assert_eq!(push(&tx, lobby, "p1"), Pushed::Queued, "held counts as queued");
        assert_eq!(push(&tx, lobby, "p2"), Pushed::Queued);
        assert_eq!(push(&tx, other, "o1"), Pushed::Queued);
        assert_eq!(rx.queued(), 2, "the held pushes are not in the queue");
        assert!(reply(&rx, r#"{"id":2,"publish":{}}"#));
        assert!(release(&rx, lobby, r#"{"id":3,"subscribe":{}}"#));
        assert_eq!(push(&tx, lobby, "p3"), Pushed::Queued);
        assert_eq!(
            batch(&rx).await,
            [
                r#"{"id":1,"subscribe":{}}"#,
                "o1",
                "{\"id\":2,\"publish\":{}}\n{\"id\":3,\"subscribe\":{}}",
                "p1",
                "p2",
                "p3"
            ]
        );
    }

    #[test]
    fn held_pushes_do_not_wake_the_writer_and_their_release_does() {
        fn poll_batch(rx: &OutboxReceiver, waker: &Waker) -> Poll<bool> {
            let mut batch = Batch::default();
            let next = std::pin::pin!(rx.next_batch(&mut batch));
            next.poll(&mut Context::from_waker(waker))
        }
        let (tx, rx) = session(8, 1 << 20, 1 << 20);
        let (wakes, waker) = WakeCount::new();
        let slot = rx.open_slot("Room", LagPolicy::DropNew);
        assert!(poll_batch(&rx, &waker).is_pending());
        push(&tx, slot, "held");
        assert_eq!(wakes.get(), 0, "nothing to write yet");
        release(&rx, slot, "{}");
        assert_eq!(wakes.get(), 1);
        assert!(poll_batch(&rx, &waker).is_ready());
        assert!(poll_batch(&rx, &waker).is_pending());
        push(&tx, slot, "live");
        assert_eq!(wakes.get(), 2, "a live slot's push into an empty queue wakes it");
    }

    #[tokio::test]
    async fn a_closed_slots_id_reaches_nothing_once_its_index_is_reused() {
        let (tx, rx) = session(4, 1 << 20, 1 << 20);
        let old = rx.open_slot("Room", LagPolicy::DropNew);
        release(&rx, old, "{}");
        rx.close_slot(old);
        let new = rx.open_slot("Room", LagPolicy::DropNew);
        release(&rx, new, "{}");
        assert_ne!(old, new, "the same index, another generation");
        assert_eq!(push(&tx, old, "stale"), Pushed::Closed);
        assert!(tx.is_slot_ended(old));
        let end = SlotEnd {
            code: 2000,
            reason: "stale".to_owned(),
        };
        assert!(!tx.end_slot(old, end), "a stale handle cannot end the new subscription");
        assert!(!tx.is_slot_ended(new));
        assert_eq!(push(&tx, new, "fresh"), Pushed::Queued);
        assert_eq!(batch(&rx).await, ["{}\n{}", "fresh"]);
    }

    #[tokio::test]
    async fn a_slot_ended_by_its_subscription_is_reported_once_live() {
        let (tx, rx) = session(4, 1 << 20, 1 << 20);
        let slot = rx.open_slot("Room", LagPolicy::DropNew);
        assert_eq!(push(&tx, slot, "held"), Pushed::Queued);
        let end = SlotEnd {
            code: 2000,
            reason: "bye".to_owned(),
        };
        assert!(!tx.is_slot_ended(slot));
        assert!(tx.end_slot(slot, end.clone()));
        assert!(!tx.end_slot(slot, end.clone()), "only the first end counts");
        assert!(tx.is_slot_ended(slot));
        assert_eq!(push(&tx, slot, "late"), Pushed::Closed);
        assert_eq!(rx.take_slot_events(), [], "not before its subscribe reply");
        release(&rx, slot, r#"{"id":2,"subscribe":{}}"#);
        assert_eq!(
            rx.take_slot_events(),
            [SlotEvent {
                slot,
                dropped: 0,
                ended: Some(end)
            }]
        );
        assert_eq!(rx.take_slot_events(), [], "reported once");
        assert_eq!(
            batch(&rx).await,
            [r#"{"id":2,"subscribe":{}}"#, "held"],
            "what it sent before its close still goes out"
        );
    }

    #[tokio::test]
    async fn each_lag_policy_applies_to_its_own_slot_and_leaves_the_others_alone() {
        let (tx, rx) = session(2, 1 << 20, 1 << 20);
        let mut reader = Looking::new();
        assert!(reader.look(&rx).is_pending());
        let new = rx.open_slot("New", LagPolicy::DropNew);
        let old = rx.open_slot("Old", LagPolicy::DropOldest);
        let gone = rx.open_slot("Gone", LagPolicy::Disconnect);
        let calm = rx.open_slot("Calm", LagPolicy::Disconnect);
        for slot in [new, old, gone, calm] {
            release(&rx, slot, "{}");
        }
        assert_eq!(batch(&rx).await, ["{}\n{}\n{}\n{}"]);
        let mut outcomes = Vec::new();
        for n in 0..3 {
            for (slot, name) in [(new, "n"), (old, "o"), (gone, "g")] {
                outcomes.push(push(&tx, slot, &format!("{name}{n}")));
            }
        }
        use Pushed::*;
        assert_eq!(
            outcomes,
            [
                Queued,
                Queued,
                Queued,
                Queued,
                Queued,
                Queued,
                DroppedNew,
                DroppedOldest,
                Disconnected
            ]
        );
        assert_eq!(push(&tx, gone, "g3"), Closed, "an ended slot takes nothing more");
        assert_eq!(push(&tx, calm, "c0"), Queued, "another slot is not affected");
        assert!(!tx.is_closing(), "and the session stays");
        assert!(reader.look(&rx).is_ready(), "the drops call the task's attention");
        let insufficient = Some(SlotEnd {
            code: 2500,
            reason: "insufficient state".to_owned(),
        });
        assert_eq!(
            rx.take_slot_events(),
            [
                SlotEvent {
                    slot: new,
                    dropped: 1,
                    ended: None
                },
                SlotEvent {
                    slot: old,
                    dropped: 1,
                    ended: None
                },
                SlotEvent {
                    slot: gone,
                    dropped: 1,
                    ended: insufficient
                },
            ]
        );
        assert_eq!(rx.take_slot_events(), [], "each reported once");
        let counters = &tx.shared.counters;
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(counters.lag_disconnects.load(Ordering::Relaxed), 1);
        assert_eq!(
            batch(&rx).await,
            ["n0", "g0", "n1", "o1", "g1", "o2", "c0"],
            "the ended slot's queued pushes still go out (its unsubscribe goes after them)"
        );
        assert_eq!(push(&tx, new, "n3"), Queued, "a written batch makes room in every slot");
        assert_eq!(push(&tx, old, "o3"), Queued);
    }

    #[tokio::test]
    async fn a_pending_slot_applies_its_policy_to_what_it_holds() {
        let (tx, rx) = session(2, 1 << 20, 1 << 20);
        let old = rx.open_slot("Old", LagPolicy::DropOldest);
        let gone = rx.open_slot("Gone", LagPolicy::Disconnect);
        for n in 1..=3 {
            push(&tx, old, &format!("o{n}"));
            push(&tx, gone, &format!("g{n}"));
        }
        assert_eq!(queued_bytes(&tx), 4, "o2, o3 held; g1, g2 dropped with their slot");
        release(&rx, old, "A");
        release(&rx, gone, "B");
        assert_eq!(batch(&rx).await, ["A", "o2", "o3", "B"]);
    }

    #[tokio::test]
    async fn the_byte_bound_closes_the_session_with_3008_and_replies_count_toward_it() {
        let (tx, rx) = session(100, 10, 1 << 20);
        let slot = rx.open_slot("Room", LagPolicy::DropOldest);
        release(&rx, slot, "{}");
        assert_eq!(push(&tx, slot, "abcd"), Pushed::Queued);
        assert_eq!(batch(&rx).await, ["{}", "abcd"]);
        assert_eq!(
            push(&tx, slot, "abcdef"),
            Pushed::Queued,
            "a written batch frees its bytes"
        );
        assert_eq!(push(&tx, slot, "xyz"), Pushed::Queued);
        assert_eq!(push(&tx, slot, "z"), Pushed::Queued, "10 bytes: at the bound");
        assert_eq!(
            push(&tx, slot, "z"),
            Pushed::Disconnected,
            "11 bytes: over, whatever the slot's policy"
        );
        let close = rx.close_frame().expect("closing");
        assert_eq!((u16::from(close.code), close.reason.as_str()), (3008, "slow"));
        assert_eq!(push(&tx, slot, "z"), Pushed::Closed);
        assert_eq!(tx.shared.counters.lag_disconnects.load(Ordering::Relaxed), 1);
        assert_eq!(batch(&rx).await, ["abcdef", "xyz", "z"]);

        // A reply is never dropped: it is queued, and then the session closes.
        let (_tx, rx) = session(100, 10, 1 << 20);
        assert!(reply(&rx, "12345678"));
        assert!(reply(&rx, "123"));
        assert_eq!(rx.close_frame().map(|close| u16::from(close.code)), Some(3008));
        assert!(!reply(&rx, "late"), "nothing after the close");
        assert_eq!(batch(&rx).await, ["12345678\n123"]);
    }

    #[tokio::test]
    async fn replies_join_up_to_the_frame_limit_and_pushes_stay_alone() {
        let (tx, rx) = session(1, 1 << 20, 9);
        let slot = rx.open_slot("Room", LagPolicy::DropNew);
        assert!(release(&rx, slot, "aaaa"));
        reply(&rx, "bbbb");
        reply(&rx, "cccc");
        push(&tx, slot, "push");
        reply(&rx, "dddd");
        reply(&rx, &"e".repeat(20));
        reply(&rx, "ff");
        let failed = rx.push_reply(|bytes| {
            bytes.extend_from_slice(b"half a rep");
            Err("serde failed")
        });
        assert_eq!(failed, Err("serde failed"));
        reply(&rx, "gg");
        for n in 0..20 {
            assert!(reply(&rx, &n.to_string()), "replies are never dropped");
        }
        assert_eq!(
            batch(&rx).await,
            [
                "aaaa\nbbbb",
                "cccc",
                "push",
                "dddd",
                "eeeeeeeeeeeeeeeeeeee",
                "ff\ngg\n0\n1",
                "2\n3\n4\n5\n6",
                "7\n8\n9\n10",
                "11\n12\n13",
                "14\n15\n16",
                "17\n18\n19"
            ]
        );
        reply(&rx, "hh");
        assert_eq!(batch(&rx).await, ["hh"], "a written frame is not joined to");
    }

    #[tokio::test]
    async fn a_closed_slot_refuses_pushes_and_its_number_starts_empty_when_reused() {
        let (tx, rx) = session(1, 1 << 20, 1 << 20);
        let a = rx.open_slot("A", LagPolicy::DropOldest);
        release(&rx, a, "r1");
        assert_eq!(push(&tx, a, "a1"), Pushed::Queued);
        rx.close_slot(a);
        assert_eq!(push(&tx, a, "a2"), Pushed::Closed);
        let b = rx.open_slot("B", LagPolicy::DropOldest);
        assert_eq!(b.index, a.index, "the lowest free index");
        assert_ne!(b, a, "another generation");
        assert_eq!(push(&tx, b, "b1"), Pushed::Queued, "pending, and empty");
        release(&rx, b, "r2");
        assert_eq!(push(&tx, b, "b2"), Pushed::DroppedOldest);
        assert_eq!(
            batch(&rx).await,
            ["r1", "a1", "r2", "b2"],
            "its own oldest dropped, not the closed slot's"
        );
    }

    #[test]
    fn an_ended_session_outbox_refuses_everything() {
        let (tx, rx) = session(8, 1 << 20, 1 << 20);
        let slot = rx.open_slot("Room", LagPolicy::DropNew);
        push(&tx, slot, "held");
        rx.end();
        assert_eq!(push(&tx, slot, "a"), Pushed::Closed);
        assert!(!reply(&rx, "{}"));
        assert!(!release(&rx, slot, "{}"));
        assert_eq!(queued_bytes(&tx), 0);
    }

    #[test]
    fn reserved_codes_are_sent_as_1000() {
        let (tx, rx) = new(1, LagPolicy::Disconnect);
        tx.request_close(CloseCode::Abnormal, "");
        assert_eq!(rx.close_frame().unwrap().code, CloseCode::Normal);
    }
}
