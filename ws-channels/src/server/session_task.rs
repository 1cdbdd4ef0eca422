//! A session's task: the sessions endpoint as a [`Route`] of the server's router (so every
//! front end serves it through the same handshake decision), and the task that runs one
//! session: frames in, split into commands, handled strictly in order and one at a time;
//! replies, pings and the session's close out through its outbox.
//!
//! Like a channel's connection task, it is compiled once, whatever the server's state and the
//! application's identity type: the one typed part, the `authenticate` hook, is reached through
//! an [`Authenticator`] (see `sessions`). The task reuses the connection task's parts: `drive`
//! polls this reader and the same `write_loop` in one task, and a [`Registration`] undoes the
//! session however it ends.
//!
//! Subscriptions: a `subscribe` asks the channel's route (through [`Channels`], the router)
//! to decide; the subscription is then the channel's own [`Binding`], scoped to a slot of the
//! session's outbox (see `subscription`). It is a member of its topic, pending, before its
//! `on_open` runs, and live once its `subscribe` reply is queued: nothing published after it
//! became a member is lost, and no `pub` push precedes that reply. A `publish` goes through
//! the binding's `dispatch` as a connection's message does, one indirect call.
//!
//! Credentials expire as Centrifugo's do: the connect reply says `ttl`, the SDK sends
//! `refresh` with a new token, which the `authenticate` hook checks again; a session not
//! refreshed in time is closed with 3005. A subscription whose channel set `expire_at` is
//! ended with the `unsubscribe` push 2501 when due.
//!
//! Server-side subscriptions (`Identity::subscribe`) are made at connect, each decided by its
//! channel as a client's, and announced by the connect reply, which their held publications
//! follow. The server's rate limit counts every command but `connect` and pongs.
//!
//! Made later by the server (`Hub::subscribe_session`), one is announced with a `subscribe`
//! push; the server's requests reach the task through its outbox, and are carried out in turn
//! with its commands.
//!
//! The first ping is jittered in [½, 1) of the interval.
//!
//! A session is a member of the hub from its registration (so a shutdown closes it with
//! 3001), and its outbox is a session's (`outbox::session_outbox`): its replies and pings are
//! its own messages, never dropped, joined into frames, and bounded in bytes (3008).

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use futures_util::future::{BoxFuture, poll_fn};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tracing::Instrument;

use super::bound::Binding;
use super::config::Config;
use super::conn::{CloseInfo, Core};
use super::decision::{Route, Session, Shared, subprotocol_offers};
use super::guard;
use super::handshake::SessionSide;
use super::lifecycle::Lifecycle;
use super::limits::{self, RateLimitAction, TokenBucket};
use super::reader::{close_info, no_status};
use super::response::Reject;
use super::running::{self, Running};
use super::session_clock::{Clocks, Due, first_ping};
use super::sessions::{Authenticated, Authenticator, ConnectParts, SessionIdentity, SessionReject, Settings};
use super::subscription::{Channels, Decided, Deciding, Subscribing, refused, reply_error};
use super::task::{ConnEnv, Registrant, Registration, drive, log_closed};
use super::transport::{BoxedTransport, SharedTransport};
use super::wake::WokenStream;
use super::writer::write_loop;
use crate::error::{Error, Report};
use crate::log::Escaped;
use crate::metrics::Count;
use crate::outbox::{OutboxReceiver, SessionLimits, SlotId, SubscriptionRequest, session_outbox};
use crate::session::codes::{DisconnectCode, ErrorCode, UnsubscribeCode, sdk_resubscribes_after_unsubscribe};
use crate::session::frame::decode_commands;
use crate::session::protocol::{
    self, Command, ConnectResult, Method, PushBody, RefreshResult, Reply, ReplyBody, ReplyError, SubscribePush,
    SubscribeResult, UnsubscribePush,
};
use crate::transport::MessageStream;

/// How many times within [`RESUBSCRIBE_WINDOW`] the server may end a channel's subscription
/// with a code the SDK resubscribes after at once (2500, 2501: no backoff) before the next
/// `subscribe` of that channel is answered with 100 temporary, which the SDK retries with
/// backoff: a channel that ends every subscription (a lag policy always overflowing, an
/// `on_open` that closes) must not make the SDK and the server loop.
const RESUBSCRIBES: usize = 3;
const RESUBSCRIBE_WINDOW: Duration = Duration::from_secs(10);

/// The label of sessions in the metrics and logs, where a connection has its channel's name.
pub(crate) const LABEL: &str = "sessions";

/// The subprotocol of the JSON format, echoed when offered (Node wrappers offer it).
const JSON_SUBPROTOCOL: &str = "centrifuge-json";
/// The subprotocol of the protobuf format, which we do not speak.
const PROTOBUF_SUBPROTOCOL: &str = "centrifuge-protobuf";

/// The sessions endpoint, mounted in the router at its path.
#[derive(Clone)]
pub(crate) struct Endpoint {
    inner: Arc<EndpointInner>,
}

struct EndpointInner {
    settings: Settings,
    authenticator: Option<Arc<dyn Authenticator>>,
    /// The path, without its leading `/`: a session's `Conn::address`-like name in logs.
    address: Arc<str>,
}

impl Endpoint {
    pub(crate) fn new(settings: Settings, authenticator: Option<Arc<dyn Authenticator>>, path: &str) -> Self {
        Self {
            inner: Arc::new(EndpointInner {
                settings,
                authenticator,
                address: path.trim_start_matches('/').into(),
            }),
        }
    }
}

impl<S: Send + Sync + 'static> Route<S> for Endpoint {
    /// `centrifuge-json` when offered, else none. A protobuf client is not refused here: an
    /// HTTP refusal reaches the SDK as a close 1006, which it retries forever, so it is
    /// upgraded and then closed with 3506 (see `accept`).
    fn subprotocol(&self, offers: &[&str]) -> Result<Option<String>, Reject> {
        Ok(offers
            .iter()
            .find(|offer| **offer == JSON_SUBPROTOCOL)
            .map(|offer| (*offer).to_owned()))
    }

    fn accept(
        &self,
        shared: &Arc<Shared<S>>,
        request: Arc<http::request::Parts>,
        _raw_values: &[&str],
        remote_addr: Option<SocketAddr>,
    ) -> BoxFuture<'static, Result<Session, Reject>> {
        let endpoint = self.inner.clone();
        let shared = shared.clone();
        Box::pin(async move {
            let slot = shared.limits.acquire_session()?;
            let env = shared.env(remote_addr, slot, None);
            let lifecycle = shared.lifecycle.clone();
            let registered = register(endpoint, request, env, shared);
            let session: Session = Box::new(move |transport| lifecycle.spawn(run(registered, transport)));
            Ok(session)
        })
    }

    /// The sessions endpoint is no channel: a session cannot subscribe to it.
    fn subscribe(&self, _: &Arc<S>, _: &[&str], _: &mut Subscribing<'_>) -> Result<Deciding, ReplyError> {
        Err(reply_error(ErrorCode::UnknownChannel, ""))
    }
}

/// Whether the client asked for the protobuf format: the SDK's subprotocol (without the JSON
/// one), or Centrifugo's `?format=protobuf`.
fn wants_protobuf(request: &http::request::Parts) -> bool {
    let offers = subprotocol_offers(request);
    let by_query = request
        .uri
        .query()
        .is_some_and(|query| query.split('&').any(|pair| pair == "format=protobuf"));
    !offers.contains(&JSON_SUBPROTOCOL) && (by_query || offers.contains(&PROTOBUF_SUBPROTOCOL))
}

/// What a session's [`Registration`] holds: its core (id, outbox sender, hub).
struct SessionCore(Core);

impl Registrant for SessionCore {
    fn registered(&self) -> (&Core, &'static str) {
        (&self.0, LABEL)
    }
}

/// A session accepted but not yet upgraded.
struct Registered {
    registration: Registration<SessionCore>,
    endpoint: Arc<EndpointInner>,
    request: Arc<http::request::Parts>,
    state: Arc<dyn Any + Send + Sync>,
    channels: Arc<dyn Channels>,
    lifecycle: Arc<Lifecycle>,
    config: Arc<Config>,
    span: tracing::Span,
}

fn register<S: Send + Sync + 'static>(
    endpoint: Arc<EndpointInner>,
    request: Arc<http::request::Parts>,
    env: ConnEnv<S>,
    channels: Arc<Shared<S>>,
) -> Registered {
    let ConnEnv {
        id,
        remote_addr,
        state,
        hub,
        config,
        slot,
        expires: _,
    } = env;
    let limits = SessionLimits {
        per_slot: config.outbound_queue,
        max_queued_bytes: endpoint.settings.max_queued_bytes,
        max_frame: hub.max_outgoing(),
    };
    let (sender, receiver) = session_outbox(limits, hub.counters().clone());
    // A member of the hub from now on: a shutdown closes it with 3001 (and, with
    // subscriptions, the topics it subscribes to reach it).
    hub.attach_session(id, sender.clone());
    let core = Core {
        id,
        address: endpoint.address.clone(),
        remote_addr,
        outbox: sender,
        hub,
        subscription: None,
    };
    // Never the query string (tokens may travel there).
    let span = tracing::info_span!("ws_session", id = %core.id, remote_addr = ?core.remote_addr);
    Registered {
        registration: Registration::new(Box::new(SessionCore(core)), receiver, slot),
        endpoint,
        request,
        state,
        lifecycle: channels.lifecycle.clone(),
        channels,
        config,
        span,
    }
}

/// Runs one upgraded session to its end (a function returning an `async move` block, as
/// `task::run`, for the same reason).
fn run(registered: Registered, transport: BoxedTransport) -> impl Future<Output = ()> {
    let Registered {
        mut registration,
        endpoint,
        request,
        state,
        channels,
        lifecycle,
        config,
        span,
    } = registered;
    registration.open();
    tracing::info!(parent: &span, "session opened");
    let started = Instant::now();
    let transport = SharedTransport::new(transport);
    async move {
        let (info, ended, subscriptions) = {
            let (outbox, core) = (&registration.outbox, &registration.binding.0);
            let mut stream = WokenStream::new(&transport);
            let reader = Reader {
                core,
                outbox,
                config: &config,
                endpoint: &endpoint,
                request: &request,
                state: &state,
                channels: &*channels,
                lifecycle: &lifecycle,
            };
            let reader = std::pin::pin!(reader.read_loop(&mut stream));
            let writer = std::pin::pin!(write_loop(&transport, outbox, core.hub.counters(), LABEL));
            drive(reader, writer, outbox, &config, &span).await
        };
        drop(transport);
        log_closed(&span, &info, started, "session closed");
        // Out of the hub before the subscriptions' `on_close` run, as a connection is: first
        // those of subscriptions that ended before, in order, then the others'.
        drop(registration);
        let last = subscriptions
            .iter()
            .filter_map(|binding| closing(&**binding, info.clone()));
        for Closing { channel, future } in ended.into_iter().chain(last) {
            if let Err(panic) = future.instrument(span.clone()).await {
                tracing::warn!(parent: &span, channel, panic = %Escaped(panic), "on_close panicked");
            }
        }
    }
}

/// Where the session is in the protocol.
enum Phase {
    /// Upgraded; waiting for `connect`.
    Fresh,
    /// `connect` was answered with a result: who the session is, for its subscriptions.
    Connected(Arc<SessionSide>),
    /// `connect` was answered with an error: the next command closes the session (3501).
    Unusable,
}

/// How a hook or a channel's decision ended, run under the command timeout and guarded.
enum Outcome<T> {
    Answered(T),
    Panicked(String),
    TimedOut,
}

/// `future` until `deadline`, with a panic in any of its polls caught.
fn bounded<T: 'static>(deadline: Instant, future: BoxFuture<'static, T>) -> BoxFuture<'static, Outcome<T>> {
    Box::pin(async move {
        match tokio::time::timeout_at(deadline, guard::catch(future)).await {
            Ok(Ok(answered)) => Outcome::Answered(answered),
            Ok(Err(panic)) => Outcome::Panicked(panic),
            Err(_) => Outcome::TimedOut,
        }
    })
}

/// The command being worked on: the session handles no other until it is done, so commands
/// are answered in order and a channel's handlers run one at a time, as on a connection.
enum Busy {
    /// `connect`: the `authenticate` hook runs.
    Connecting {
        id: u32,
        connect: protocol::ConnectRequest,
        /// One deadline for the hook and the server-side subscriptions, before the reply.
        deadline: Instant,
        hook: BoxFuture<'static, Outcome<Authenticated>>,
    },
    /// `refresh`: the `authenticate` hook runs on the new token.
    Refreshing {
        id: u32,
        token: String,
        hook: BoxFuture<'static, Outcome<Authenticated>>,
    },
    /// `subscribe`: the channel decides (`on_connect`, `authorize`).
    Subscribing {
        pending: Pending,
        deciding: BoxFuture<'static, Outcome<Result<Decided, Reject>>>,
    },
    /// `subscribe`: accepted and a member of its topic; its `on_open` runs.
    Opening {
        pending: Pending,
        binding: Box<dyn Binding>,
        expires: Option<Instant>,
    },
    /// `publish`: the channel's `on_message` runs.
    Publishing { id: u32, channel: Box<str> },
    /// An ended subscription's `on_close` runs.
    Closing(Closing),
}

/// A subscription's `on_close`, guarded: run in turn with the session's commands (handlers of
/// one session run one at a time), or at the session's end.
struct Closing {
    channel: &'static str,
    future: BoxFuture<'static, Result<(), String>>,
}

/// The `on_close` of `binding`, if its channel has one.
fn closing(binding: &dyn Binding, info: CloseInfo) -> Option<Closing> {
    let on_close = binding.on_close(info)?;
    Some(Closing {
        channel: binding.channel(),
        future: Box::pin(guard::catch(on_close)),
    })
}

/// A subscription being made: how the client learns of it, its channel string and slot.
struct Pending {
    /// By when the channel must have decided and opened it (the SDK's call timeout would end
    /// the whole connection).
    deadline: Instant,
    /// Its place under `max_connections_per_address`, held from the decision on.
    member: Option<limits::Slot>,
    announce: Announce,
    channel: Box<str>,
    slot: SlotId,
    /// The command's `recover`, echoed as `was_recovering` (there is nothing to recover yet).
    recover: bool,
}

/// How the client learns of a subscription made: what releases its slot.
#[derive(Clone, Copy)]
enum Announce {
    /// The reply to its `subscribe` command (by id).
    Reply(u32),
    /// The connect reply (a server-side subscription of the identity).
    Connect,
    /// A `subscribe` push (a server-side subscription made later, `Hub::subscribe_session`).
    Push,
}

/// What a busy command waited for.
enum Done {
    Authenticated(Outcome<Authenticated>),
    Decided(Outcome<Result<Decided, Reject>>),
    Ran(running::Outcome),
    Closed(Result<(), String>),
}

/// Polls what the busy command waits for: its future, or the handler it runs.
fn poll_busy(busy: &mut Option<Busy>, running: &mut Running, cx: &mut Context<'_>) -> Poll<Done> {
    match busy {
        Some(Busy::Connecting { hook, .. } | Busy::Refreshing { hook, .. }) => {
            hook.as_mut().poll(cx).map(Done::Authenticated)
        }
        Some(Busy::Subscribing { deciding, .. }) => deciding.as_mut().poll(cx).map(Done::Decided),
        Some(Busy::Opening { .. } | Busy::Publishing { .. }) => running.poll(cx).map(Done::Ran),
        Some(Busy::Closing(closing)) => closing.future.as_mut().poll(cx).map(Done::Closed),
        None => Poll::Pending,
    }
}

/// A live subscription.
struct Subscription {
    binding: Box<dyn Binding>,
    slot: SlotId,
    /// When its channel said its credentials expire.
    expires: Option<Instant>,
    /// Its place under `max_connections_per_address`, freed when it ends.
    _member: Option<limits::Slot>,
    /// How it was made: the SDK forgets a server-side subscription on any `unsubscribe` push,
    /// so one of the identity's (`Announce::Connect`, made again at every connect) that it
    /// would have to resubscribe to ends the session instead (with the code that reconnects),
    /// as Centrifugo does; one `Hub::subscribe_session` made is ended for good (2000).
    made_by: Announce,
}

/// A connect whose identity asked for server-side subscriptions: they are made one by one,
/// each decided by its channel as a client's `subscribe` is, then the connect reply lists
/// those made, and their publications (held meanwhile) follow it.
struct Connecting {
    id: u32,
    /// The connect's deadline: a server-side subscription not made by then is left out (the
    /// SDK's own connect timeout would otherwise make it reconnect, again and again).
    deadline: Instant,
    result: ConnectResult,
    /// Channel strings still to subscribe, in order.
    remaining: VecDeque<String>,
    /// Subscriptions made, their slots pending until the connect reply is queued.
    made: Vec<(Box<str>, Subscription)>,
}

/// The earliest expiry among `subscriptions`.
fn earliest_expiry(subscriptions: &HashMap<Box<str>, Subscription>) -> Option<Instant> {
    subscriptions
        .values()
        .filter_map(|subscription| subscription.expires)
        .min()
}

/// When a session's credentials expire.
#[derive(Default)]
struct Credentials {
    /// The seconds left, for the client.
    ttl: Option<u32>,
    /// When the session is closed with 3005 unless refreshed.
    expired_by: Option<Instant>,
}

/// What the read loop keeps from turn to turn, outside every branch of its `select!`.
struct State {
    phase: Phase,
    /// Commands read and not yet handled, in order: the rest of a frame behind a command
    /// that waits.
    queue: VecDeque<Command>,
    busy: Option<Busy>,
    /// The channel handler running for the busy command (`on_open`, `on_message`).
    running: Running,
    /// The slot of the subscription whose message runner `running` keeps (for a burst of
    /// publishes on one channel): a runner holds its subscription's connection, so another
    /// subscription's publish needs a runner of its own.
    runner_of: Option<SlotId>,
    /// The live subscriptions, by channel string.
    subscriptions: HashMap<Box<str>, Subscription>,
    /// Server-side subscriptions being made, before the connect reply.
    connecting: Option<Connecting>,
    /// The server's requests to change the subscriptions (`Hub::subscribe_session`), carried
    /// out in turn with the commands once the session is connected.
    requests: VecDeque<SubscriptionRequest>,
    /// The outbox may hold requests not taken yet (its attention said so): looked for only
    /// then, not at every command.
    requests_waiting: bool,
    /// The `on_close` of subscriptions that ended, to run before the next command.
    closings: VecDeque<Closing>,
    /// When the server last ended each channel's subscription with a code the SDK
    /// resubscribes after at once (no backoff): what stops a channel that ends every new
    /// subscription from looping (see [`RESUBSCRIBES`]).
    resubscribed: HashMap<Box<str>, VecDeque<Instant>>,
    /// The `connect` command, without its token: what a `refresh` hands the hook again.
    connect: protocol::ConnectRequest,
    /// The server's rate limit, for every command but `connect` and the pong.
    bucket: Option<Box<TokenBucket>>,
    clocks: Clocks,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    attention_waker: Option<Waker>,
    peer_close: Option<CloseFrame>,
}

impl State {
    /// Whether the server's requests can be carried out now: the session is connected, its
    /// connect reply out.
    fn has_requests(&self) -> bool {
        !self.requests.is_empty() && matches!(self.phase, Phase::Connected(_)) && self.connecting.is_none()
    }

    /// The session is closing: nothing more is handled. What it was doing is dropped; the
    /// subscriptions accepted but not live yet (one being opened, the server-side ones made
    /// before the connect reply) are returned, so their `on_close` runs with the others'.
    fn stop(&mut self) -> Vec<Box<dyn Binding>> {
        self.queue.clear();
        self.requests.clear();
        self.running = Running::default();
        let mut accepted: Vec<Box<dyn Binding>> = match self.busy.take() {
            Some(Busy::Opening { binding, .. }) => vec![binding],
            // Finished at the session's end, first.
            Some(Busy::Closing(closing)) => {
                self.closings.push_front(closing);
                Vec::new()
            }
            _ => Vec::new(),
        };
        if let Some(connecting) = self.connecting.take() {
            accepted.extend(connecting.made.into_iter().map(|(_, made)| made.binding));
        }
        accepted
    }
}

/// The reading half of one session.
struct Reader<'a> {
    core: &'a Core,
    outbox: &'a OutboxReceiver,
    config: &'a Config,
    endpoint: &'a EndpointInner,
    request: &'a Arc<http::request::Parts>,
    state: &'a Arc<dyn Any + Send + Sync>,
    channels: &'a dyn Channels,
    lifecycle: &'a Lifecycle,
}

impl<'a> Reader<'a> {
    /// Reads until the session has ended; returns how it ended, and its subscriptions (whose
    /// `on_close` the task runs).
    #[expect(clippy::manual_async_fn, reason = "an async fn keeps room for its arguments twice")]
    fn read_loop(
        self,
        stream: &'a mut (impl MessageStream + 'a),
    ) -> impl Future<Output = (CloseInfo, Vec<Closing>, Vec<Box<dyn Binding>>)> + 'a {
        async move {
            let mut state = self.open();
            let mut accepted = Vec::new();
            loop {
                let (closing, queued) = self.outbox.pressure();
                if closing {
                    state
                        .clocks
                        .closing_by
                        .get_or_insert(Instant::now() + self.config.close_timeout);
                    accepted.extend(state.stop());
                } else if state.busy.is_none()
                    && (!state.closings.is_empty() || !state.queue.is_empty() || state.has_requests())
                {
                    self.work_queue(&mut state);
                    continue;
                }
                // Replies to a burst pile up while this task reads: let the writer drain them.
                if queued >= self.config.outbound_queue.div_ceil(2) {
                    tokio::task::yield_now().await;
                }
                self.arm(&mut state);
                let idle = state.busy.is_none() && state.queue.is_empty();
                let item = tokio::select! {
                    // Commands are handled one at a time, in order: no frame is read while a
                    // command waits.
                    item = stream.next(), if idle => item,
                    done = poll_fn(|cx| poll_busy(&mut state.busy, &mut state.running, cx)), if state.busy.is_some() => {
                        self.done(done, &mut state);
                        continue;
                    }
                    // A close was requested (a write failure, a full queue), or a slot has
                    // news (a lag, a subscription's close).
                    () = poll_fn(|cx| self.outbox.poll_attention(cx, &mut state.attention_waker)) => {
                        self.slot_events(&mut state);
                        state.requests_waiting = true;
                        self.take_requests(&mut state);
                        continue;
                    }
                    () = state.timer.as_mut(), if state.armed.is_some() => {
                        state.armed = None;
                        match self.on_tick(&mut state) {
                            ControlFlow::Continue(()) => continue,
                            ControlFlow::Break(()) => break,
                        }
                    }
                };
                if let ControlFlow::Break(()) = self.on_item(item, closing, &mut state) {
                    break;
                }
            }
            let info = close_info(self.outbox, state.peer_close.take());
            accepted.extend(state.stop());
            accepted.extend(state.subscriptions.into_values().map(|sub| sub.binding));
            (info, state.closings.into(), accepted)
        }
    }

    /// The loop's state at the start: the connect deadline running, or the session closing at
    /// once if the client asked for protobuf.
    fn open(&self) -> State {
        let now = Instant::now();
        let connect_by = now + self.endpoint.settings.connect_timeout;
        if wants_protobuf(self.request) {
            self.close(DisconnectCode::InappropriateProtocol);
        }
        State {
            phase: Phase::Fresh,
            queue: VecDeque::new(),
            busy: None,
            running: Running::default(),
            runner_of: None,
            subscriptions: HashMap::new(),
            connecting: None,
            requests: VecDeque::new(),
            requests_waiting: false,
            closings: VecDeque::new(),
            resubscribed: HashMap::new(),
            connect: protocol::ConnectRequest::default(),
            bucket: self.config.rate_limit.map(|limit| Box::new(TokenBucket::new(limit))),
            clocks: Clocks {
                connect_by: Some(connect_by),
                next_ping: None,
                pong_by: None,
                closing_by: None,
                expired_by: None,
                subscription_expires: None,
                handler_by: None,
            },
            timer: Box::pin(tokio::time::sleep_until(connect_by)),
            armed: Some(connect_by),
            attention_waker: None,
            peer_close: None,
        }
    }

    /// Sets the timer to what the clocks say is due next, if that changed.
    fn arm(&self, state: &mut State) {
        let next = state.clocks.next_deadline();
        if next != state.armed {
            if let Some(deadline) = next {
                state.timer.as_mut().reset(deadline);
            }
            state.armed = next;
        }
    }

    fn on_tick(&self, state: &mut State) -> ControlFlow<()> {
        match state.clocks.due(Instant::now(), &self.endpoint.settings) {
            Some(Due::Stale) => self.close(DisconnectCode::Stale),
            Some(Due::Ping) => self.ping(),
            // While a command waits (a handler runs), frames are not read: the pong may be
            // there, unread. As on a connection, a handler never makes the session time out.
            Some(Due::NoPong) if state.busy.is_some() => {
                state.clocks.pong_by = Some(Instant::now() + self.endpoint.settings.pong_timeout);
            }
            Some(Due::NoPong) => self.close(DisconnectCode::NoPong),
            Some(Due::Expired) => self.close(DisconnectCode::ConnectionExpired),
            Some(Due::SubscriptionExpired) => self.expire_subscriptions(state),
            Some(Due::HandlerTimedOut) => self.handler_timed_out(state),
            Some(Due::CloseReply) => return ControlFlow::Break(()),
            None => {}
        }
        ControlFlow::Continue(())
    }

    /// Handles what the stream yielded; breaks when the session is over.
    fn on_item(&self, item: Option<Result<WsMessage, WsError>>, closing: bool, state: &mut State) -> ControlFlow<()> {
        let frame = match item {
            None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => return ControlFlow::Break(()),
            Some(Err(WsError::Capacity(error))) => {
                tracing::debug!(error = %Escaped(&error), "frame too large");
                self.core.close(CloseCode::Size, "message too large");
                // The frame was not read to its end: the stream cannot be read further.
                return ControlFlow::Break(());
            }
            Some(Err(error)) => {
                match &error {
                    WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {}
                    WsError::Protocol(_) => self.core.close(CloseCode::Protocol, "protocol error"),
                    WsError::Utf8(_) => self.close(DisconnectCode::BadRequest),
                    _ => {}
                }
                tracing::debug!(error = %Escaped(&error), "session error");
                return ControlFlow::Break(());
            }
            Some(Ok(frame)) => frame,
        };
        let text = match frame {
            WsMessage::Close(close) => {
                state.peer_close = Some(close.unwrap_or_else(no_status));
                // Nothing sent from now on could be delivered after tungstenite's close reply.
                self.outbox.end();
                return ControlFlow::Continue(());
            }
            // Closing: only the peer's close reply counts.
            _ if closing => return ControlFlow::Continue(()),
            WsMessage::Text(text) => text,
            WsMessage::Binary(_) => {
                tracing::debug!("binary frame on a JSON session");
                self.close(DisconnectCode::BadRequest);
                return ControlFlow::Continue(());
            }
            // WebSocket pings are answered by the transport; the protocol has its own.
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => return ControlFlow::Continue(()),
        };
        // Any command counts as heard (more lenient than Go, which wants the pong itself).
        state.clocks.pong_by = None;
        self.core.hub.counters().add(Count::MessagesIn, LABEL, 1);
        if text.len() > self.config.max_message_size {
            tracing::debug!(size = text.len(), max = self.config.max_message_size, "frame too large");
            self.core.close(CloseCode::Size, "message too large");
            return ControlFlow::Continue(());
        }
        match decode_commands(&text, self.endpoint.settings.max_commands_per_frame) {
            Ok(commands) => state.queue.extend(commands),
            Err(error) => {
                // The error may quote the frame: escaped.
                tracing::debug!(error = %Escaped(&error), "bad frame");
                self.close(DisconnectCode::BadRequest);
            }
        }
        ControlFlow::Continue(())
    }

    /// Runs ended subscriptions' `on_close`, carries out the server's requests, then handles
    /// queued commands in order: one at a time, until one waits or the session is closing.
    fn work_queue(&self, state: &mut State) {
        // The server's requests and the client's commands take turns: a flood of either
        // cannot starve the other.
        let mut request_turn = true;
        loop {
            if state.busy.is_some() || self.outbox.is_closing() {
                return;
            }
            if let Some(closing) = state.closings.pop_front() {
                state.clocks.handler_by = Some(Instant::now() + self.endpoint.settings.command_timeout);
                state.busy = Some(Busy::Closing(closing));
                return;
            }
            self.take_requests(state);
            if state.has_requests() && (request_turn || state.queue.is_empty()) {
                request_turn = false;
                if let Some(request) = state.requests.pop_front() {
                    self.server_request(request, state);
                }
                continue;
            }
            request_turn = true;
            let Some(command) = state.queue.pop_front() else {
                break;
            };
            self.handle(command, state);
        }
        // All read is handled: the runner goes (with the connection it holds) until the next
        // burst, as a connection's does.
        state.running.release();
        state.runner_of = None;
    }

    /// Takes the server's requests from the outbox once the last ones are carried out, and only
    /// when the session can carry them out (connected, its connect reply out): until then they
    /// wait in the outbox, which bounds them (`Hub::subscribe_session` refuses past its bound).
    fn take_requests(&self, state: &mut State) {
        let ready = matches!(state.phase, Phase::Connected(_)) && state.connecting.is_none();
        if ready && state.requests_waiting && state.requests.is_empty() {
            state.requests_waiting = false;
            state.requests.extend(self.outbox.take_requests());
        }
    }

    /// Handles one command: answers it, starts what it waits for, or closes the session.
    fn handle(&self, command: Command, state: &mut State) {
        let Command { id, method } = command;
        let name = method.name();
        let session = match &state.phase {
            Phase::Connected(session) => session.clone(),
            Phase::Fresh => {
                match method {
                    Method::Connect(connect) => {
                        state.clocks.connect_by = None;
                        let deadline = Instant::now() + self.endpoint.settings.command_timeout;
                        let hook = self.authenticate(connect.clone(), deadline);
                        state.busy = Some(Busy::Connecting {
                            id,
                            connect,
                            deadline,
                            hook,
                        });
                    }
                    _ => self.bad_request(name, "before `connect`"),
                }
                return;
            }
            Phase::Unusable => return self.bad_request(name, "after a refused `connect`"),
        };
        let counted = !matches!(method, Method::Connect(_) | Method::Pong);
        if let (true, Some(bucket)) = (counted, &mut state.bucket)
            && !bucket.take(Instant::now())
        {
            return self.rate_limited(id);
        }
        match method {
            Method::Connect(_) => self.bad_request(name, "a second time"),
            // Heard already, as any command.
            Method::Pong => {}
            Method::Ping => self.reply(Reply::result(id, ReplyBody::Ping)),
            Method::Send(_) => tracing::debug!("`send` ignored: no handler for it"),
            Method::Subscribe(subscribe) => self.subscribe(id, subscribe, &session, state),
            Method::Unsubscribe(request) if request.channel.is_empty() => self.bad_request(name, "without a channel"),
            Method::Publish(publish) if publish.channel.is_empty() => self.bad_request(name, "without a channel"),
            Method::Unsubscribe(request) => self.unsubscribe(id, &request.channel, state),
            Method::Publish(publish) => self.publish(id, publish, state),
            Method::Refresh(refresh) => {
                let token = refresh.token;
                let connect = protocol::ConnectRequest {
                    token: token.clone(),
                    ..state.connect.clone()
                };
                let hook = self.authenticate(connect, Instant::now() + self.endpoint.settings.command_timeout);
                state.busy = Some(Busy::Refreshing { id, token, hook });
            }
            Method::Presence(_)
            | Method::PresenceStats(_)
            | Method::History(_)
            | Method::Rpc(_)
            | Method::SubRefresh(_) => self.reply(Reply::error(id, ErrorCode::NotAvailable)),
        }
    }

    /// The hook's future for `connect` (or `refresh`), until `deadline` and guarded.
    fn authenticate(
        &self,
        command: protocol::ConnectRequest,
        deadline: Instant,
    ) -> BoxFuture<'static, Outcome<Authenticated>> {
        let Some(authenticator) = self.endpoint.authenticator.clone() else {
            let anonymous = SessionIdentity::from(super::sessions::Identity::anonymous());
            return Box::pin(std::future::ready(Outcome::Answered(Ok(anonymous))));
        };
        let connect = ConnectParts {
            command,
            request: self.request.clone(),
            remote_addr: self.core.remote_addr,
        };
        let hook = authenticator.authenticate(connect, self.state.clone());
        bounded(deadline, hook)
    }

    /// What the busy command waited for is done.
    fn done(&self, done: Done, state: &mut State) {
        match (state.busy.take(), done) {
            (
                Some(Busy::Connecting {
                    id, connect, deadline, ..
                }),
                Done::Authenticated(outcome),
            ) => {
                self.connected(id, connect, deadline, outcome, state);
            }
            (Some(Busy::Refreshing { id, token, .. }), Done::Authenticated(outcome)) => {
                self.refreshed(id, token, outcome, state);
            }
            (Some(Busy::Subscribing { pending, .. }), Done::Decided(outcome)) => {
                self.decided(pending, outcome, state);
            }
            (
                Some(Busy::Opening {
                    pending,
                    binding,
                    expires,
                }),
                Done::Ran(outcome),
            ) => {
                self.opened(pending, binding, expires, outcome, state);
            }
            (Some(Busy::Publishing { id, channel }), Done::Ran(outcome)) => {
                self.published(id, &channel, outcome, state);
            }
            (Some(Busy::Closing(Closing { channel, .. })), Done::Closed(closed)) => {
                state.clocks.handler_by = None;
                if let Err(panic) = closed {
                    tracing::warn!(channel, panic = %Escaped(panic), "on_close panicked");
                }
            }
            (busy, _) => {
                // Each kind of busy command polls its own kind of future.
                debug_assert!(false, "a busy command finished with another's outcome");
                state.busy = busy;
            }
        }
    }

    /// The hook for `connect` `id` has decided: the connect reply, or the refusal.
    fn connected(
        &self,
        id: u32,
        connect: protocol::ConnectRequest,
        deadline: Instant,
        outcome: Outcome<Authenticated>,
        state: &mut State,
    ) {
        let refused = |error: ReplyError| {
            self.reply(Reply::error(id, error));
            Phase::Unusable
        };
        state.phase = match outcome {
            Outcome::Answered(Ok(identity)) => {
                let credentials = self.credentials(&identity);
                match credentials.and_then(|c| Ok((self.connect_result(&identity, c.ttl)?, c))) {
                    Ok((result, credentials)) => {
                        let mut remaining: Vec<String> = identity.subscriptions;
                        // The same channel asked for twice is one subscription.
                        let mut seen = std::collections::HashSet::new();
                        remaining.retain(|channel| seen.insert(channel.clone()));
                        let remaining: VecDeque<String> = remaining.into();
                        if remaining.len() > self.endpoint.settings.max_subscriptions {
                            tracing::warn!(
                                subscriptions = remaining.len(),
                                max = self.endpoint.settings.max_subscriptions,
                                "the authenticate hook asked for more server-side subscriptions than allowed"
                            );
                            self.close(DisconnectCode::ChannelLimit);
                            state.phase = Phase::Unusable;
                            return;
                        }
                        state.connecting = Some(Connecting {
                            id,
                            deadline,
                            result,
                            remaining,
                            made: Vec::new(),
                        });
                        // The user id is the application's, but may quote the token: escaped.
                        tracing::debug!(user = %Escaped(&identity.user), "session connected");
                        state.clocks.expired_by = credentials.expired_by;
                        let session = SessionSide {
                            user: identity.user,
                            data: identity.data,
                            connect_token: connect.token.clone(),
                        };
                        state.connect = protocol::ConnectRequest {
                            token: String::new(),
                            ..connect
                        };
                        state.phase = Phase::Connected(Arc::new(session));
                        return self.next_server_subscription(state);
                    }
                    Err(error) => refused(error.into()),
                }
            }
            Outcome::Answered(Err(reject)) => match reject {
                SessionReject::Unauthorized { message } => refused(reply_error(ErrorCode::Unauthorized, message)),
                SessionReject::TokenExpired => refused(ErrorCode::TokenExpired.into()),
                SessionReject::Temporary { message } => refused(reply_error(ErrorCode::Internal, message)),
                SessionReject::InvalidToken => {
                    self.close(DisconnectCode::InvalidToken);
                    Phase::Unusable
                }
                SessionReject::Forbidden => {
                    self.close(DisconnectCode::PermissionDenied);
                    Phase::Unusable
                }
            },
            Outcome::Panicked(panic) => {
                tracing::warn!(panic = %Escaped(panic), "the sessions' authenticate hook panicked");
                refused(ErrorCode::Internal.into())
            }
            Outcome::TimedOut => {
                tracing::warn!(
                    timeout_ms = self.endpoint.settings.command_timeout.as_millis(),
                    "the sessions' authenticate hook did not answer in time"
                );
                refused(ErrorCode::Internal.into())
            }
        };
        if let Phase::Unusable = state.phase {
            // Closed as stale unless the client leaves first (the SDK does at once): a refused
            // session cannot hold its connection slot by staying silent.
            state.clocks.connect_by = Some(Instant::now() + self.endpoint.settings.connect_timeout);
        }
    }

    /// When `identity`'s credentials expire: the reply's `ttl` and the session's deadline, or
    /// 110 "expired" for a time already past.
    fn credentials(&self, identity: &SessionIdentity) -> Result<Credentials, ErrorCode> {
        let Some(at) = identity.expire_at else {
            return Ok(Credentials::default());
        };
        match at.duration_since(SystemTime::now()) {
            // Rounded up: a session that has a fraction of a second left has not expired.
            Ok(left) if !left.is_zero() => {
                let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                Ok(Credentials {
                    ttl: Some(u32::try_from(seconds).unwrap_or(u32::MAX)),
                    // A time too far off to represent never comes.
                    expired_by: Instant::now().checked_add(left + self.endpoint.settings.expiry_grace),
                })
            }
            _ => Err(ErrorCode::Expired),
        }
    }

    /// The hook checked a `refresh`'s token: the new expiry, or the refusal. The user must
    /// stay the same (101 otherwise). The new token and identity data are what later
    /// subscriptions see (`TokenSource::Connect`, `Handshake::session_data`); the existing
    /// subscriptions stay as they were.
    fn refreshed(&self, id: u32, token: String, outcome: Outcome<Authenticated>, state: &mut State) {
        let Phase::Connected(session) = &state.phase else {
            return;
        };
        let error = match outcome {
            Outcome::Answered(Ok(identity)) if identity.user != session.user => {
                reply_error(ErrorCode::Unauthorized, "a refresh cannot change the user")
            }
            Outcome::Answered(Ok(identity)) => match self.credentials(&identity) {
                Ok(credentials) => {
                    state.clocks.expired_by = credentials.expired_by;
                    state.phase = Phase::Connected(Arc::new(SessionSide {
                        user: identity.user,
                        data: identity.data,
                        connect_token: token,
                    }));
                    let result = RefreshResult {
                        client: self.core.id.to_string(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        expires: credentials.ttl.is_some(),
                        ttl: credentials.ttl.unwrap_or(0),
                    };
                    return self.reply(Reply::result(id, ReplyBody::Refresh(result)));
                }
                // New credentials already expired: as if none came.
                Err(_) => return self.close(DisconnectCode::ConnectionExpired),
            },
            Outcome::Answered(Err(reject)) => match reject {
                SessionReject::Unauthorized { message } => reply_error(ErrorCode::Unauthorized, message),
                SessionReject::Temporary { message } => reply_error(ErrorCode::Internal, message),
                SessionReject::TokenExpired => return self.close(DisconnectCode::ConnectionExpired),
                SessionReject::InvalidToken => return self.close(DisconnectCode::InvalidToken),
                SessionReject::Forbidden => return self.close(DisconnectCode::PermissionDenied),
            },
            Outcome::Panicked(panic) => {
                tracing::warn!(panic = %Escaped(panic), "the sessions' authenticate hook panicked on a refresh");
                ErrorCode::Internal.into()
            }
            Outcome::TimedOut => {
                tracing::warn!("the sessions' authenticate hook did not answer a refresh in time");
                ErrorCode::Internal.into()
            }
        };
        self.reply(Reply::error(id, error));
    }

    /// The connect reply's result for `identity`, or the error code that refuses it instead.
    fn connect_result(&self, identity: &SessionIdentity, ttl: Option<u32>) -> Result<ConnectResult, ErrorCode> {
        let data = match &identity.reply_data {
            None => None,
            Some(Ok(data)) => Some(data.clone()),
            Some(Err(error)) => {
                tracing::warn!(error = %Escaped(error), "the connect reply's data does not encode as JSON");
                return Err(ErrorCode::Internal);
            }
        };
        Ok(ConnectResult {
            client: self.core.id.to_string(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            expires: ttl.is_some(),
            ttl: ttl.unwrap_or(0),
            data,
            ping: self.endpoint.settings.ping_seconds(),
            pong: true,
            ..ConnectResult::default()
        })
    }

    /// `subscribe`: checks what needs no channel, then asks the channel to decide.
    fn subscribe(&self, id: u32, request: protocol::SubscribeRequest, session: &Arc<SessionSide>, state: &mut State) {
        let refuse = |code: ErrorCode| self.reply(Reply::error(id, code));
        let channel = request.channel.as_str();
        if channel.is_empty() {
            return self.bad_request("subscribe", "without a channel");
        }
        if request.kind != 0 || request.tf.is_some() {
            return refuse(ErrorCode::NotAvailable);
        }
        if state.subscriptions.contains_key(channel) {
            return refuse(ErrorCode::AlreadySubscribed);
        }
        if state.subscriptions.len() >= self.endpoint.settings.max_subscriptions {
            return refuse(ErrorCode::LimitExceeded);
        }
        if let Some(ends) = state.resubscribed.get_mut(channel) {
            let now = Instant::now();
            while ends
                .front()
                .is_some_and(|at| now.duration_since(*at) >= RESUBSCRIBE_WINDOW)
            {
                ends.pop_front();
            }
            match ends.len() {
                0 => {
                    state.resubscribed.remove(channel);
                }
                // Refused until the oldest of those ends leaves the window: the SDK's retries
                // back off meanwhile (0.5, 1, 2, 4, 8 s…).
                n if n >= RESUBSCRIBES => {
                    tracing::debug!(channel = %Escaped(channel), "a channel ending every subscription: 100");
                    return refuse(ErrorCode::Internal);
                }
                _ => {}
            }
        }
        self.start_subscription(Announce::Reply(id), request, session, state);
    }

    /// A server-side change of subscriptions (`Hub::subscribe_session`): a subscription made
    /// as a client's (announced with a `subscribe` push), or one ended with 2000.
    fn server_request(&self, request: SubscriptionRequest, state: &mut State) {
        let Phase::Connected(session) = &state.phase else {
            return;
        };
        let session = session.clone();
        match request {
            SubscriptionRequest::Subscribe(channel) => {
                if state.subscriptions.contains_key(channel.as_str()) {
                    return;
                }
                if state.subscriptions.len() >= self.endpoint.settings.max_subscriptions {
                    let error = ErrorCode::LimitExceeded.into();
                    return self.refuse_subscription(Announce::Push, &channel, error);
                }
                let request = protocol::SubscribeRequest {
                    channel,
                    ..protocol::SubscribeRequest::default()
                };
                self.start_subscription(Announce::Push, request, &session, state);
            }
            SubscriptionRequest::Unsubscribe(channel) => {
                if let Some(subscription) = state.subscriptions.remove(channel.as_str()) {
                    let server = UnsubscribeCode::Server;
                    self.unsubscribed(&channel, subscription, server.code(), server.reason().to_owned(), state);
                    state.clocks.subscription_expires = earliest_expiry(&state.subscriptions);
                }
            }
        }
    }

    /// Makes the next server-side subscription of a connect, or, when none is left, queues
    /// the connect reply listing those made and makes them live behind it.
    fn next_server_subscription(&self, state: &mut State) {
        let Phase::Connected(session) = &state.phase else {
            return;
        };
        let session = session.clone();
        while let Some(connecting) = &mut state.connecting {
            let Some(channel) = connecting.remaining.pop_front() else {
                return self.connect_reply(state);
            };
            if connecting.made.iter().any(|(made, _)| **made == *channel) {
                continue;
            }
            let request = protocol::SubscribeRequest {
                channel,
                ..protocol::SubscribeRequest::default()
            };
            self.start_subscription(Announce::Connect, request, &session, state);
            if state.busy.is_some() {
                return;
            }
        }
    }

    /// Queues the connect reply, with the server-side subscriptions made, and makes them live.
    fn connect_reply(&self, state: &mut State) {
        let Some(Connecting {
            id, mut result, made, ..
        }) = state.connecting.take()
        else {
            return;
        };
        result.subs = made
            .iter()
            .map(|(channel, _)| (channel.to_string(), SubscribeResult::default()))
            .collect();
        let slots: Vec<SlotId> = made.iter().map(|(_, subscription)| subscription.slot).collect();
        let reply = Reply::result(id, ReplyBody::Connect(result));
        self.release(&slots, &reply);
        // Pings only once the client has the reply that announces them; the first one
        // jittered, so sessions that connected together (after a restart) ping apart.
        let first = first_ping(self.endpoint.settings.ping_interval, fastrand::f64());
        state.clocks.next_ping = Some(Instant::now() + first);
        state.subscriptions.extend(made);
        state.clocks.subscription_expires = earliest_expiry(&state.subscriptions);
        self.slot_events(state);
    }

    /// Queues `reply` and makes `slots` live behind it.
    fn release(&self, slots: &[SlotId], reply: &Reply) {
        if let Err(error) = self.outbox.release_slots(slots, |bytes| reply.encode_into(bytes)) {
            // Our own types always encode: a bug in this code path.
            tracing::warn!(error = %Escaped(&error), "a reply does not encode");
            self.close(DisconnectCode::InternalServerError);
        }
    }

    /// Asks the channel to decide on a subscription (a client's or a server-side one), or
    /// refuses it at once.
    fn start_subscription(
        &self,
        announce: Announce,
        request: protocol::SubscribeRequest,
        session: &Arc<SessionSide>,
        state: &mut State,
    ) {
        let protocol::SubscribeRequest {
            channel,
            token,
            data,
            recover,
            ..
        } = request;
        let mut subscribing = Subscribing {
            channel: &channel,
            session,
            request: self.request,
            remote_addr: self.core.remote_addr,
            token,
            data,
            id: self.core.id,
            hub: &self.core.hub,
            outbox: &self.core.outbox,
            receiver: self.outbox,
            slot: None,
            member: None,
        };
        let deciding = self.channels.subscribe(&mut subscribing);
        let (slot, member) = (subscribing.slot, subscribing.member);
        let deadline = match (announce, &state.connecting) {
            (Announce::Connect, Some(connecting)) => connecting.deadline,
            _ => Instant::now() + self.endpoint.settings.command_timeout,
        };
        match (deciding, slot) {
            (Ok(deciding), Some(slot)) => {
                let pending = Pending {
                    deadline,
                    member,
                    announce,
                    channel: channel.into_boxed_str(),
                    slot,
                    recover,
                };
                let deciding = bounded(deadline, deciding);
                state.busy = Some(Busy::Subscribing { pending, deciding });
            }
            (deciding, slot) => {
                if let Some(slot) = slot {
                    self.outbox.close_slot(slot);
                }
                let error = deciding.err().unwrap_or_else(|| ErrorCode::Internal.into());
                self.refuse_subscription(announce, &channel, error);
            }
        }
    }

    /// A subscription was refused: the error reply to a client's `subscribe`; a server-side
    /// one is left out of the connect reply, and logged (the application asked for a
    /// subscription its channel refuses).
    fn refuse_subscription(&self, announce: Announce, channel: &str, error: ReplyError) {
        match announce {
            Announce::Reply(id) => self.reply(Reply::error(id, error)),
            Announce::Connect | Announce::Push => tracing::warn!(
                channel = %Escaped(channel),
                code = error.code,
                message = %Escaped(&error.message),
                "a server-side subscription was refused"
            ),
        }
    }

    /// The channel decided on a subscription: a member of its topic (pushes held in its slot)
    /// and its `on_open` started, or the refusal.
    fn decided(&self, pending: Pending, outcome: Outcome<Result<Decided, Reject>>, state: &mut State) {
        let error = match outcome {
            // Credentials already expired: refused as a stale token (the SDK fetches a new
            // one), rather than made live and ended at once, again and again.
            Outcome::Answered(Ok(Decided { expires, .. })) if expires.is_some_and(|at| at <= Instant::now()) => {
                ErrorCode::TokenExpired.into()
            }
            Outcome::Answered(Ok(Decided { binding, expires })) => {
                let core = &self.core;
                core.hub
                    .join_slot(core.id, binding.channel(), &pending.channel, pending.slot);
                if binding.open(&mut state.running) {
                    state.clocks.handler_by = Some(pending.deadline);
                    state.busy = Some(Busy::Opening {
                        pending,
                        binding,
                        expires,
                    });
                } else {
                    self.live(pending, binding, expires, state);
                }
                return;
            }
            Outcome::Answered(Err(reject)) => {
                // The reason may quote the request.
                tracing::debug!(reject = %Escaped(&reject), "subscription refused");
                refused(&reject)
            }
            Outcome::Panicked(panic) => {
                tracing::warn!(panic = %Escaped(panic), "a subscription's decision panicked");
                ErrorCode::Internal.into()
            }
            Outcome::TimedOut => {
                tracing::warn!(
                    timeout_ms = self.endpoint.settings.command_timeout.as_millis(),
                    "a channel's on_connect did not answer a subscription in time"
                );
                ErrorCode::Internal.into()
            }
        };
        self.outbox.close_slot(pending.slot);
        self.refuse_subscription(pending.announce, &pending.channel, error);
        self.next_server_subscription(state);
    }

    /// A subscription's `on_open` ended: live if it succeeded; otherwise refused with 100
    /// (temporary: the SDK retries with backoff), and ended as a connection whose `on_open`
    /// failed is, its `on_close` run.
    fn opened(
        &self,
        pending: Pending,
        binding: Box<dyn Binding>,
        expires: Option<Instant>,
        outcome: running::Outcome,
        state: &mut State,
    ) {
        state.clocks.handler_by = None;
        let error = match outcome {
            Ok(Ok(())) => return self.live(pending, binding, expires, state),
            Ok(Err(error)) => Error::Handler(error),
            Err(panic) => Error::HandlerPanicked(guard::panic_message(panic.as_ref())),
        };
        self.report(&*binding, &error);
        self.core
            .hub
            .leave_slot(self.core.id, binding.channel(), &pending.channel);
        self.outbox.close_slot(pending.slot);
        self.refuse_subscription(pending.announce, &pending.channel, ErrorCode::Internal.into());
        let info = CloseInfo {
            code: CloseCode::Error,
            reason: "on_open failed".to_owned(),
            by_server: true,
        };
        state.closings.extend(closing(&*binding, info));
        self.next_server_subscription(state);
    }

    /// The running handler took its time: an `on_open` is dropped and its subscription
    /// refused as one whose `on_open` failed; an `on_close` goes on in a task of its own (the
    /// server's, so a shutdown waits for it), and the session with its commands.
    fn handler_timed_out(&self, state: &mut State) {
        let (pending, binding, expires) = match state.busy.take() {
            Some(Busy::Opening {
                pending,
                binding,
                expires,
            }) => (pending, binding, expires),
            Some(Busy::Closing(Closing { channel, future })) => {
                tracing::warn!(channel, "on_close takes long: it goes on beside the session");
                let span = tracing::Span::current();
                self.lifecycle.spawn(async move {
                    if let Err(panic) = future.instrument(span).await {
                        tracing::warn!(channel, panic = %Escaped(panic), "on_close panicked");
                    }
                });
                return;
            }
            busy => {
                state.busy = busy;
                return;
            }
        };
        state.running = Running::default();
        let timeout = self.endpoint.settings.command_timeout;
        let error = format!("on_open did not finish within {timeout:?}");
        self.opened(pending, binding, expires, Ok(Err(error.into())), state);
    }

    /// Queues the `subscribe` reply and makes the subscription live: the pushes its slot held
    /// follow the reply.
    fn live(&self, pending: Pending, binding: Box<dyn Binding>, expires: Option<Instant>, state: &mut State) {
        let Pending {
            deadline: _,
            member,
            announce,
            channel,
            slot,
            recover,
        } = pending;
        let subscription = Subscription {
            binding,
            slot,
            expires,
            _member: member,
            made_by: announce,
        };
        let announcement = match announce {
            Announce::Reply(id) => {
                let result = SubscribeResult {
                    was_recovering: recover,
                    ..SubscribeResult::default()
                };
                Reply::result(id, ReplyBody::Subscribe(result))
            }
            Announce::Push => Reply::push(&*channel, PushBody::Subscribe(SubscribePush::default())),
            Announce::Connect => {
                // Live with the connect reply, once all are made.
                match &mut state.connecting {
                    Some(connecting) => connecting.made.push((channel, subscription)),
                    // Only a connect makes these; ended as any, should it ever be otherwise.
                    None => {
                        debug_assert!(false, "a server-side subscription of a connect after it");
                        let info = CloseInfo {
                            code: CloseCode::Error,
                            reason: "internal server error".to_owned(),
                            by_server: true,
                        };
                        self.end(&channel, subscription, info, state);
                    }
                }
                return self.next_server_subscription(state);
            }
        };
        self.release(&[slot], &announcement);
        state.subscriptions.insert(channel, subscription);
        state.clocks.subscription_expires = earliest_expiry(&state.subscriptions);
        // Its handler may have closed it, or it lagged, while it was pending.
        self.slot_events(state);
    }

    /// `unsubscribe`: the subscription ends (its `on_close` runs with 1000, not by the
    /// server); a channel not subscribed is answered alike.
    fn unsubscribe(&self, id: u32, channel: &str, state: &mut State) {
        if let Some(subscription) = state.subscriptions.remove(channel) {
            let info = CloseInfo {
                code: CloseCode::Normal,
                reason: "unsubscribed".to_owned(),
                by_server: false,
            };
            self.end(channel, subscription, info, state);
        }
        self.reply(Reply::result(id, ReplyBody::Unsubscribe));
    }

    /// `publish`: the data as the channel's client message, through the subscription's
    /// binding as a connection's message; answered once its handler returns.
    fn publish(&self, id: u32, publish: protocol::PublishRequest, state: &mut State) {
        let refuse = |code: ErrorCode, message: &str| self.reply(Reply::error(id, reply_error(code, message)));
        let subscription = state.subscriptions.get(publish.channel.as_str());
        // Ended already (its handler closed it, earlier in this frame): no longer subscribed,
        // though its `unsubscribe` push is still to be queued.
        let Some(subscription) = subscription.filter(|s| !self.core.outbox.is_slot_ended(s.slot)) else {
            return refuse(ErrorCode::PermissionDenied, "");
        };
        if publish.kind != 0 {
            return refuse(ErrorCode::NotAvailable, "");
        }
        let Some(data) = publish.data else {
            return refuse(ErrorCode::BadRequest, "no data");
        };
        let binding = &*subscription.binding;
        if state.runner_of.replace(subscription.slot) != Some(subscription.slot) {
            state.running.release();
        }
        // The command's own copy of the data becomes the frame, without another copy.
        let data = String::from(Box::<str>::from(data));
        match binding.dispatch(WsMessage::text(data), &mut state.running) {
            Ok(true) => {
                let channel = publish.channel.into_boxed_str();
                state.busy = Some(Busy::Publishing { id, channel });
            }
            Ok(false) => refuse(ErrorCode::NotAvailable, ""),
            Err(error) => {
                // Never the channel's error reply: the publish reply says it (the session's
                // only way to answer this command).
                let message = Report(&error).to_string();
                self.report(binding, &error);
                refuse(ErrorCode::BadRequest, &message);
            }
        }
    }

    /// A publish's handler ended: the publish reply, or 100 for its error or panic (reported
    /// to the channel's `on_error`; the subscription and the session stay).
    fn published(&self, id: u32, channel: &str, outcome: running::Outcome, state: &mut State) {
        let error = match outcome {
            Ok(Ok(())) => return self.reply(Reply::result(id, ReplyBody::Publish)),
            Ok(Err(error)) => Error::Handler(error),
            Err(panic) => Error::HandlerPanicked(guard::panic_message(panic.as_ref())),
        };
        if let Some(subscription) = state.subscriptions.get(channel) {
            self.report(&*subscription.binding, &error);
        }
        self.reply(Reply::error(id, ErrorCode::Internal));
    }

    /// Acts on what live slots report: a lag goes to the channel's `on_lag`; an ended slot
    /// (its lag policy, its handler's `close`) is unsubscribed with the push it asked for.
    fn slot_events(&self, state: &mut State) {
        for event in self.outbox.take_slot_events() {
            let Some((channel, subscription)) = state
                .subscriptions
                .iter()
                .find(|(_, subscription)| subscription.slot == event.slot)
            else {
                continue;
            };
            let binding = &*subscription.binding;
            if event.dropped > 0 && !binding.on_lag(event.dropped) {
                tracing::warn!(
                    channel = binding.channel(),
                    address = %Escaped(channel),
                    dropped = event.dropped,
                    "a session's subscription lagged"
                );
            }
            let Some(end) = event.ended else {
                continue;
            };
            let channel = channel.clone();
            if let Some(subscription) = state.subscriptions.remove(&channel) {
                self.unsubscribed(&channel, subscription, end.code, end.reason, state);
            }
        }
        state.clocks.subscription_expires = earliest_expiry(&state.subscriptions);
    }

    /// Ends every subscription whose credentials have expired, with the `unsubscribe` push
    /// 2501 "subscription expired" (the SDK resubscribes; a channel that then finds its token
    /// stale refuses, and the SDK asks the application for a new one).
    fn expire_subscriptions(&self, state: &mut State) {
        let now = Instant::now();
        let expired: Vec<Box<str>> = state
            .subscriptions
            .iter()
            .filter(|(_, subscription)| subscription.expires.is_some_and(|at| at <= now))
            .map(|(channel, _)| channel.clone())
            .collect();
        let code = UnsubscribeCode::SubscriptionExpired;
        for channel in expired {
            if let Some(subscription) = state.subscriptions.remove(&channel) {
                self.unsubscribed(&channel, subscription, code.code(), code.reason().to_owned(), state);
            }
        }
        state.clocks.subscription_expires = earliest_expiry(&state.subscriptions);
    }

    /// Ends a subscription the server ended: its `unsubscribe` push, then its end.
    fn unsubscribed(&self, channel: &str, subscription: Subscription, code: u32, reason: String, state: &mut State) {
        let resubscribe = sdk_resubscribes_after_unsubscribe(code);
        if let (Announce::Push, true) = (subscription.made_by, resubscribe) {
            // Nobody would make it again: ended for good, and said so.
            tracing::warn!(channel = %Escaped(channel), code, "a server-side subscription ended for good");
            let server = UnsubscribeCode::Server;
            return self.unsubscribed(channel, subscription, server.code(), reason, state);
        }
        if let (Announce::Connect, true) = (subscription.made_by, resubscribe) {
            let close = match code == UnsubscribeCode::SubscriptionExpired.code() {
                true => DisconnectCode::SubscriptionExpired,
                false => DisconnectCode::InsufficientState,
            };
            let info = CloseInfo {
                code: CloseCode::from(close.code()),
                reason: close.reason().to_owned(),
                by_server: true,
            };
            self.end(channel, subscription, info, state);
            return self.close(close);
        }
        if resubscribe {
            let now = Instant::now();
            // Only channels ended within the window are remembered.
            state.resubscribed.retain(|_, ends| {
                ends.back()
                    .is_some_and(|at| now.duration_since(*at) < RESUBSCRIBE_WINDOW)
            });
            let ends = state.resubscribed.entry(channel.into()).or_default();
            ends.push_back(now);
            if ends.len() > RESUBSCRIBES {
                ends.pop_front();
            }
        }
        let push = Reply::push(
            channel,
            PushBody::Unsubscribe(UnsubscribePush {
                code,
                reason: reason.clone(),
            }),
        );
        let info = CloseInfo {
            code: CloseCode::from(u16::try_from(code).unwrap_or(u16::MAX)),
            reason,
            by_server: true,
        };
        self.end(channel, subscription, info, state);
        self.reply(push);
    }

    /// Ends a subscription taken out of the table: out of its topic, its slot freed, its
    /// `on_close` to run in turn (after the handler running now, if any: one of its own, say).
    fn end(&self, channel: &str, subscription: Subscription, info: CloseInfo, state: &mut State) {
        let Subscription { binding, slot, .. } = subscription;
        self.core.hub.leave_slot(self.core.id, binding.channel(), channel);
        self.outbox.close_slot(slot);
        state.closings.extend(closing(&*binding, info));
    }

    /// Passes an error to the channel's `on_error`, or logs it.
    fn report(&self, binding: &dyn Binding, error: &Error) {
        if !binding.on_error(error) {
            tracing::debug!(channel = binding.channel(), error = %Escaped(Report(error)), "subscription error");
        }
    }

    /// A command over the server's [rate limit](crate::Server::rate_limit): closes with 3013
    /// "too many requests" (the SDK reconnects), or, under `RateLimitAction::Reply`, answers
    /// it with 111 "too many requests", temporary (the SDK backs off), unhandled. Every such
    /// command gets its reply: an SDK call waits for one.
    fn rate_limited(&self, id: u32) {
        self.core.hub.counters().add(Count::RateLimited, LABEL, 1);
        let action = self.config.rate_limit.map(|limit| limit.action()).unwrap_or_default();
        match action {
            RateLimitAction::Close => self.close(DisconnectCode::TooManyRequests),
            // A command without an id (`send`) has no reply to get.
            RateLimitAction::Reply if id != 0 => self.reply(Reply::error(id, ErrorCode::TooManyRequests)),
            RateLimitAction::Reply => {}
        }
    }

    /// A protocol violation: closes with 3501.
    fn bad_request(&self, method: &'static str, when: &'static str) {
        tracing::debug!(method, when, "command refused");
        self.close(DisconnectCode::BadRequest);
    }

    /// Queues a reply, a ping or a push of the session's own: never dropped (the outbox closes
    /// the session with 3008 once it holds more than `max_queued_bytes`), joined with the
    /// session's own messages next to it into one frame.
    fn reply(&self, reply: Reply) {
        if let Err(error) = self.outbox.push_reply(|bytes| reply.encode_into(bytes)) {
            // Our own types always encode: a bug in this code path.
            tracing::warn!(error = %Escaped(&error), "a reply does not encode");
            self.close(DisconnectCode::InternalServerError);
        }
    }

    /// Queues the server's ping, `{}`, as one of the session's own messages.
    fn ping(&self) {
        let ping = |bytes: &mut Vec<u8>| {
            bytes.extend_from_slice(protocol::PING.as_bytes());
            Ok::<_, std::convert::Infallible>(())
        };
        let Ok(_) = self.outbox.push_reply(ping);
    }

    fn close(&self, code: DisconnectCode) {
        self.core.close(CloseCode::from(code.code()), code.reason());
    }
}
