//! The reading half of a connection task: frames in, limits and liveness applied, messages
//! decoded, validated and dispatched to the handler, one at a time and in order.

use crate::metrics::{Count, Stopwatch};

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Poll, Waker};

use futures_util::StreamExt;
use futures_util::future::poll_fn;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use super::bound::Binding;
use super::config::Config;
use super::conn::{CloseInfo, Core};
use super::guard;
use super::limits::{RateLimitAction, TokenBucket};
use super::liveness::{Clocks, Due};
use super::running::{Outcome, Running};
use crate::codec;
use crate::error::{Error, Report};
use crate::log::Escaped;
use crate::outbox::OutboxReceiver;
use crate::transport::MessageStream;

/// What the reader does after one item of the stream.
enum Flow {
    Continue,
    /// The connection is over.
    Break,
    /// A handler started: run it to its end before reading on.
    Started,
}

/// What a frame asks of the reader.
enum Step {
    /// A handler started: run (and await) it.
    Started,
    /// The peer's close frame.
    PeerClosed(CloseFrame),
    /// Nothing more.
    Done,
}

/// A close frame without a status code, as the peer's close is recorded (1005).
pub(super) fn no_status() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Status,
        reason: "".into(),
    }
}

/// How a connection (or a session) ended: the server's close if it sent one, else the peer's,
/// else abnormally (1006).
pub(super) fn close_info(outbox: &OutboxReceiver, peer_close: Option<CloseFrame>) -> CloseInfo {
    match (outbox.close_frame(), peer_close) {
        (Some(frame), _) => CloseInfo {
            code: frame.code,
            reason: frame.reason.to_string(),
            by_server: true,
        },
        (None, Some(frame)) => CloseInfo {
            code: frame.code,
            reason: frame.reason.to_string(),
            by_server: false,
        },
        (None, None) => CloseInfo {
            code: CloseCode::Abnormal,
            reason: String::new(),
            by_server: false,
        },
    }
}

/// How many frames already read are handled in one turn of the read loop.
const DRAIN: usize = 32;

/// What the read loop keeps from turn to turn. It belongs to the loop, outside every branch of
/// its `select!`: a branch that loses the race loses none of it.
struct State {
    clocks: Clocks,
    /// Boxed: most connections have no rate limit, and this future lives as long as they do.
    bucket: Option<Box<TokenBucket>>,
    /// One timer for whatever is due next (a ping, the idle limit, the close reply), reset
    /// rather than recreated: pushing a deadline later does not touch the timer wheel. Made
    /// when first needed: a connection with no clock running holds none.
    timer: Option<Pin<Box<Sleep>>>,
    /// The deadline `timer` is set to, until it fires.
    armed: Option<Instant>,
    /// The waker the outbox holds to call this loop's attention (see `poll_attention`).
    attention_waker: Option<Waker>,
    /// The handler running now, if any: polled as a branch of the loop, so the connection's
    /// timers, signals and close deadline keep running while it awaits.
    running: Running,
    /// When it started, for the `metrics` feature.
    stopwatch: Option<Stopwatch>,
    /// The peer's close frame, once read.
    peer_close: Option<CloseFrame>,
}

impl State {
    /// Sets the timer to what the clocks say is due next, if that changed.
    #[inline]
    fn arm(&mut self) {
        let next = self.clocks.next_deadline();
        if next != self.armed {
            if let Some(deadline) = next {
                match &mut self.timer {
                    Some(timer) => timer.as_mut().reset(deadline),
                    None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
            }
            self.armed = next;
        }
    }
}

/// The reading half of one connection, compiled once for every channel: it reaches the
/// channel's types only through the connection's [`Binding`].
pub(crate) struct Reader<'a> {
    binding: &'a dyn Binding,
    /// The binding's, asked for once.
    core: &'a Core,
    /// The channel's name, asked for once.
    channel: &'static str,
    config: &'a Config,
    outbox: &'a OutboxReceiver,
    expires: Option<Instant>,
    /// Messages received since the shared counter was last told, which it is once per turn
    /// of the read loop: an atomic add on a counter every connection shares costs more, per
    /// message, than this reader's own load and store. (Atomic only so the reader stays
    /// `Sync`; no other thread touches it.)
    received: AtomicU64,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(
        binding: &'a dyn Binding,
        config: &'a Config,
        outbox: &'a OutboxReceiver,
        expires: Option<Instant>,
    ) -> Self {
        Self {
            binding,
            core: binding.core(),
            channel: binding.channel(),
            config,
            outbox,
            expires,
            received: AtomicU64::new(0),
        }
    }

    /// Reads until the connection has ended; returns how it ended.
    // Not an `async fn`, on purpose: see `task::run`.
    #[expect(clippy::manual_async_fn, reason = "an async fn keeps room for its arguments twice")]
    pub(crate) fn read_loop(self, stream: &'a mut (impl MessageStream + 'a)) -> impl Future<Output = CloseInfo> + 'a {
        async move {
            let mut state = self.open();
            'read: loop {
                let (closing, crowded) = self.look();
                if closing {
                    state.clocks.closing(self.config.close_timeout);
                }
                // Replies to a burst pile up while this task reads: let the writer (which what was
                // queued woke) drain them before they fill the queue.
                if crowded {
                    tokio::task::yield_now().await;
                }
                state.arm();
                // The branches other than the stream's do their work and go round again; a frame
                // read leaves the `select!` (and its state) behind before it is handled, so what
                // `read_on` keeps across its awaits is only its own.
                let item = tokio::select! {
                    // Handlers of a connection run one at a time, in order: no frame is read while
                    // one runs.
                    item = stream.next(), if !state.running.is_running() => item,
                    outcome = poll_fn(|cx| state.running.poll(cx)), if state.running.is_running() => {
                        self.on_handler_end(&mut state, outcome);
                        continue;
                    }
                    // A close was requested (by a handler, the hub, a server shutdown) or messages
                    // were dropped: the loop's head and `report_lag` look at which.
                    () = poll_fn(|cx| self.outbox.poll_attention(cx, &mut state.attention_waker)) => {
                        self.report_lag();
                        continue;
                    }
                    () = poll_fn(|cx| state.timer.as_mut().map_or(Poll::Pending, |timer| timer.as_mut().poll(cx))),
                        if state.armed.is_some() =>
                    {
                        match self.on_tick(&mut state) {
                            ControlFlow::Continue(()) => continue,
                            ControlFlow::Break(()) => break,
                        }
                    }
                };
                let flow = self.on_item(item, closing, &mut state);
                if let ControlFlow::Break(()) = self.read_on(flow, &mut state, stream).await {
                    break 'read;
                }
            }
            self.report_received();
            close_info(self.outbox, state.peer_close)
        }
    }

    /// The loop's state at the start, with `on_open` running if there is one.
    fn open(&self) -> State {
        let mut state = State {
            clocks: Clocks::new(self.config.liveness, self.expires),
            bucket: self.config.rate_limit.map(|limit| Box::new(TokenBucket::new(limit))),
            timer: None,
            armed: None,
            attention_waker: None,
            running: Running::default(),
            stopwatch: None,
            peer_close: None,
        };
        if self.binding.open(&mut state.running) {
            state.stopwatch = Some(self.started());
        }
        state
    }

    /// The head of each turn of the loop: tells the shared counters what was received, and
    /// returns whether the connection is closing and whether the outbox is crowded.
    #[inline]
    fn look(&self) -> (bool, bool) {
        self.report_received();
        let (closing, queued) = self.outbox.pressure();
        (closing, self.crowded(queued))
    }

    /// Whether `queued` messages are enough that the writer should drain them first.
    #[inline]
    fn crowded(&self, queued: usize) -> bool {
        queued >= self.config.outbound_queue.div_ceil(2)
    }

    /// A handler that waited has ended.
    fn on_handler_end(&self, state: &mut State, outcome: Outcome) {
        self.finish(state.stopwatch.take(), outcome);
        // A handler that waited: the connection may well be idle now.
        state.running.release();
    }

    /// The timer fired: does what the clocks say is due. Breaks when the peer's close reply
    /// is overdue.
    fn on_tick(&self, state: &mut State) -> ControlFlow<()> {
        state.armed = None;
        match state.clocks.due(Instant::now()) {
            Some(Due::Ping) => self.outbox.push_ping(),
            // While a handler runs, nothing is read: the peer's pong and messages wait unread,
            // so neither silence nor idleness can be told.
            Some(Due::PingTimeout) if state.running.is_running() => state.clocks.heard(false),
            Some(Due::Idle) if state.running.is_running() => state.clocks.heard(true),
            Some(Due::PingTimeout) => self.core.close(CloseCode::Away, "ping timeout"),
            Some(Due::Idle) => self.core.close(CloseCode::Away, "idle timeout"),
            Some(Due::Expired) => self.core.close(crate::CLOSE_CREDENTIALS_EXPIRED, "credentials expired"),
            Some(Due::CloseReply) => return ControlFlow::Break(()),
            None => {}
        }
        ControlFlow::Continue(())
    }

    /// After a frame (`flow`, as `on_item` handled it): runs the handler it started, then
    /// handles the frames already read behind it, without arming every other branch of the
    /// loop again for each one. Breaks when the connection is over.
    // Not an `async fn`, on purpose: see `task::run`.
    #[expect(clippy::manual_async_fn, reason = "an async fn keeps room for its arguments twice")]
    fn read_on<'s, M: MessageStream>(
        &'s self,
        mut flow: Flow,
        state: &'s mut State,
        stream: &'s mut M,
    ) -> impl Future<Output = ControlFlow<()>> + 's {
        async move {
            let mut handled = 0;
            loop {
                match flow {
                    Flow::Break => return ControlFlow::Break(()),
                    Flow::Continue => {}
                    Flow::Started => {
                        // Most handlers finish in their first poll: do that here, and leave
                        // only a waiting one to the loop.
                        let started = self.started();
                        match poll_fn(|cx| Poll::Ready(state.running.poll(cx))).await {
                            Poll::Ready(outcome) => self.finish(Some(started), outcome),
                            Poll::Pending => {
                                state.stopwatch = Some(started);
                                return ControlFlow::Continue(());
                            }
                        }
                    }
                }
                // Frames already read are handled here, a bounded number, so timers and signals
                // still get their turn. Polled with this task's waker: a `Pending` here leaves
                // the stream ready to wake it.
                handled += 1;
                let (closing, queued) = self.outbox.pressure();
                if handled == DRAIN || closing || self.crowded(queued) {
                    return ControlFlow::Continue(());
                }
                // Each frame counts against the task's cooperative budget, as a trip through
                // `select!` would: a client that keeps sending cannot keep this task from
                // letting the others (the ones its broadcasts woke) run.
                tokio::task::consume_budget().await;
                match poll_fn(|cx| Poll::Ready(stream.poll_next_unpin(cx))).await {
                    Poll::Ready(item) => flow = self.on_item(item, closing, state),
                    Poll::Pending => {
                        // Nothing more to read for now: an idle connection keeps no runner.
                        state.running.release();
                        return ControlFlow::Continue(());
                    }
                }
            }
        }
    }

    /// Handles what the stream yielded: `Break` when the connection is over, `Started` with a
    /// handler to run before the next frame.
    fn on_item(
        &self,
        item: Option<Result<WsMessage, WsError>>,
        // Whether the connection was closing when the loop last looked.
        closing: bool,
        state: &mut State,
    ) -> Flow {
        match item {
            None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => Flow::Break,
            Some(Err(WsError::Capacity(error))) => {
                self.report(&Error::WebSocket(WsError::Capacity(error)));
                self.core.close(CloseCode::Size, "message too large");
                // The frame was not read to its end: the stream cannot be read further.
                Flow::Break
            }
            Some(Err(error)) => {
                // Tell the peer why when the socket still works (RFC 6455 §7.1.7).
                match &error {
                    // The peer vanished without a close: 1006, nobody to answer.
                    WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {}
                    WsError::Protocol(_) => self.core.close(CloseCode::Protocol, "protocol error"),
                    WsError::Utf8(_) => self.core.close(CloseCode::Invalid, "invalid UTF-8"),
                    _ => {}
                }
                self.report(&Error::WebSocket(error));
                Flow::Break
            }
            Some(Ok(frame)) => {
                state
                    .clocks
                    .heard(matches!(frame, WsMessage::Text(_) | WsMessage::Binary(_)));
                // Handlers are guarded on their own; this catches panics in the channel's own
                // code (a `Validate` or `ErrorReply` impl).
                let (bucket, running) = (state.bucket.as_deref_mut(), &mut state.running);
                match guard::catch_sync(|| self.on_frame(frame, closing, bucket, running)) {
                    Ok(Step::Started) => return Flow::Started,
                    Ok(Step::PeerClosed(frame)) => {
                        state.peer_close = Some(frame);
                        // Nothing sent from now on could be delivered after tungstenite's close
                        // reply: sends fail at once, and the writer stops at its next poll.
                        self.outbox.end();
                    }
                    Ok(Step::Done) => {}
                    Err(panic) => {
                        self.report(&Error::HandlerPanicked(panic));
                        self.core.close(CloseCode::Error, "internal error");
                    }
                }
                Flow::Continue
            }
        }
    }

    /// Decides what one frame means, without waiting: only a handler's future is awaited (by
    /// the caller), so no other state lives in the connection's future between frames.
    // Inline: once per message, from its one caller; whether the compiler does so unasked
    // changes with unrelated edits to the crate.
    #[inline]
    fn on_frame(
        &self,
        frame: WsMessage,
        closing: bool,
        bucket: Option<&mut TokenBucket>,
        running: &mut Running,
    ) -> Step {
        if closing {
            // Closing: the peer's messages are no longer dispatched, only its close reply counts.
            return match frame {
                WsMessage::Close(frame) => Step::PeerClosed(frame.unwrap_or_else(no_status)),
                _ => Step::Done,
            };
        }
        let data = matches!(frame, WsMessage::Text(_) | WsMessage::Binary(_));
        if let (true, Some(bucket)) = (data, bucket) {
            let now = Instant::now();
            if !bucket.take(now) {
                self.rate_limited(bucket, now);
                return Step::Done;
            }
        }
        let size = codec::payload_len(&frame);
        if size > self.config.max_message_size {
            let error = Error::MessageTooLarge {
                size,
                max: self.config.max_message_size,
            };
            self.report(&error);
            self.reject_frame(error);
            return Step::Done;
        }
        match frame {
            WsMessage::Text(_) | WsMessage::Binary(_) => {}
            WsMessage::Close(frame) => return Step::PeerClosed(frame.unwrap_or_else(no_status)),
            // Answered (pings) or checked (pongs) by the transport already.
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => return Step::Done,
        }
        match self.binding.dispatch(frame, running) {
            Ok(started) => {
                self.count_in();
                match started {
                    true => Step::Started,
                    false => Step::Done,
                }
            }
            Err(error) => {
                self.report(&error);
                self.reject_frame(error);
                Step::Done
            }
        }
    }

    fn count_in(&self) {
        let received = self.received.load(Ordering::Relaxed);
        self.received.store(received + 1, Ordering::Relaxed);
    }

    /// Adds the messages received since the last report to the shared counters.
    fn report_received(&self) {
        let received = self.received.load(Ordering::Relaxed);
        if received > 0 {
            self.received.store(0, Ordering::Relaxed);
            self.core.hub.counters().add(Count::MessagesIn, self.channel, received);
        }
    }

    /// A message over the rate limit: close with 1013 (try again later), or drop it (with the channel's error
    /// reply, if it has one).
    fn rate_limited(&self, bucket: &mut TokenBucket, now: Instant) {
        self.core.hub.counters().add(Count::RateLimited, self.channel, 1);
        self.report(&Error::RateLimited);
        let action = self.config.rate_limit.map(|limit| limit.action()).unwrap_or_default();
        match action {
            RateLimitAction::Close => self.core.close(CloseCode::Again, "rate limit exceeded"),
            RateLimitAction::Reply => {
                if let Some(reply) = self.binding.error_reply(&Error::RateLimited) {
                    match bucket.reply_due(now) {
                        true => self.send_reply(reply),
                        false => self.reply_dropped(),
                    }
                }
            }
        }
    }

    fn reply_dropped(&self) {
        let counters = self.core.hub.counters();
        counters.add(Count::ErrorRepliesDropped, self.channel, 1);
    }

    /// The channel's invalid-input policy: reply with its error message, or close with 1007
    /// (undecodable), 1008 (failed validation) or 1009 (too large).
    fn reject_frame(&self, error: Error) {
        if let Some(reply) = self.binding.error_reply(&error) {
            self.send_reply(reply);
            return;
        }
        let code = match error {
            Error::Validation { .. } => CloseCode::Policy,
            Error::MessageTooLarge { .. } => CloseCode::Size,
            // RFC 6455 §7.4.1: data of a type the endpoint cannot accept.
            Error::UnexpectedBinary { .. } | Error::UnexpectedText { .. } => CloseCode::Unsupported,
            _ => CloseCode::Invalid,
        };
        self.core.close(code, &Report(&error).to_string());
    }

    /// Queues an error reply if the connection's queue has room: a reply never overflows (nor
    /// disconnects) the client it answers.
    fn send_reply(&self, reply: Result<WsMessage, Error>) {
        match reply.map(|frame| self.core.outbox.offer(frame)) {
            Ok(true) => {}
            Ok(false) => self.reply_dropped(),
            Err(error) => self.report(&error),
        }
    }

    /// Times a handler that just started.
    fn started(&self) -> Stopwatch {
        self.core.hub.counters().handler_started()
    }

    /// A handler finished: an error or a panic closes this connection with 1011.
    fn finish(&self, stopwatch: Option<Stopwatch>, outcome: Outcome) {
        if let Some(stopwatch) = stopwatch {
            self.core.hub.counters().handler_ran(self.channel, stopwatch);
        }
        let error = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(error)) => Error::Handler(error),
            Err(panic) => Error::HandlerPanicked(guard::panic_message(panic.as_ref())),
        };
        self.report(&error);
        self.core.close(CloseCode::Error, "internal error");
    }

    fn report_lag(&self) {
        let dropped = self.outbox.take_lagged();
        if dropped == 0 {
            return;
        }
        if !self.binding.on_lag(dropped) {
            tracing::debug!(channel = self.channel, id = %self.core.id, dropped, "slow consumer");
        }
    }

    fn report(&self, error: &Error) {
        if self.binding.on_error(error) {
            return;
        }
        match error {
            Error::Handler(_) | Error::HandlerPanicked(_) => {
                tracing::warn!(channel = self.channel, id = %self.core.id, error = %Escaped(Report(error)), "handler failed")
            }
            _ => {
                tracing::debug!(channel = self.channel, id = %self.core.id, error = %Escaped(Report(error)), "connection error")
            }
        }
    }
}
