//! The reading half of a connection task: frames in, limits and liveness applied, messages
//! decoded, validated and dispatched to the handler, one at a time and in order.

use crate::metrics::{Count, Stopwatch};

use std::future::Future;
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

use super::config::Config;
use super::conn::{CloseInfo, Conn, Lagged};
use super::guard;
use super::handler::{Handler, MessageArgs};
use super::limits::{RateLimitAction, TokenBucket};
use super::liveness::{Clocks, Due};
use super::running::{Outcome, Running};
use crate::channel::Channel;
use crate::codec::{self, Inbound};
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
fn no_status() -> CloseFrame {
    CloseFrame {
        code: CloseCode::Status,
        reason: "".into(),
    }
}

/// How many frames already read are handled in one turn of the read loop.
const DRAIN: usize = 32;

pub(crate) struct Reader<'a, C: Channel, S, D> {
    handler: &'a Handler<C, S, D>,
    conn: &'a Conn<C, S, D>,
    config: &'a Config,
    outbox: &'a OutboxReceiver,
    expires: Option<Instant>,
    /// Messages received since the shared counter was last told, which it is once per turn
    /// of the read loop: an atomic add on a counter every connection shares costs more, per
    /// message, than this reader's own load and store. (Atomic only so the reader stays
    /// `Sync`; no other thread touches it.)
    received: AtomicU64,
}

impl<'a, C, S, D> Reader<'a, C, S, D>
where
    C: Channel,
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
{
    pub(crate) fn new(
        handler: &'a Handler<C, S, D>,
        conn: &'a Conn<C, S, D>,
        config: &'a Config,
        outbox: &'a OutboxReceiver,
        expires: Option<Instant>,
    ) -> Self {
        Self {
            handler,
            conn,
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
            let mut peer_close: Option<CloseFrame> = None;
            // Boxed: most connections have no rate limit, and this future lives as long as they do.
            let mut bucket = self.config.rate_limit.map(|limit| Box::new(TokenBucket::new(limit)));
            let mut clocks = Clocks::new(self.config.liveness, self.expires);
            // One timer for whatever is due next (a ping, the idle limit, the close reply), reset
            // rather than recreated: pushing a deadline later does not touch the timer wheel.
            // Made when first needed: a connection with no clock running holds none.
            let mut timer: Option<Pin<Box<Sleep>>> = None;
            let mut armed: Option<Instant> = None;
            // The waker the outbox holds to call this loop's attention (see `poll_attention`).
            let mut attention_waker: Option<Waker> = None;

            // The handler running now, if any: polled as a branch of the loop below, so the
            // connection's timers, signals and close deadline keep running while it awaits.
            let mut running: Running<MessageArgs<C, S, D>> = Running::default();
            // When it started, for the `metrics` feature.
            let mut stopwatch = None;
            if let Some(on_open) = &self.handler.callbacks.on_open {
                // Called inside the guarded future, so a panic in its synchronous part is caught.
                let (on_open, conn) = (on_open.clone(), self.conn.clone());
                running.start_other(Box::pin(async move { on_open(conn).await }));
                stopwatch = Some(self.started());
            }

            'read: loop {
                self.report_received();
                let (closing, queued) = self.outbox.pressure();
                if closing {
                    clocks.closing(self.config.close_timeout);
                }
                // Replies to a burst pile up while this task reads: let the writer (which what was
                // queued woke) drain them before they fill the queue.
                if queued >= self.config.outbound_queue.div_ceil(2) {
                    tokio::task::yield_now().await;
                }
                let next = clocks.next_deadline();
                if next != armed {
                    if let Some(deadline) = next {
                        match &mut timer {
                            Some(timer) => timer.as_mut().reset(deadline),
                            None => timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                        }
                    }
                    armed = next;
                }
                // The branches other than the stream's do their work and go round again; a frame
                // read leaves the `select!` (and its state) behind before it is handled, so what
                // the loop below keeps across its awaits is only its own.
                let mut item = tokio::select! {
                    // Handlers of a connection run one at a time, in order: no frame is read while
                    // one runs.
                    item = stream.next(), if !running.is_running() => item,
                    outcome = poll_fn(|cx| running.poll(cx)), if running.is_running() => {
                        self.finish(stopwatch.take(), outcome);
                        // A handler that waited: the connection may well be idle now.
                        running.release();
                        continue;
                    }
                    // A close was requested (by a handler, the hub, a server shutdown) or messages
                    // were dropped: the loop's head and `report_lag` look at which.
                    () = poll_fn(|cx| self.outbox.poll_attention(cx, &mut attention_waker)) => {
                        self.report_lag();
                        continue;
                    }
                    () = poll_fn(|cx| timer.as_mut().map_or(Poll::Pending, |timer| timer.as_mut().poll(cx))),
                        if armed.is_some() =>
                    {
                        armed = None;
                        match clocks.due(Instant::now()) {
                            Some(Due::Ping) => self.outbox.push_ping(),
                            // While a handler runs, nothing is read: the peer's pong and messages
                            // wait unread, so neither silence nor idleness can be told.
                            Some(Due::PingTimeout) if running.is_running() => clocks.heard(false),
                            Some(Due::Idle) if running.is_running() => clocks.heard(true),
                            Some(Due::PingTimeout) => self.conn.close(CloseCode::Away, "ping timeout"),
                            Some(Due::Idle) => self.conn.close(CloseCode::Away, "idle timeout"),
                            Some(Due::Expired) => self.conn.close(crate::CLOSE_CREDENTIALS_EXPIRED, "credentials expired"),
                            Some(Due::CloseReply) => break,
                            None => {}
                        }
                        continue;
                    }
                };
                let mut closing = closing;
                let mut handled = 0;
                loop {
                    let flow = self.on_item(
                        item,
                        closing,
                        &mut clocks,
                        bucket.as_deref_mut(),
                        &mut peer_close,
                        &mut running,
                    );
                    match flow {
                        Flow::Break => break 'read,
                        Flow::Continue => {}
                        Flow::Started => {
                            // Most handlers finish in their first poll: do that here, and leave
                            // only a waiting one to the loop.
                            let started = self.started();
                            match poll_fn(|cx| Poll::Ready(running.poll(cx))).await {
                                Poll::Ready(outcome) => self.finish(Some(started), outcome),
                                Poll::Pending => {
                                    stopwatch = Some(started);
                                    break;
                                }
                            }
                        }
                    }
                    // Frames already read are handled here, without arming every other branch
                    // again for each one; a bounded number, so timers and signals still get their
                    // turn. Polled with this task's waker: a `Pending` here leaves the stream ready
                    // to wake it.
                    handled += 1;
                    let queued;
                    (closing, queued) = self.outbox.pressure();
                    if handled == DRAIN || closing || queued >= self.config.outbound_queue.div_ceil(2) {
                        break;
                    }
                    // Each frame counts against the task's cooperative budget, as a trip through
                    // `select!` would: a client that keeps sending cannot keep this task from
                    // letting the others (the ones its broadcasts woke) run.
                    tokio::task::consume_budget().await;
                    match poll_fn(|cx| Poll::Ready(stream.poll_next_unpin(cx))).await {
                        Poll::Ready(next) => item = next,
                        Poll::Pending => {
                            // Nothing more to read for now: an idle connection keeps no runner.
                            running.release();
                            break;
                        }
                    }
                }
            }

            self.report_received();
            match (self.outbox.close_frame(), peer_close) {
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
    }

    /// Handles what the stream yielded: `Break` when the connection is over, `Run` with a
    /// handler to run before the next frame.
    fn on_item(
        &self,
        item: Option<Result<WsMessage, WsError>>,
        // Whether the connection was closing when the loop last looked.
        closing: bool,
        clocks: &mut Clocks,
        bucket: Option<&mut TokenBucket>,
        peer_close: &mut Option<CloseFrame>,
        running: &mut Running<MessageArgs<C, S, D>>,
    ) -> Flow {
        match item {
            None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => Flow::Break,
            Some(Err(WsError::Capacity(error))) => {
                self.report(&Error::WebSocket(WsError::Capacity(error)));
                self.conn.close(CloseCode::Size, "message too large");
                // The frame was not read to its end: the stream cannot be read further.
                Flow::Break
            }
            Some(Err(error)) => {
                // Tell the peer why when the socket still works (RFC 6455 §7.1.7).
                match &error {
                    // The peer vanished without a close: 1006, nobody to answer.
                    WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {}
                    WsError::Protocol(_) => self.conn.close(CloseCode::Protocol, "protocol error"),
                    WsError::Utf8(_) => self.conn.close(CloseCode::Invalid, "invalid UTF-8"),
                    _ => {}
                }
                self.report(&Error::WebSocket(error));
                Flow::Break
            }
            Some(Ok(frame)) => {
                clocks.heard(matches!(frame, WsMessage::Text(_) | WsMessage::Binary(_)));
                // Handlers are guarded on their own; this catches panics in the channel's own
                // code (a `Validate` or `ErrorReply` impl).
                match guard::catch_sync(|| self.on_frame(frame, closing, bucket, running)) {
                    Ok(Step::Started) => return Flow::Started,
                    Ok(Step::PeerClosed(frame)) => {
                        *peer_close = Some(frame);
                        // Nothing sent from now on could be delivered after tungstenite's close
                        // reply: sends fail at once, and the writer stops at its next poll.
                        self.outbox.end();
                    }
                    Ok(Step::Done) => {}
                    Err(panic) => {
                        self.report(&Error::HandlerPanicked(panic));
                        self.conn.close(CloseCode::Error, "internal error");
                    }
                }
                Flow::Continue
            }
        }
    }

    /// Decides what one frame means, without waiting: only a handler's future is awaited (by
    /// the caller), so no other state lives in the connection's future between frames.
    fn on_frame(
        &self,
        frame: WsMessage,
        closing: bool,
        bucket: Option<&mut TokenBucket>,
        running: &mut Running<MessageArgs<C, S, D>>,
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
        let callbacks = &self.handler.callbacks;
        // Binary frames are side-band bytes only where messages are text: on MessagePack and
        // raw channels they are the messages.
        if let (WsMessage::Binary(bytes), Some(on_binary), false) =
            (&frame, &callbacks.on_binary, <C::Codec as crate::Codec>::BINARY)
        {
            self.count_in();
            running.start_other(on_binary(self.conn.clone(), bytes.clone()));
            return Step::Started;
        }
        match codec::decode::<C, C::ClientMessage>(frame, C::validate_client) {
            Ok(Inbound::Message(message)) => {
                self.count_in();
                match &callbacks.on_message {
                    Some(make) => {
                        running.start_message(|| make(), (self.conn.clone(), message));
                        Step::Started
                    }
                    None => Step::Done,
                }
            }
            Ok(Inbound::Control) => Step::Done,
            Ok(Inbound::Close(frame)) => Step::PeerClosed(frame.unwrap_or_else(no_status)),
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
            self.conn.hub().counters().add(Count::MessagesIn, C::NAME, received);
        }
    }

    /// A message over the rate limit: close with 1013 (try again later), or drop it (with the channel's error
    /// reply, if it has one).
    fn rate_limited(&self, bucket: &mut TokenBucket, now: Instant) {
        self.conn.hub().counters().add(Count::RateLimited, C::NAME, 1);
        self.report(&Error::RateLimited);
        let action = self.config.rate_limit.map(|limit| limit.action()).unwrap_or_default();
        match action {
            RateLimitAction::Close => self.conn.close(CloseCode::Again, "rate limit exceeded"),
            RateLimitAction::Reply => {
                if let Some(reply) = C::on_invalid(&Error::RateLimited) {
                    match bucket.reply_due(now) {
                        true => self.send_reply(&reply),
                        false => self.reply_dropped(),
                    }
                }
            }
        }
    }

    fn reply_dropped(&self) {
        let counters = self.conn.hub().counters();
        counters.add(Count::ErrorRepliesDropped, C::NAME, 1);
    }

    /// The channel's invalid-input policy: reply with its error message, or close with 1007
    /// (undecodable), 1008 (failed validation) or 1009 (too large).
    fn reject_frame(&self, error: Error) {
        if let Some(reply) = C::on_invalid(&error) {
            self.send_reply(&reply);
            return;
        }
        let code = match error {
            Error::Validation { .. } => CloseCode::Policy,
            Error::MessageTooLarge { .. } => CloseCode::Size,
            // RFC 6455 §7.4.1: data of a type the endpoint cannot accept.
            Error::UnexpectedBinary { .. } | Error::UnexpectedText { .. } => CloseCode::Unsupported,
            _ => CloseCode::Invalid,
        };
        self.conn.close(code, &Report(&error).to_string());
    }

    /// Queues an error reply if the connection's queue has room: a reply never overflows (nor
    /// disconnects) the client it answers.
    fn send_reply(&self, reply: &C::ServerMessage) {
        match self.conn.offer_reply(reply) {
            Ok(true) => {}
            Ok(false) => self.reply_dropped(),
            Err(error) => self.report(&error),
        }
    }

    /// Times a handler that just started.
    fn started(&self) -> Stopwatch {
        self.conn.hub().counters().handler_started()
    }

    /// A handler finished: an error or a panic closes this connection with 1011.
    fn finish(&self, stopwatch: Option<Stopwatch>, outcome: Outcome) {
        if let Some(stopwatch) = stopwatch {
            self.conn.hub().counters().handler_ran(C::NAME, stopwatch);
        }
        let error = match outcome {
            Ok(Ok(())) => return,
            Ok(Err(error)) => Error::Handler(error),
            Err(panic) => Error::HandlerPanicked(guard::panic_message(panic.as_ref())),
        };
        self.report(&error);
        self.conn.close(CloseCode::Error, "internal error");
    }

    fn report_lag(&self) {
        let dropped = self.outbox.take_lagged();
        if dropped == 0 {
            return;
        }
        let lagged = Lagged {
            dropped,
            policy: C::LAG_POLICY,
        };
        match &self.handler.callbacks.on_lag {
            Some(on_lag) => guard::observe(C::NAME, "on_lag", || on_lag(self.conn, lagged)),
            None => tracing::debug!(channel = C::NAME, id = %self.conn.id(), dropped, "slow consumer"),
        }
    }

    fn report(&self, error: &Error) {
        match &self.handler.callbacks.on_error {
            Some(on_error) => guard::observe(C::NAME, "on_error", || on_error(self.conn, error)),
            None => match error {
                Error::Handler(_) | Error::HandlerPanicked(_) => {
                    tracing::warn!(channel = C::NAME, id = %self.conn.id(), error = %Escaped(Report(error)), "handler failed")
                }
                _ => {
                    tracing::debug!(channel = C::NAME, id = %self.conn.id(), error = %Escaped(Report(error)), "connection error")
                }
            },
        }
    }
}
