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
//! Not yet here (later slices of `docs/design/sessions.md`): subscriptions (every channel
//! command gets 108), the expiry of credentials (3005) and the jitter of the first ping.
//!
//! A session is a member of the hub from its registration (so a shutdown closes it with
//! 3001), and its outbox is a session's (`outbox::session_outbox`): its replies and pings are
//! its own messages, never dropped, joined into frames, and bounded in bytes (3008).

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::SystemTime;

use futures_util::StreamExt;
use futures_util::future::{BoxFuture, poll_fn};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

use super::config::Config;
use super::conn::{CloseInfo, Core};
use super::decision::{Route, Session, Shared, subprotocol_offers};
use super::guard;
use super::reader::{close_info, no_status};
use super::response::Reject;
use super::sessions::{Authenticated, Authenticator, ConnectParts, SessionIdentity, SessionReject, Settings};
use super::task::{ConnEnv, Registrant, Registration, drive, log_closed};
use super::transport::{BoxedTransport, SharedTransport};
use super::wake::WokenStream;
use super::writer::write_loop;
use crate::log::Escaped;
use crate::metrics::Count;
use crate::outbox::{OutboxReceiver, SessionLimits, session_outbox};
use crate::session::codes::{DisconnectCode, ErrorCode};
use crate::session::frame::decode_commands;
use crate::session::protocol::{self, Command, ConnectResult, Method, Reply, ReplyBody, ReplyError};
use crate::transport::MessageStream;

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
    /// The path, without its leading `/`: the key of the sessions' connection-limit slots.
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
            let slot = shared.limits.acquire(&endpoint.address)?;
            let env = shared.env(remote_addr, slot, None);
            let registered = register(endpoint, request, env);
            let lifecycle = shared.lifecycle.clone();
            let session: Session = Box::new(move |transport| lifecycle.spawn(run(registered, transport)));
            Ok(session)
        })
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
    config: Arc<Config>,
    span: tracing::Span,
}

fn register<S: Send + Sync + 'static>(
    endpoint: Arc<EndpointInner>,
    request: Arc<http::request::Parts>,
    env: ConnEnv<S>,
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
    };
    // Never the query string (tokens may travel there).
    let span = tracing::info_span!("ws_session", id = %core.id, remote_addr = ?core.remote_addr);
    Registered {
        registration: Registration::new(Box::new(SessionCore(core)), receiver, slot),
        endpoint,
        request,
        state,
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
        config,
        span,
    } = registered;
    registration.open();
    tracing::info!(parent: &span, "session opened");
    let started = Instant::now();
    let transport = SharedTransport::new(transport);
    async move {
        let info = {
            let (outbox, core) = (&registration.outbox, &registration.binding.0);
            let mut stream = WokenStream::new(&transport);
            let reader = Reader {
                core,
                outbox,
                config: &config,
                endpoint: &endpoint,
                request: &request,
                state: &state,
            };
            let reader = std::pin::pin!(reader.read_loop(&mut stream));
            let writer = std::pin::pin!(write_loop(&transport, outbox, core.hub.counters(), LABEL));
            drive(reader, writer, outbox, &config, &span).await
        };
        drop(transport);
        log_closed(&span, &info, started, "session closed");
    }
}

/// Where the session is in the protocol.
enum Phase {
    /// Upgraded; waiting for `connect`.
    Fresh,
    /// `connect` was answered with a result.
    Connected(#[expect(dead_code, reason = "read by the subscriptions, the next slice of sessions")] SessionIdentity),
    /// `connect` was answered with an error: the next command closes the session (3501).
    Unusable,
}

/// How the `authenticate` hook ended.
enum HookOutcome {
    Answered(Authenticated),
    Panicked(String),
    TimedOut,
}

/// The `connect` being decided: its command's id, and the hook's future.
type Deciding = (u32, BoxFuture<'static, HookOutcome>);

/// A session's clocks: the connect deadline, pings and their pong deadline, and how long a
/// closing session waits for the peer's close reply.
struct Clocks {
    connect_by: Option<Instant>,
    next_ping: Option<Instant>,
    pong_by: Option<Instant>,
    closing_by: Option<Instant>,
}

/// What is due when the timer fires.
enum Due {
    Stale,
    Ping,
    NoPong,
    CloseReply,
}

impl Clocks {
    fn next_deadline(&self) -> Option<Instant> {
        if self.closing_by.is_some() {
            return self.closing_by;
        }
        [self.connect_by, self.next_ping, self.pong_by]
            .into_iter()
            .flatten()
            .min()
    }

    fn due(&mut self, now: Instant, settings: &Settings) -> Option<Due> {
        let passed = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        if let Some(closing_by) = self.closing_by {
            return (closing_by <= now).then_some(Due::CloseReply);
        }
        if passed(self.connect_by) {
            return Some(Due::Stale);
        }
        if passed(self.pong_by) {
            return Some(Due::NoPong);
        }
        if passed(self.next_ping) {
            // Ticks missed while busy are not made up: the next ping is a full interval away.
            self.next_ping = Some(now + settings.ping_interval);
            // A ping while one is unanswered does not move that one's deadline.
            self.pong_by.get_or_insert(now + settings.pong_timeout);
            return Some(Due::Ping);
        }
        None
    }
}

/// What the read loop keeps from turn to turn, outside every branch of its `select!`.
struct State {
    phase: Phase,
    /// Commands read and not yet handled, in order: the rest of a frame behind a `connect`
    /// whose hook runs.
    queue: VecDeque<Command>,
    deciding: Option<Deciding>,
    clocks: Clocks,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    attention_waker: Option<Waker>,
    peer_close: Option<CloseFrame>,
}

/// The reading half of one session.
struct Reader<'a> {
    core: &'a Core,
    outbox: &'a OutboxReceiver,
    config: &'a Config,
    endpoint: &'a EndpointInner,
    request: &'a Arc<http::request::Parts>,
    state: &'a Arc<dyn Any + Send + Sync>,
}

impl<'a> Reader<'a> {
    /// Reads until the session has ended; returns how it ended.
    #[expect(clippy::manual_async_fn, reason = "an async fn keeps room for its arguments twice")]
    fn read_loop(self, stream: &'a mut (impl MessageStream + 'a)) -> impl Future<Output = CloseInfo> + 'a {
        async move {
            let mut state = self.open();
            loop {
                let (closing, queued) = self.outbox.pressure();
                if closing {
                    state
                        .clocks
                        .closing_by
                        .get_or_insert(Instant::now() + self.config.close_timeout);
                    state.queue.clear();
                    state.deciding = None;
                } else if state.deciding.is_none() && !state.queue.is_empty() {
                    self.work_queue(&mut state);
                    continue;
                }
                // Replies to a burst pile up while this task reads: let the writer drain them.
                if queued >= self.config.outbound_queue.div_ceil(2) {
                    tokio::task::yield_now().await;
                }
                self.arm(&mut state);
                let idle = state.deciding.is_none() && state.queue.is_empty();
                let item = tokio::select! {
                    // Commands are handled one at a time, in order: no frame is read while a
                    // command waits.
                    item = stream.next(), if idle => item,
                    outcome = poll_fn(|cx| match &mut state.deciding {
                        Some((_, hook)) => hook.as_mut().poll(cx),
                        None => Poll::Pending,
                    }), if state.deciding.is_some() => {
                        if let Some((id, _)) = state.deciding.take() {
                            self.decided(id, outcome, &mut state);
                        }
                        continue;
                    }
                    // A close was requested (a write failure, a full queue): the loop's head
                    // sees it.
                    () = poll_fn(|cx| self.outbox.poll_attention(cx, &mut state.attention_waker)) => continue,
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
            close_info(self.outbox, state.peer_close)
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
            deciding: None,
            clocks: Clocks {
                connect_by: Some(connect_by),
                next_ping: None,
                pong_by: None,
                closing_by: None,
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
            Some(Due::NoPong) => self.close(DisconnectCode::NoPong),
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

    /// Handles queued commands in order, until one waits (a `connect`'s hook) or the session
    /// is closing.
    fn work_queue(&self, state: &mut State) {
        while let Some(command) = state.queue.pop_front() {
            self.handle(command, state);
            if state.deciding.is_some() || self.outbox.is_closing() {
                return;
            }
        }
    }

    /// Handles one command: answers it, starts its hook, or closes the session.
    fn handle(&self, command: Command, state: &mut State) {
        let Command { id, method } = command;
        let name = method.name();
        match (&state.phase, method) {
            (Phase::Fresh, Method::Connect(connect)) => {
                state.clocks.connect_by = None;
                state.deciding = Some((id, self.authenticate(connect)));
            }
            (Phase::Fresh, _) => self.bad_request(name, "before `connect`"),
            (Phase::Unusable, _) => self.bad_request(name, "after a refused `connect`"),
            (Phase::Connected(_), Method::Connect(_)) => self.bad_request(name, "a second time"),
            // Heard already, as any command.
            (Phase::Connected(_), Method::Pong) => {}
            (Phase::Connected(_), Method::Ping) => self.reply(Reply::result(id, ReplyBody::Ping)),
            (Phase::Connected(_), Method::Send(_)) => tracing::debug!("`send` ignored: no handler for it"),
            (
                Phase::Connected(_),
                Method::Subscribe(_)
                | Method::Unsubscribe(_)
                | Method::Publish(_)
                | Method::Presence(_)
                | Method::PresenceStats(_)
                | Method::History(_)
                | Method::Rpc(_)
                | Method::Refresh(_)
                | Method::SubRefresh(_),
            ) => self.reply(Reply::error(id, ErrorCode::NotAvailable)),
        }
    }

    /// The hook's future for `connect`, under the command timeout and guarded.
    fn authenticate(&self, command: protocol::ConnectRequest) -> BoxFuture<'static, HookOutcome> {
        let Some(authenticator) = self.endpoint.authenticator.clone() else {
            let anonymous = SessionIdentity::from(super::sessions::Identity::anonymous());
            return Box::pin(std::future::ready(HookOutcome::Answered(Ok(anonymous))));
        };
        let connect = ConnectParts {
            command,
            request: self.request.clone(),
            remote_addr: self.core.remote_addr,
        };
        let hook = authenticator.authenticate(connect, self.state.clone());
        let timeout = self.endpoint.settings.command_timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, guard::catch(hook)).await {
                Ok(Ok(answered)) => HookOutcome::Answered(answered),
                Ok(Err(panic)) => HookOutcome::Panicked(panic),
                Err(_) => HookOutcome::TimedOut,
            }
        })
    }

    /// The hook for `connect` `id` has decided: the connect reply, or the refusal.
    fn decided(&self, id: u32, outcome: HookOutcome, state: &mut State) {
        let refused = |error: ReplyError| {
            self.reply(Reply::error(id, error));
            Phase::Unusable
        };
        let with_message = |code: ErrorCode, message: String| ReplyError {
            code: code.code(),
            message: match message.is_empty() {
                true => code.message().to_owned(),
                false => message,
            },
            temporary: code.temporary(),
        };
        state.phase = match outcome {
            HookOutcome::Answered(Ok(identity)) => match self.connect_result(&identity) {
                Ok(result) => {
                    self.reply(Reply::result(id, ReplyBody::Connect(result)));
                    // The user id is the application's, but may quote the token: escaped.
                    tracing::debug!(user = %Escaped(&identity.user), "session connected");
                    let now = Instant::now();
                    state.clocks.next_ping = Some(now + self.endpoint.settings.ping_interval);
                    Phase::Connected(identity)
                }
                Err(error) => refused(error.into()),
            },
            HookOutcome::Answered(Err(reject)) => match reject {
                SessionReject::Unauthorized { message } => refused(with_message(ErrorCode::Unauthorized, message)),
                SessionReject::TokenExpired => refused(ErrorCode::TokenExpired.into()),
                SessionReject::Temporary { message } => refused(with_message(ErrorCode::Internal, message)),
                SessionReject::InvalidToken => {
                    self.close(DisconnectCode::InvalidToken);
                    Phase::Unusable
                }
                SessionReject::Forbidden => {
                    self.close(DisconnectCode::PermissionDenied);
                    Phase::Unusable
                }
            },
            HookOutcome::Panicked(panic) => {
                tracing::warn!(panic = %Escaped(panic), "the sessions' authenticate hook panicked");
                refused(ErrorCode::Internal.into())
            }
            HookOutcome::TimedOut => {
                tracing::warn!(
                    timeout_ms = self.endpoint.settings.command_timeout.as_millis(),
                    "the sessions' authenticate hook did not answer in time"
                );
                refused(ErrorCode::Internal.into())
            }
        };
    }

    /// The connect reply's result for `identity`, or the error code that refuses it instead.
    fn connect_result(&self, identity: &SessionIdentity) -> Result<ConnectResult, ErrorCode> {
        let ttl = match identity.expire_at {
            None => None,
            Some(at) => match at.duration_since(SystemTime::now()) {
                // Rounded up: a session that has a fraction of a second left has not expired.
                Ok(left) if !left.is_zero() => {
                    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                    Some(u32::try_from(seconds).unwrap_or(u32::MAX))
                }
                _ => return Err(ErrorCode::Expired),
            },
        };
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
