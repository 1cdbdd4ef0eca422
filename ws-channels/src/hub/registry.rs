//! This node's subscriptions: which connections are subscribed to which topic, keyed by the
//! channel's stable `NAME` and the topic's name (looked up by `&str`, without allocating), and
//! each member's route, so fan-out needs nothing of `server/`. It tells the engine, if one is
//! attached, which topics this node needs.
//!
//! A member is a direct connection (its outbox gets a topic's frames as they are) or a
//! session (`docs/design/sessions.md`, B3): each of its subscriptions is a route to a slot of
//! the session's outbox, and gets a topic's frames wrapped in a `pub` push on the topic's
//! channel string.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message as WsMessage, Utf8Bytes};

use super::backplane::{Backplane, BackplaneError};
use crate::conn_id::ConnId;
use crate::outbox::{OutboxSender, SlotId, SubscriptionRequest};
use crate::session::codes::DisconnectCode;
use crate::session::protocol::{pub_push_prefix, wrap_pub};

/// Topic name → its local members. The name is allocated once per topic: each member's list
/// of joined topics shares it.
type Topics = HashMap<Arc<str>, Topic>;

#[derive(Default)]
pub(crate) struct Registry {
    /// Channel `NAME` → its topics. (`&'static str` keys are looked up by any `&str`.)
    topics: RwLock<HashMap<&'static str, Topics>>,
    members: RwLock<HashMap<ConnId, Member>>,
    /// The engine, told of every topic this node starts or stops needing while the lock that
    /// changes `topics` is held, so it sees the changes in the order they happened.
    engine: OnceLock<Arc<dyn Backplane>>,
}

/// A topic's local members, by kind: the direct ones' loop in [`Registry::fan_out`] is the
/// one it was before sessions, and a topic without session members never wraps a frame.
#[derive(Default)]
struct Topic {
    direct: HashMap<ConnId, OutboxSender>,
    sessions: HashMap<ConnId, SlotRoute>,
    /// `{"push":{"channel":<topic>,"pub":{"data":`, made the first time a session member of
    /// the topic gets a frame, and kept for the topic's life.
    push_prefix: OnceLock<Box<str>>,
}

/// Where a session's subscription to a topic gets the topic's frames.
struct SlotRoute {
    outbox: OutboxSender,
    slot: SlotId,
}

impl Topic {
    fn len(&self) -> usize {
        self.direct.len() + self.sessions.len()
    }

    fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.sessions.is_empty()
    }

    /// `frame` as a `pub` push on channel `name` (this topic's name), one new frame whose
    /// bytes every session member shares; `None` for a frame that is no JSON text (no session
    /// can subscribe to a channel whose codec makes one).
    fn pub_push(&self, name: &str, frame: &WsMessage) -> Option<WsMessage> {
        let WsMessage::Text(text) = frame else {
            return None;
        };
        let prefix = self.push_prefix.get_or_init(|| pub_push_prefix(name).into());
        let wrapped = Bytes::from(wrap_pub(prefix, text.as_bytes()));
        Utf8Bytes::try_from(wrapped).ok().map(WsMessage::Text)
    }
}

/// A connection as the registry knows it: how to reach it, and what it joined (so leaving the
/// server leaves it all).
struct Member {
    outbox: OutboxSender,
    kind: Kind,
}

enum Kind {
    /// A direct connection: its channel, so sends by id cannot reach another channel's
    /// client, and the channel of every topic it joins.
    Direct {
        channel: &'static str,
        topics: Vec<Arc<str>>,
    },
    /// A session: its subscriptions, of any channels, at most one per (channel, topic).
    Session { subscriptions: Vec<Subscription> },
}

/// A session's subscription: a topic of a channel, and its slot in the session's outbox.
struct Subscription {
    channel: &'static str,
    topic: Arc<str>,
    slot: SlotId,
}

impl Registry {
    fn topics(&self) -> RwLockReadGuard<'_, HashMap<&'static str, Topics>> {
        self.topics.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn topics_mut(&self) -> RwLockWriteGuard<'_, HashMap<&'static str, Topics>> {
        self.topics.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn members(&self) -> RwLockReadGuard<'_, HashMap<ConnId, Member>> {
        self.members.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn members_mut(&self) -> RwLockWriteGuard<'_, HashMap<ConnId, Member>> {
        self.members.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn engine(&self) -> Option<&Arc<dyn Backplane>> {
        self.engine.get()
    }

    /// Attaches the engine and tells it every topic this node already needs.
    pub(crate) fn attach_engine(&self, engine: Arc<dyn Backplane>) -> Result<(), BackplaneError> {
        let topics = self.topics_mut();
        self.engine.set(engine).map_err(|_| BackplaneError::AlreadyAttached)?;
        if let Some(engine) = self.engine.get() {
            for (channel, names) in topics.iter() {
                for name in names.keys() {
                    engine.subscribe(channel, name);
                }
            }
        }
        Ok(())
    }

    /// Pushes `frame` to every local member of a topic but `except`; returns how many queued
    /// it. One read lock; no allocation for direct members, one for all session members: the
    /// `pub` push they share, made only if the topic has any.
    pub(crate) fn fan_out(&self, channel: &str, topic: &str, frame: &WsMessage, except: Option<ConnId>) -> usize {
        let topics = self.topics();
        let Some(members) = topics.get(channel).and_then(|names| names.get(topic)) else {
            return 0;
        };
        let direct = members
            .direct
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .filter(|(_, outbox)| outbox.push(frame.clone()).delivered())
            .count();
        if members.sessions.is_empty() {
            return direct;
        }
        let Some(push) = members.pub_push(topic, frame) else {
            return direct;
        };
        let sessions = members
            .sessions
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .filter(|(_, route)| route.outbox.push_slot(route.slot, push.clone()).delivered())
            .count();
        direct + sessions
    }

    /// Pushes `frame` to one connection of `channel`; `false` if there is none (or it is
    /// closing, or its queue dropped the frame). To a session: to each of its subscriptions
    /// of `channel`, as a `pub` push on that subscription's channel string; `true` if any
    /// queued it.
    pub(crate) fn send_to(&self, id: ConnId, channel: &str, frame: WsMessage) -> bool {
        let outbox = {
            let members = self.members();
            let Some(member) = members.get(&id) else {
                return false;
            };
            match &member.kind {
                Kind::Direct { channel: of, .. } if *of == channel => member.outbox.clone(),
                Kind::Direct { .. } => return false,
                // Under the members' lock: a slot's number is reused only once its route is
                // gone, so this cannot push into another subscription's slot.
                Kind::Session { subscriptions } => {
                    let topics = self.topics();
                    let names = topics.get(channel);
                    let mut delivered = false;
                    for subscription in subscriptions.iter().filter(|s| s.channel == channel) {
                        let Some(topic) = names.and_then(|names| names.get(&*subscription.topic)) else {
                            continue;
                        };
                        if let Some(push) = topic.pub_push(&subscription.topic, &frame) {
                            delivered |= member.outbox.push_slot(subscription.slot, push).delivered();
                        }
                    }
                    return delivered;
                }
            }
        };
        outbox.push(frame).delivered()
    }

    /// Asks session `id` to change its subscriptions; `false` if it is no session of this
    /// node, or it is closing.
    pub(crate) fn request(&self, id: ConnId, request: SubscriptionRequest) -> bool {
        let members = self.members();
        match members.get(&id) {
            Some(
                member @ Member {
                    kind: Kind::Session { .. },
                    ..
                },
            ) => member.outbox.request(request),
            _ => false,
        }
    }

    /// How many local members a topic has.
    pub(crate) fn count(&self, channel: &str, topic: &str) -> usize {
        let topics = self.topics();
        topics
            .get(channel)
            .and_then(|names| names.get(topic))
            .map_or(0, Topic::len)
    }

    /// Every topic with local members, and how many: what an engine publishes as this node's
    /// member counts.
    pub(crate) fn counts(&self) -> Vec<(&'static str, Box<str>, usize)> {
        let topics = self.topics();
        topics
            .iter()
            .flat_map(|(channel, names)| {
                names
                    .iter()
                    .map(|(name, members)| (*channel, Box::from(&**name), members.len()))
            })
            .collect()
    }

    /// Registers a connection of `channel` (for sends by id).
    pub(crate) fn attach(&self, id: ConnId, channel: &'static str, outbox: OutboxSender) {
        let kind = Kind::Direct {
            channel,
            topics: Vec::new(),
        };
        self.members_mut().insert(id, Member { outbox, kind });
    }

    /// Registers a session (for sends by id; its subscriptions join with
    /// [`join_slot`](Self::join_slot)).
    pub(crate) fn attach_session(&self, id: ConnId, outbox: OutboxSender) {
        let kind = Kind::Session {
            subscriptions: Vec::new(),
        };
        self.members_mut().insert(id, Member { outbox, kind });
    }

    /// Subscribes a direct connection to a topic of its channel; `false` if it already was (or
    /// is not attached, or is a session: a session joins a topic by subscribing).
    pub(crate) fn join(&self, id: ConnId, topic: &str) -> bool {
        let mut members = self.members_mut();
        let Some(Member {
            outbox,
            kind: Kind::Direct { channel, topics },
        }) = members.get_mut(&id)
        else {
            return false;
        };
        if topics.iter().any(|joined| **joined == *topic) {
            return false;
        }
        let name = self.enter(channel, topic, |members| {
            members.direct.insert(id, outbox.clone());
        });
        // Most connections join only their own address: room for one, not the four a first
        // push reserves; more joins grow the list as usual.
        if topics.capacity() == 0 {
            topics.reserve_exact(1);
        }
        topics.push(name);
        true
    }

    /// Subscribes a session to a topic of `channel`, its pushes routed to `slot` of the
    /// session's outbox; `false` if it already was (or is not attached as a session).
    pub(crate) fn join_slot(&self, id: ConnId, channel: &'static str, topic: &str, slot: SlotId) -> bool {
        let mut members = self.members_mut();
        let Some(Member {
            outbox,
            kind: Kind::Session { subscriptions },
        }) = members.get_mut(&id)
        else {
            return false;
        };
        if subscriptions
            .iter()
            .any(|joined| joined.channel == channel && *joined.topic == *topic)
        {
            return false;
        }
        let route = SlotRoute {
            outbox: outbox.clone(),
            slot,
        };
        let topic = self.enter(channel, topic, |members| {
            members.sessions.insert(id, route);
        });
        subscriptions.push(Subscription { channel, topic, slot });
        true
    }

    /// Adds a member to a topic with `insert`, making the topic (and telling the engine) if it
    /// is its first; returns the topic's shared name.
    fn enter(&self, channel: &'static str, topic: &str, insert: impl FnOnce(&mut Topic)) -> Arc<str> {
        let mut topics = self.topics_mut();
        let names = topics.entry(channel).or_default();
        let (name, members) = match names.get_key_value(topic) {
            Some((name, _)) => (name.clone(), names.get_mut(topic)),
            None => {
                let name: Arc<str> = topic.into();
                if let Some(engine) = self.engine.get() {
                    engine.subscribe(channel, topic);
                }
                (name.clone(), Some(names.entry(name).or_default()))
            }
        };
        if let Some(members) = members {
            insert(members);
        }
        name
    }

    /// Unsubscribes a direct connection from a topic; `false` if it was not subscribed.
    pub(crate) fn leave(&self, id: ConnId, topic: &str) -> bool {
        let mut members = self.members_mut();
        let Some(Member {
            kind: Kind::Direct { channel, topics },
            ..
        }) = members.get_mut(&id)
        else {
            return false;
        };
        let before = topics.len();
        topics.retain(|joined| **joined != *topic);
        if topics.len() == before {
            return false;
        }
        self.remove(channel, topic, |members| members.direct.remove(&id).is_some());
        true
    }

    /// Unsubscribes a session from a topic of `channel`; `false` if it was not subscribed.
    /// Once this returns no push reaches the subscription's slot: the session may reuse it.
    pub(crate) fn leave_slot(&self, id: ConnId, channel: &'static str, topic: &str) -> bool {
        let mut members = self.members_mut();
        let Some(Member {
            kind: Kind::Session { subscriptions },
            ..
        }) = members.get_mut(&id)
        else {
            return false;
        };
        let Some(at) = subscriptions
            .iter()
            .position(|joined| joined.channel == channel && *joined.topic == *topic)
        else {
            return false;
        };
        subscriptions.swap_remove(at);
        self.remove(channel, topic, |members| members.sessions.remove(&id).is_some());
        true
    }

    /// Asks every connection to close; each one's first close request is the one that counts.
    /// A session closes with its protocol's own code for a shutdown (3001), the code a
    /// Centrifugo client reconnects after.
    pub(crate) fn close_all(&self, code: CloseCode, reason: &str) {
        let shutdown = DisconnectCode::Shutdown;
        let members = self.members();
        for member in members.values() {
            match member.kind {
                Kind::Direct { .. } => member.outbox.request_close(code, reason),
                Kind::Session { .. } => member
                    .outbox
                    .request_close(CloseCode::from(shutdown.code()), shutdown.reason()),
            };
        }
    }

    /// Forgets a connection and every subscription it had.
    pub(crate) fn detach(&self, id: ConnId) {
        let Some(member) = self.members_mut().remove(&id) else {
            return;
        };
        match member.kind {
            Kind::Direct { channel, topics } => {
                for topic in &topics {
                    self.remove(channel, topic, |members| members.direct.remove(&id).is_some());
                }
            }
            Kind::Session { subscriptions } => {
                for Subscription { channel, topic, .. } in &subscriptions {
                    self.remove(channel, topic, |members| members.sessions.remove(&id).is_some());
                }
            }
        }
    }

    /// Takes a member out of a topic with `take`, dropping the topic (and telling the engine)
    /// if it was its last.
    fn remove(&self, channel: &'static str, topic: &str, take: impl FnOnce(&mut Topic) -> bool) {
        let mut topics = self.topics_mut();
        let Some(names) = topics.get_mut(channel) else {
            return;
        };
        let Some(members) = names.get_mut(topic) else {
            return;
        };
        take(members);
        if members.is_empty() {
            names.remove(topic);
            if let Some(engine) = self.engine.get() {
                engine.unsubscribe(channel, topic);
            }
            if names.is_empty() {
                topics.remove(channel);
            }
        }
    }

    /// How many topics have local members.
    pub(crate) fn topic_count(&self) -> usize {
        self.topics().values().map(HashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::LagPolicy;
    use crate::outbox::{SessionLimits, outbox, session_outbox};

    #[test]
    fn a_topic_wraps_frames_only_once_it_has_a_session_member_and_makes_its_prefix_once() {
        let registry = Registry::default();
        // The topic's prefix, and where it is kept.
        let prefix = |registry: &Registry| {
            registry.topics()["Room"]["room/x"]
                .push_prefix
                .get()
                .map(|prefix| (prefix.to_string(), prefix.as_ptr()))
        };
        let (direct, _direct_rx) = outbox("Room", 8, LagPolicy::DropNew, Arc::default());
        registry.attach(ConnId::new(1, 1), "Room", direct);
        assert!(registry.join(ConnId::new(1, 1), "room/x"));
        let frame = WsMessage::text(r#"{"text":"hi"}"#);
        assert_eq!(registry.fan_out("Room", "room/x", &frame, None), 1);
        assert_eq!(prefix(&registry), None, "no session member: nothing wrapped");

        let limits = SessionLimits {
            per_slot: 8,
            max_queued_bytes: 1 << 20,
            max_frame: 1 << 16,
        };
        let (session, session_rx) = session_outbox(limits, Arc::default());
        let slot = session_rx.open_slot("Room", LagPolicy::DropNew);
        registry.attach_session(ConnId::new(1, 2), session);
        assert!(registry.join_slot(ConnId::new(1, 2), "Room", "room/x", slot));
        assert_eq!(registry.fan_out("Room", "room/x", &frame, None), 2);
        let (made, at) = prefix(&registry).expect("made for the session member");
        assert_eq!(made, pub_push_prefix("room/x"));
        assert_eq!(registry.fan_out("Room", "room/x", &frame, None), 2);
        assert_eq!(
            prefix(&registry).map(|(_, kept)| kept),
            Some(at),
            "made once for the topic, not once per publish"
        );
        assert_eq!(session_rx.pressure(), (false, 0), "still pending: both held");
    }
}
