//! The connection task: one task per connection drives both the reader (`reader`: decode,
//! limits, liveness, dispatch) and the writer (`writer`: drain the outbox in batches, one flush
//! per batch), over its transport (`transport`: the server's own socket, `socket`, or any
//! stream of messages), each polled only once it woke (`wake`). This file only orchestrates:
//! registration, the run, and the end.
//!
//! One task rather than a reader task and a writer task: a reply queued while handling a
//! message is written by the same task as soon as reading would block, without waking a
//! second task, and an idle connection costs one task. The writer is polled whenever it has
//! woken, so it still writes while a handler awaits; each half is polled only then (see
//! [`drive`]).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::poll_fn;
use tracing::Instrument;

use super::bound::{Binding, Bound};
use super::config::Config;
use super::conn::{CloseInfo, Conn, ConnInner, Core};
use super::guard;
use super::handler::Handler;
use super::limits::Slot;
use super::reader::Reader;
use super::transport::{BoxedTransport, SharedTransport};
use super::wake::{Gate, WokenStream};
use super::writer::write_loop;
use crate::channel::Channel;
use crate::conn_id::ConnId;
use crate::hub::Hub;
use crate::log::Escaped;
use crate::outbox::{OutboxReceiver, outbox};

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
pub(crate) struct Registered {
    registration: Registration<dyn Binding>,
    config: Arc<Config>,
    expires: Option<tokio::time::Instant>,
    span: tracing::Span,
}

/// Registers an accepted connection with the hub, before its 101 is written. The one part of
/// a connection's life that knows its channel's types: from here on the connection is its
/// [`Binding`].
pub(crate) fn register<C, S, D>(
    handler: Arc<Handler<C, S, D>>,
    params: C::Params,
    // The params' `Display`, formatted once at the handshake.
    address: Arc<str>,
    data: D,
    env: ConnEnv<S>,
) -> Registered
where
    C: Channel,
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
{
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
    let core = Core {
        id,
        address,
        remote_addr,
        outbox: sender,
        hub,
        subscription: None,
    };
    let conn = Conn::new(ConnInner { core, params, state }, data);
    registered(Box::new(Bound::new(handler, conn)), receiver, slot, config, expires)
}

/// The registered connection, its types erased.
fn registered(
    binding: Box<dyn Binding>,
    outbox: OutboxReceiver,
    slot: Slot,
    config: Arc<Config>,
    expires: Option<tokio::time::Instant>,
) -> Registered {
    let core = binding.core();
    // Never the query string (tokens travel there): the channel, its address and the peer.
    let span = tracing::info_span!(
        "ws_conn",
        channel = binding.channel(),
        address = %core.address,
        id = %core.id,
        remote_addr = ?core.remote_addr,
    );
    Registered {
        registration: Registration::new(binding, outbox, slot),
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
pub(crate) fn run(registered: Registered, transport: BoxedTransport) -> impl Future<Output = ()> {
    let Registered {
        mut registration,
        config,
        expires,
        span,
    } = registered;
    // Opened only now, with the 101 written and the socket handed over: a handshake refused
    // after its registration (a shutdown that began during `on_connect`) counts as a refusal
    // alone, and one whose 101 could not be written (the peer left) as nothing, never as a
    // connection.
    registration.open();
    tracing::info!(parent: &span, "connection opened");
    let started = tokio::time::Instant::now();
    let transport = SharedTransport::new(transport);
    // Set up before the future is made, so it holds only what the connection keeps using; the
    // reader and the writer borrow what this future owns, rather than taking copies of it.
    async move {
        let info = {
            let Registration { binding, outbox, .. } = &registration;
            let (binding, channel) = (&**binding, binding.channel());
            let mut stream = WokenStream::new(&transport);
            let reader = Reader::new(binding, &config, outbox, expires);
            let reader = std::pin::pin!(reader.read_loop(&mut stream));
            let writer = std::pin::pin!(write_loop(&transport, outbox, binding.core().hub.counters(), channel));
            drive(reader, writer, outbox, &config, &span).await
        };
        // The peer is gone or the close handshake is over: the socket closes now, before
        // `on_close` runs (which may take its time), and nothing queued can be delivered.
        drop(transport);
        log_closed(&span, &info, started, "connection closed");
        let (channel, id) = (registration.binding.channel(), registration.binding.core().id);
        let on_close = registration.binding.on_close(info);
        drop(registration);
        if let Some(on_close) = on_close {
            // Guarded from its first poll, where the callback is called, so a panic in its
            // synchronous part is caught.
            if let Err(panic) = guard::catch(on_close).instrument(span).await {
                tracing::warn!(channel, %id, panic = %Escaped(panic), "on_close panicked");
            }
        }
    }
}

/// Logs how a connection or a session ended (`what`: "connection closed", "session closed").
pub(crate) fn log_closed(span: &tracing::Span, info: &CloseInfo, started: tokio::time::Instant, what: &'static str) {
    tracing::info!(
        parent: span,
        code = u16::from(info.code),
        // The peer chose the reason: escaped, or a `\n` or an ESC in it would forge log lines
        // and reach the operator's terminal.
        reason = %Escaped(&info.reason),
        by_server = info.by_server,
        duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "{what}"
    );
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
pub(crate) fn drive<'a, O>(
    mut reader: impl Future<Output = O> + Unpin + 'a,
    mut writer: impl Future<Output = ()> + Unpin + 'a,
    outbox: &'a OutboxReceiver,
    config: &'a Config,
    // Entered around every poll, as `Instrument` would, but borrowed: the task keeps one copy.
    span: &'a tracing::Span,
) -> impl Future<Output = O> + 'a {
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

/// What a [`Registration`] holds: a connection's binding, or a session.
pub(crate) trait Registrant: Send + Sync {
    /// The connection, as far as it does not depend on what it serves, and the label of its
    /// metrics (its channel's name, or the sessions').
    fn registered(&self) -> (&Core, &'static str);
}

impl Registrant for dyn Binding {
    fn registered(&self) -> (&Core, &'static str) {
        (self.core(), self.channel())
    }
}

/// Undoes a connection's registration however its task ends: normally, by a panic, or dropped
/// when a shutdown times out. Ends the outbox (later sends fail), leaves every topic and frees
/// the connection-limit slot. The same for a channel's connection and a session.
///
/// It also owns the connection's binding for the task (the hub and the id are its core's), so
/// the task keeps one copy of each.
pub(crate) struct Registration<B: ?Sized + Registrant> {
    pub(crate) binding: Box<B>,
    pub(crate) outbox: OutboxReceiver,
    _slot: Slot,
    /// Counted as an open connection (its task began), so to be counted as closed.
    opened: bool,
}

impl<B: ?Sized + Registrant> Registration<B> {
    pub(crate) fn new(binding: Box<B>, outbox: OutboxReceiver, slot: Slot) -> Self {
        Self {
            binding,
            outbox,
            _slot: slot,
            opened: false,
        }
    }

    /// Counts the connection as open: its task began.
    pub(crate) fn open(&mut self) {
        self.opened = true;
        let (core, label) = self.binding.registered();
        core.hub.counters().opened(label);
    }
}

impl<B: ?Sized + Registrant> Drop for Registration<B> {
    fn drop(&mut self) {
        self.outbox.end();
        let (core, label) = self.binding.registered();
        core.hub.detach(core.id);
        if self.opened {
            core.hub.counters().closed(label);
        }
    }
}
