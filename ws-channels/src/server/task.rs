//! The connection task: one task per connection drives both the reader (decode, limits,
//! liveness, dispatch) and the writer (drain the outbox in batches, one flush per batch), over
//! a tungstenite socket of its own (`socket`) whose data frames the writer frames itself
//! (`framing`).
//!
//! One task rather than a reader task and a writer task: a reply queued while handling a
//! message is written by the same task as soon as reading would block, without waking a
//! second task, and an idle connection costs one task. The writer is polled whenever it has
//! woken, so it still writes while a handler awaits; each half is polled only then (see
//! [`drive`]).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::future::poll_fn;
use futures_util::task::AtomicWaker;
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tracing::Instrument;

use super::config::Config;
use super::conn::{CloseInfo, Conn, ConnInner};
use super::guard;
use super::handler::Handler;
use super::limits::Slot;
use super::reader::Reader;
use crate::channel::Channel;
use crate::conn_id::ConnId;
use crate::hub::Hub;
use crate::log::Escaped;
use crate::metrics::{Count, Counters};
use crate::outbox::{Batch, OutboxReceiver, outbox};
use crate::transport::MessageStream;

use super::framing;
use super::socket::Socket;

/// A connection's transport, boxed so one type-erased session serves every front end (TCP,
/// TLS, an axum upgrade, an in-memory pipe): a [`Socket`], whose writer appends data frames
/// itself (see `framing`).
pub(crate) trait Transport: MessageStream + Send + 'static {
    /// Writes `frames` in order and flushes (see [`framing::poll_write_frames`]).
    fn poll_write_frames(&mut self, batch: &mut Batch, cx: &mut Context<'_>) -> Poll<Result<(), WsError>>;
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for Socket<IO> {
    fn poll_write_frames(&mut self, batch: &mut Batch, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        framing::poll_write_frames(self, batch, cx)
    }
}

/// A boxed [`Transport`].
pub(crate) struct BoxedTransport(Box<dyn Transport>);

impl BoxedTransport {
    pub(crate) fn new(transport: impl Transport) -> Self {
        Self(Box::new(transport))
    }
}

impl Stream for BoxedTransport {
    type Item = Result<WsMessage, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_next_unpin(cx)
    }
}

/// One transport, shared by the reader and the writer of its connection task:
/// `&SharedTransport` is the reader's stream, and the writer takes it for each poll of a batch.
/// Both are polled by that one task, one at a time, never across an `await`, so the lock is
/// never contended; it only lets both borrow the transport. (`StreamExt::split` would allocate
/// a shared lock, take it for every frame written, and keep room for a message in its sink
/// half, in every connection's task.)
struct SharedTransport(Mutex<BoxedTransport>);

impl SharedTransport {
    fn new(transport: BoxedTransport) -> Self {
        Self(Mutex::new(transport))
    }

    fn lock(&self) -> MutexGuard<'_, BoxedTransport> {
        // A panic while polling the transport ends the task that holds it anyway.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes `frames` in order and flushes, the transport taken for this one poll.
    fn poll_write(&self, batch: &mut Batch, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.lock().0.poll_write_frames(batch, cx)
    }
}

impl Stream for &SharedTransport {
    type Item = Result<WsMessage, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.lock().poll_next_unpin(cx)
    }
}

/// Everything a connection task needs besides its handler, built once when its handshake is
/// accepted.
pub(crate) struct ConnEnv<S> {
    pub(crate) id: ConnId,
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) state: Arc<S>,
    pub(crate) hub: Hub,
    pub(crate) config: Arc<Config>,
    /// The connection-limit slot taken at the handshake, freed when the connection ends.
    pub(crate) slot: Slot,
    /// When its credentials expire (`Handshake::expire_at`).
    pub(crate) expires: Option<tokio::time::Instant>,
}

/// A connection accepted but not yet upgraded: already a member of the hub (its own id and
/// its address's topic), so that once the client has the 101 it receives everything published
/// to its address. Dropping it without [`run`]ning it (the 101 could not be written, the upgrade
/// failed) detaches it again and frees its limit slot.
pub(crate) struct Registered<C: Channel, S, D> {
    handler: Arc<Handler<C, S, D>>,
    registration: Registration<C, S, D>,
    config: Arc<Config>,
    expires: Option<tokio::time::Instant>,
    span: tracing::Span,
}

/// Registers an accepted connection with the hub, before its 101 is written.
pub(crate) fn register<C, S, D>(
    handler: Arc<Handler<C, S, D>>,
    params: C::Params,
    // The params' `Display`, formatted once at the handshake.
    address: Arc<str>,
    data: D,
    env: ConnEnv<S>,
) -> Registered<C, S, D>
where
    C: Channel,
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
{
    // Never the query string (tokens travel there): the channel, its address and the peer.
    let span = tracing::info_span!(
        "ws_conn",
        channel = C::NAME,
        %address,
        id = %env.id,
        remote_addr = ?env.remote_addr,
    );
    let ConnEnv {
        id,
        remote_addr,
        state,
        hub,
        config,
        slot,
        expires,
    } = env;
    let counters = hub.counters().clone();
    let (sender, receiver) = outbox(C::NAME, config.outbound_queue, C::LAG_POLICY, counters);
    hub.attach::<C>(id, sender.clone());
    hub.join(id, &address);
    let conn = Conn::new(
        ConnInner {
            id,
            params,
            address,
            state,
            remote_addr,
            outbox: sender,
            hub,
        },
        data,
    );
    Registered {
        handler,
        registration: Registration {
            conn,
            outbox: receiver,
            _slot: slot,
            opened: false,
        },
        config,
        expires,
        span,
    }
}

/// Runs one upgraded connection to its end.
///
/// A function returning an `async move` block, like the reader's and the writer's loops,
/// rather than an `async fn`: an async fn moves its arguments into locals of its body, and the
/// compiler keeps room for both for the connection's whole life.
pub(crate) fn run<C, S, D>(registered: Registered<C, S, D>, transport: BoxedTransport) -> impl Future<Output = ()>
where
    C: Channel,
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
{
    let Registered {
        handler,
        mut registration,
        config,
        expires,
        span,
    } = registered;
    // Opened only now, with the 101 written and the socket handed over: a handshake refused
    // after its registration (a shutdown that began during `on_connect`, a 101 that could not
    // be written) counts as a refusal alone, never as a connection.
    registration.open();
    tracing::info!(parent: &span, "connection opened");
    let started = tokio::time::Instant::now();
    let transport = SharedTransport::new(transport);
    // Set up before the future is made, so it holds only what the connection keeps using; the
    // reader and the writer borrow what this future owns, rather than taking copies of it.
    async move {
        let info = {
            let Registration { conn, outbox, .. } = &registration;
            let mut stream = WokenStream::new(&transport);
            let reader = Reader::new(&handler, conn, &config, outbox, expires);
            let reader = std::pin::pin!(reader.read_loop(&mut stream));
            let writer = std::pin::pin!(write_loop(&transport, outbox, conn.hub().counters(), C::NAME));
            drive(reader, writer, outbox, &config, &span).await
        };
        // The peer is gone or the close handshake is over: the socket closes now, before
        // `on_close` runs (which may take its time), and nothing queued can be delivered.
        drop(transport);
        let conn = registration.conn.clone();
        drop(registration);
        tracing::info!(
            parent: &span,
            code = u16::from(info.code),
            // The peer chose the reason: escaped, or a `\n` or an ESC in it would forge log
            // lines and reach the operator's terminal.
            reason = %Escaped(&info.reason),
            by_server = info.by_server,
            duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "connection closed"
        );
        if let Some(on_close) = &handler.callbacks.on_close {
            // Called inside the guarded future, so a panic in its synchronous part is caught.
            let closing = conn.clone();
            if let Err(panic) = guard::catch(async move { on_close(closing, info).await })
                .instrument(span)
                .await
            {
                tracing::warn!(channel = C::NAME, id = %conn.id(), panic = %Escaped(panic), "on_close panicked");
            }
        }
    }
}

/// Polls the writer and the reader in this one task until the reader ends; then, if the
/// connection is closing, lets the writer deliver what is queued and the close frame (bounded:
/// a peer that does not read cannot hold the connection open).
///
/// The reader is polled only once it has woken (a [`Gate`]): a publisher's message wakes a
/// subscriber's task for its writer alone, and should not cost a pass through the reader's
/// select. (The writer has no gate: a reader's wake-up usually queued something for it.)
///
/// Which goes first alternates from poll to poll: each may use up the task's cooperative budget
/// (a writer kept busy by publishers, a reader by a fast client), and the other must still get
/// its turn, or a reader starved by a busy writer would never read the peer's pongs.
// Not an `async fn`, on purpose: see `run`.
#[expect(clippy::manual_async_fn, reason = "an async fn keeps room for its arguments twice")]
fn drive<'a>(
    mut reader: impl Future<Output = CloseInfo> + Unpin + 'a,
    mut writer: impl Future<Output = ()> + Unpin + 'a,
    outbox: &'a OutboxReceiver,
    config: &'a Config,
    // Entered around every poll, as `Instrument` would, but borrowed: the task keeps one copy.
    span: &'a tracing::Span,
) -> impl Future<Output = CloseInfo> + 'a {
    async move {
        let mut written = false;
        let mut writer_first = true;
        let reader_gate = Gate::new();
        let info = poll_fn(|cx| {
            let _entered = span.enter();
            let mut poll_writer = |cx: &mut Context<'_>| {
                if !written {
                    written = Pin::new(&mut writer).poll(cx).is_ready();
                }
            };
            let mut poll_reader = |cx: &mut Context<'_>| match reader_gate.open(cx) {
                true => Pin::new(&mut reader).poll(&mut reader_gate.context()),
                false => Poll::Pending,
            };
            writer_first = !writer_first;
            if !writer_first {
                poll_writer(cx);
                return poll_reader(cx);
            }
            let read = poll_reader(cx);
            if read.is_pending() {
                poll_writer(cx);
            }
            read
        })
        .await;
        if !written && outbox.is_closing() {
            // Boxed: a timer held in this future would take room in every connection's task for
            // its whole life, and only a closing connection needs one, once.
            let mut timeout = Box::pin(tokio::time::timeout(config.close_timeout, writer));
            let _ = poll_fn(|cx| {
                let _entered = span.enter();
                timeout.as_mut().poll(cx)
            })
            .await;
        }
        info
    }
}

/// Lets a part of the task (the reader, the stream) be polled only once it has
/// woken since it last returned `Pending`: that part is polled with the gate's own waker,
/// which records the wake before passing it on to the task.
///
/// Sound because wakers are only stored while a future is polled: everything the part waits
/// for holds the gate's waker, never the task's.
struct Gate {
    flag: Arc<WakeFlag>,
    /// `flag` as a waker, made once.
    waker: Waker,
}

struct WakeFlag {
    woken: AtomicBool,
    /// The task the part belongs to.
    task: AtomicWaker,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Gate {
    /// A gate that is open: the first poll goes through.
    fn new() -> Self {
        let flag = Arc::new(WakeFlag {
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// Whether the part woke since it was last let through (and lets it through now), with the
    /// task's waker registered first, so a wake after this look still reaches the task.
    fn open(&self, cx: &Context<'_>) -> bool {
        self.flag.task.register(cx.waker());
        self.flag.woken.swap(false, Ordering::AcqRel)
    }

    /// Forgets the wakes so far: the part is about to be polled anyway. A swap, not a store:
    /// it must not be ordered after what that poll reads, or it could erase a wake that poll
    /// did not see. Only when there is a wake to forget, which the cheap look tells.
    fn clear(&self) {
        if self.flag.woken.load(Ordering::Relaxed) {
            self.flag.woken.swap(false, Ordering::AcqRel);
        }
    }

    /// Lets the part through at its next look, as a wake would.
    fn reopen(&self) {
        self.flag.woken.store(true, Ordering::Release);
    }

    /// The context to poll the part with.
    fn context(&self) -> Context<'_> {
        Context::from_waker(&self.waker)
    }
}

/// A stream polled again only once it has woken, or right after it yielded an item (the
/// reader draining frames already read): the reader is also woken for its handler,
/// its timers and its signals, and polling a WebSocket stream that has nothing to read is not
/// free (tungstenite prepares its read buffer, zeroing up to its size, before every read).
pub(crate) struct WokenStream<S> {
    inner: S,
    gate: Gate,
    /// The inner stream returned `Pending`: it is polled again once it woke.
    waiting: bool,
}

impl<S> WokenStream<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            gate: Gate::new(),
            waiting: false,
        }
    }
}

impl<S: Stream + Unpin> Stream for WokenStream<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        // A stream that last yielded an item is polled again without a look at the gate (a
        // reader draining frames already read); the gate is opened, with the task's waker
        // registered, before any `Pending` is returned.
        if this.waiting && !this.gate.open(cx) {
            return Poll::Pending;
        }
        // A wake from before this poll is stale once the stream has looked.
        this.gate.clear();
        let poll = this.inner.poll_next_unpin(&mut this.gate.context());
        this.waiting = poll.is_pending();
        if poll.is_pending() && this.gate.open(cx) {
            // Woken while it was polled: come back for it, after the task's other work (a
            // stream that wakes itself as it returns `Pending` cannot spin this poll).
            this.gate.reopen();
            cx.waker().wake_by_ref();
        }
        poll
    }
}

/// Undoes a connection's registration however its task ends: normally, by a panic, or dropped
/// when a shutdown times out. Ends the outbox (later sends fail), leaves every topic and frees
/// the connection-limit slot.
///
/// It also owns the connection's handle for the task (the hub and the id are the handle's), so
/// the task keeps one copy of each.
struct Registration<C: Channel, S, D> {
    conn: Conn<C, S, D>,
    outbox: OutboxReceiver,
    _slot: Slot,
    /// Counted as an open connection (its task began), so to be counted as closed.
    opened: bool,
}

impl<C: Channel, S, D> Registration<C, S, D> {
    fn open(&mut self) {
        self.opened = true;
        self.conn.hub().counters().opened(C::NAME);
    }
}

impl<C: Channel, S, D> Drop for Registration<C, S, D> {
    fn drop(&mut self) {
        self.outbox.end();
        let hub = self.conn.hub();
        hub.detach(self.conn.id());
        if self.opened {
            hub.counters().closed(C::NAME);
        }
    }
}

/// Writes queued frames in batches (one flush, usually one syscall, per batch), then the close
/// frame once the connection is closing and the queue is drained. If writing fails the
/// connection is closed: later sends fail and the reader stops waiting.
// Not an `async fn`, on purpose: see `run`.
#[expect(clippy::manual_async_fn, reason = "an async fn keeps room for its arguments twice")]
fn write_loop<'a>(
    transport: &'a SharedTransport,
    outbox: &'a OutboxReceiver,
    counters: &'a Counters,
    channel: &'static str,
) -> impl Future<Output = ()> + 'a {
    async move {
        let mut batch = Batch::default();
        while outbox.next_batch(&mut batch).await {
            let written = batch.frames.len() as u64;
            // Checked at every poll: the peer's close frame may be read while a batch waits.
            let wrote = poll_fn(|cx| match outbox.is_ended() {
                true => Poll::Ready(Err(WsError::AlreadyClosed)),
                false => transport.poll_write(&mut batch, cx),
            });
            if let Err(error) = wrote.await {
                match error {
                    // The peer closed first (its close frame was read): nothing to report, the
                    // reader records that close.
                    WsError::ConnectionClosed
                    | WsError::AlreadyClosed
                    | WsError::Protocol(ProtocolError::SendAfterClosing) => {}
                    _ => {
                        outbox.request_close(CloseCode::Error, "write failed");
                    }
                }
                outbox.end();
                return;
            }
            counters.add(Count::MessagesOut, channel, written);
        }
        // A `let … else`, not an `if let`: the frame looked up is not kept across the write.
        let Some(frame) = outbox.close_frame() else {
            return;
        };
        batch.push_message(WsMessage::Close(Some(frame)));
        if poll_fn(|cx| transport.poll_write(&mut batch, cx)).await.is_ok() {
            counters.add(Count::MessagesOut, channel, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wake_count::WakeCount;

    #[test]
    fn a_gate_lets_a_part_through_once_per_wake_and_passes_wakes_on() {
        let (task, waker) = WakeCount::new();
        let cx = Context::from_waker(&waker);
        let gate = Gate::new();
        assert!(gate.open(&cx), "the first poll goes through");
        assert!(!gate.open(&cx), "not again before a wake");
        gate.context().waker().wake_by_ref();
        assert_eq!(task.get(), 1, "the task is woken");
        assert!(gate.open(&cx), "and the part is let through");
        assert!(!gate.open(&cx));
        // A wake before the task registered again still opens the gate.
        gate.context().waker().wake_by_ref();
        gate.context().waker().wake_by_ref();
        assert!(gate.open(&cx));
    }

    #[test]
    fn a_woken_stream_drains_without_the_gate_and_waits_behind_it() {
        let (task, waker) = WakeCount::new();
        let mut cx = Context::from_waker(&waker);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
        let mut stream = WokenStream::new(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        assert!(stream.poll_next_unpin(&mut cx).is_pending());
        tx.send(1).unwrap();
        tx.send(2).unwrap();
        assert_eq!(task.get(), 1, "the item woke the task");
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(
            stream.poll_next_unpin(&mut cx),
            Poll::Ready(Some(2)),
            "drained without a wake"
        );
        assert!(stream.poll_next_unpin(&mut cx).is_pending());
        assert!(
            stream.poll_next_unpin(&mut cx).is_pending(),
            "not polled again before a wake"
        );
        tx.send(3).unwrap();
        assert_eq!(task.get(), 2);
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(3)));
        drop(tx);
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(None));
    }
}
