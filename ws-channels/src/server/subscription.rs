//! A session's subscription to a registered channel, as the session task asks for one: what
//! a channel's route is given to decide it ([`Subscribing`]), and what finds the route of a
//! channel string ([`Channels`], the server's router with its state type erased).
//!
//! A subscription is the channel's own [`Binding`] (the same `Bound` a connection of the
//! channel has), whose [`Core`] is scoped to the subscription: its id is the session's, its
//! address the channel string, its messages go to a slot of the session's outbox as `pub`
//! pushes. So a channel's handler code is the same for both, and the session task, compiled
//! once, reaches every channel through the same object-safe trait as the connection task.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::bound::Binding;
use super::conn::{Core, SubscriptionScope};
use super::handshake::{InSession, SessionSide};
use super::limits;
use super::response::Reject;
use crate::channel::LagPolicy;
use crate::conn_id::ConnId;
use crate::hub::Hub;
use crate::outbox::{OutboxReceiver, OutboxSender, SlotId};
use crate::session::codes::ErrorCode;
use crate::session::protocol::{Raw, ReplyError, pub_push_prefix};

/// The longest channel string a session may subscribe to, in bytes (Centrifugo's default).
pub(crate) const MAX_CHANNEL_LENGTH: usize = 255;

/// A channel's decision on a subscription: the channel's `on_connect` (or `authenticate`)
/// and `authorize`, then the subscription. Refused with the channel's [`Reject`].
pub(crate) type Deciding = BoxFuture<'static, Result<Decided, Reject>>;

/// A subscription the channel accepted.
pub(crate) struct Decided {
    /// The channel's handler, bound to the subscription's scoped connection.
    pub(crate) binding: Box<dyn Binding>,
    /// When its credentials expire (`Handshake::expire_at`): it is then ended with 2501.
    pub(crate) expires: Option<tokio::time::Instant>,
}

/// A `subscribe` command as a channel's route sees it: the session, the command's token and
/// data, and the means to open the subscription's slot.
pub(crate) struct Subscribing<'a> {
    /// The channel string, exactly as the client sent it.
    pub(crate) channel: &'a str,
    pub(crate) session: &'a Arc<SessionSide>,
    pub(crate) request: &'a Arc<http::request::Parts>,
    pub(crate) remote_addr: Option<SocketAddr>,
    pub(crate) token: String,
    pub(crate) data: Option<Raw>,
    pub(crate) id: ConnId,
    pub(crate) hub: &'a Hub,
    pub(crate) outbox: &'a OutboxSender,
    pub(crate) receiver: &'a OutboxReceiver,
    /// The slot opened by [`core`](Self::core), for the session task to close if the channel
    /// refuses.
    pub(crate) slot: Option<SlotId>,
    /// Its place under the server's `max_connections_per_address`, held while it lasts.
    pub(crate) member: Option<limits::Slot>,
}

impl Subscribing<'_> {
    /// The subscription's core: opens its slot (pending: pushes are held until its
    /// `subscribe` reply is queued) under the channel's lag policy.
    pub(crate) fn core(&mut self, channel: &'static str, policy: LagPolicy) -> Core {
        let slot = self.receiver.open_slot(channel, policy);
        self.slot = Some(slot);
        Core {
            id: self.id,
            address: self.channel.into(),
            remote_addr: self.remote_addr,
            outbox: self.outbox.clone(),
            hub: self.hub.clone(),
            subscription: Some(Box::new(SubscriptionScope {
                slot,
                push_prefix: pub_push_prefix(self.channel).into(),
            })),
        }
    }

    /// What the channel's handshake knows of the session.
    pub(crate) fn in_session(&mut self) -> InSession {
        InSession {
            session: self.session.clone(),
            subscribe_token: std::mem::take(&mut self.token),
            subscribe_data: self.data.take(),
        }
    }
}

/// The server's channels, as a session finds them by channel string: the router, its state
/// type erased.
pub(crate) trait Channels: Send + Sync + 'static {
    /// Matches `subscribing.channel` and starts the channel's decision on it, or refuses it
    /// at once: 102 when no channel has the name, 107 for a malformed or non-canonical one,
    /// 108 for a channel that cannot travel over a session, 106 when the address has as many
    /// members as the server allows per address.
    fn subscribe(&self, subscribing: &mut Subscribing<'_>) -> Result<Deciding, ReplyError>;
}

/// An error reply with its code's message, or `message` when one is given.
pub(crate) fn reply_error(code: ErrorCode, message: impl Into<String>) -> ReplyError {
    let message = message.into();
    ReplyError {
        code: code.code(),
        message: match message.is_empty() {
            true => code.message().to_owned(),
            false => message,
        },
        temporary: code.temporary(),
    }
}

/// The error reply for a channel's refusal: 109 "token expired" for
/// [`Reject::token_expired`] (the SDK fetches a new token and retries), 103 "permission
/// denied" for any other 4xx (the session stays; a refused subscription is the client's to
/// give up), 100 temporary for a 5xx (the SDK retries with backoff). With the protocol's fixed messages, as Centrifugo's: the
/// reject's reason is the server's to log, not the client's to read.
pub(crate) fn refused(reject: &Reject) -> ReplyError {
    if reject.is_token_expired() {
        return ErrorCode::TokenExpired.into();
    }
    match reject.status().is_server_error() {
        true => ErrorCode::Internal.into(),
        false => ErrorCode::PermissionDenied.into(),
    }
}
