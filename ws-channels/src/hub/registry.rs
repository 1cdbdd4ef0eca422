//! This node's subscriptions: which connections are subscribed to which topic, keyed by the
//! channel's stable `NAME` and the topic's name (looked up by `&str`, without allocating), and
//! each connection's outbox sender, so fan-out needs nothing of `server/`. It tells the engine,
//! if one is attached, which topics this node needs.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::backplane::{Backplane, BackplaneError};
use crate::conn_id::ConnId;
use crate::outbox::OutboxSender;

/// Topic name → its local subscribers. The name is allocated once per topic: each member's
/// list of joined topics shares it.
type Topics = HashMap<Arc<str>, HashMap<ConnId, OutboxSender>>;

#[derive(Default)]
pub(crate) struct Registry {
    /// Channel `NAME` → its topics. (`&'static str` keys are looked up by any `&str`.)
    topics: RwLock<HashMap<&'static str, Topics>>,
    members: RwLock<HashMap<ConnId, Member>>,
    /// The engine, told of every topic this node starts or stops needing while the lock that
    /// changes `topics` is held, so it sees the changes in the order they happened.
    engine: OnceLock<Arc<dyn Backplane>>,
}

/// A connection as the registry knows it: how to reach it, and the topics it joined (so
/// leaving the server leaves them all).
struct Member {
    outbox: OutboxSender,
    /// Its channel, so sends by id cannot reach another channel's client, and the channel
    /// of every topic it joins.
    channel: &'static str,
    topics: Vec<Arc<str>>,
}

impl Registry {
    fn topics(&self) -> RwLockReadGuard<'_, HashMap<&'static str, Topics>> {
        self.topics.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn topics_mut(&self) -> RwLockWriteGuard<'_, HashMap<&'static str, Topics>> {
        self.topics.write().unwrap_or_else(PoisonError::into_inner)
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

    /// Pushes `frame` to every local subscriber of a topic but `except`; returns how many
    /// queued it. One read lock, no allocation.
    pub(crate) fn fan_out(&self, channel: &str, topic: &str, frame: &WsMessage, except: Option<ConnId>) -> usize {
        let topics = self.topics();
        let Some(members) = topics.get(channel).and_then(|names| names.get(topic)) else {
            return 0;
        };
        members
            .iter()
            .filter(|(id, _)| Some(**id) != except)
            .filter(|(_, outbox)| outbox.push(frame.clone()).delivered())
            .count()
    }

    /// Pushes `frame` to one connection of `channel`; `false` if there is none (or it is
    /// closing, or its queue dropped the frame).
    pub(crate) fn send_to(&self, id: ConnId, channel: &str, frame: WsMessage) -> bool {
        let outbox = {
            let members = self.members.read().unwrap_or_else(PoisonError::into_inner);
            members
                .get(&id)
                .filter(|member| member.channel == channel)
                .map(|member| member.outbox.clone())
        };
        outbox.is_some_and(|outbox| outbox.push(frame).delivered())
    }

    /// How many local connections are subscribed to a topic.
    pub(crate) fn count(&self, channel: &str, topic: &str) -> usize {
        let topics = self.topics();
        topics
            .get(channel)
            .and_then(|names| names.get(topic))
            .map_or(0, HashMap::len)
    }

    /// Every topic with local subscribers, and how many: what an engine publishes as this
    /// node's member counts.
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
        self.members_mut().insert(
            id,
            Member {
                outbox,
                channel,
                topics: Vec::new(),
            },
        );
    }

    /// Subscribes a connection to a topic of its channel; `false` if it already was (or is
    /// not attached).
    pub(crate) fn join(&self, id: ConnId, topic: &str) -> bool {
        let mut members = self.members_mut();
        let Some(member) = members.get_mut(&id) else {
            return false;
        };
        if member.topics.iter().any(|joined| **joined == *topic) {
            return false;
        }
        let outbox = member.outbox.clone();
        let mut topics = self.topics_mut();
        let names = topics.entry(member.channel).or_default();
        let name = match names.get_key_value(topic) {
            Some((name, _)) => name.clone(),
            None => {
                let name: Arc<str> = topic.into();
                names.insert(name.clone(), HashMap::new());
                if let Some(engine) = self.engine.get() {
                    engine.subscribe(member.channel, topic);
                }
                name
            }
        };
        if let Some(subscribers) = names.get_mut(topic) {
            subscribers.insert(id, outbox);
        }
        // Most connections join only their own address: room for one, not the four a first
        // push reserves; more joins grow the list as usual.
        if member.topics.capacity() == 0 {
            member.topics.reserve_exact(1);
        }
        member.topics.push(name);
        true
    }

    /// Unsubscribes a connection from a topic; `false` if it was not subscribed.
    pub(crate) fn leave(&self, id: ConnId, topic: &str) -> bool {
        let mut members = self.members_mut();
        let Some(member) = members.get_mut(&id) else {
            return false;
        };
        let before = member.topics.len();
        member.topics.retain(|joined| **joined != *topic);
        if member.topics.len() == before {
            return false;
        }
        let channel = member.channel;
        self.remove(channel, topic, id);
        true
    }

    /// Asks every connection to close; each one's first close request is the one that counts.
    pub(crate) fn close_all(&self, code: CloseCode, reason: &str) {
        let members = self.members.read().unwrap_or_else(PoisonError::into_inner);
        for member in members.values() {
            member.outbox.request_close(code, reason);
        }
    }

    /// Forgets a connection and every subscription it had.
    pub(crate) fn detach(&self, id: ConnId) {
        let removed = self.members_mut().remove(&id);
        if let Some(member) = removed {
            for topic in &member.topics {
                self.remove(member.channel, topic, id);
            }
        }
    }

    fn remove(&self, channel: &'static str, topic: &str, id: ConnId) {
        let mut topics = self.topics_mut();
        let Some(names) = topics.get_mut(channel) else {
            return;
        };
        let Some(subscribers) = names.get_mut(topic) else {
            return;
        };
        subscribers.remove(&id);
        if subscribers.is_empty() {
            names.remove(topic);
            if let Some(engine) = self.engine.get() {
                engine.unsubscribe(channel, topic);
            }
            if names.is_empty() {
                topics.remove(channel);
            }
        }
    }

    /// How many topics have local subscribers.
    pub(crate) fn topic_count(&self) -> usize {
        self.topics().values().map(HashMap::len).sum()
    }
}
