//! What an engine sees of the hub: the [`Backplane`] trait it implements to carry messages
//! between nodes, and the [`Envelope`] it carries (one already-encoded frame and a small
//! header, in a versioned wire format), with the decoding a receiving node does. Nothing here
//! reaches into the hub: the [`Inbound`](super::Inbound) handle through which an engine hands
//! envelopes back to its node lives with the hub it delivers into.

use std::fmt;
use std::time::Instant;

use futures_util::future::BoxFuture;
use tokio_tungstenite::tungstenite::{Bytes, Message as WsMessage, Utf8Bytes};

use crate::conn_id::ConnId;

/// An engine that carries messages between the nodes of a cluster (a Redis server, a message
/// bus), attached to a [`Hub`](crate::Hub) with
/// [`Hub::attach_backplane`](crate::Hub::attach_backplane). Without one (the default) a hub
/// is one node, and publishing costs nothing beyond the local fan-out.
///
/// The hub always delivers to its own subscribers first, then hands the engine one
/// [`Envelope`] per message: the frame already encoded, never decoded again on the way. The
/// engine carries it to every other node that has subscribers to its topic (or to the node of
/// its target connection), where it calls [`Inbound::deliver`](super::Inbound::deliver).
///
/// The hub tells the engine which topics this node needs: [`subscribe`](Self::subscribe) when
/// a topic gets its first local subscriber, [`unsubscribe`](Self::unsubscribe) when it loses
/// its last, in the order the changes happened (they are called under the registry's lock, so
/// they must return at once: queue the work). The same holds for [`forward`](Self::forward):
/// it must not wait, and the envelopes one node publishes must reach every other node in the
/// order they were published.
///
/// The `redis` feature has one: `RedisBackplane`.
pub trait Backplane: Send + Sync + 'static {
    /// Carries `envelope` to the other nodes that need it. Called once per message, after
    /// the local delivery; returns at once. `Err` when it cannot (the engine is down, its
    /// queue is full): the caller sees it in [`Published::engine`](crate::Published::engine).
    fn forward(&self, envelope: Envelope) -> Result<(), BackplaneError>;

    /// This node has a first local subscriber to `topic` of `channel`: envelopes published to
    /// it anywhere must reach this node from now on.
    fn subscribe(&self, channel: &'static str, topic: &str);

    /// This node's last local subscriber to `topic` of `channel` left.
    fn unsubscribe(&self, channel: &'static str, topic: &str);

    /// How many connections of the *other* nodes are subscribed to `topic` of `channel`, as
    /// far as the engine knows (each engine documents how stale that may be).
    fn remote_subscribers<'a>(
        &'a self,
        channel: &'a str,
        topic: &'a str,
    ) -> BoxFuture<'a, Result<usize, BackplaneError>>;

    /// Whether the engine is connected.
    fn health(&self) -> EngineHealth;

    /// This node is leaving the cluster: its server's graceful shutdown is over, so every
    /// connection has closed. The engine removes at once what it keeps for this node where the
    /// other nodes read it (the Redis engine deletes the node's member counts, which the
    /// others would otherwise count until they expire), and does not write it again. It may
    /// go on carrying messages: the hub can still publish from a task that outlives the server.
    ///
    /// The server waits for it at most 2 s: an engine that cannot reach its store must not hold
    /// a shutdown up. Provided: does nothing.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Whether a hub's engine is connected: what a readiness route serves
/// ([`Hub::engine_health`](crate::Hub::engine_health)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineHealth {
    /// No engine attached: the hub is one node, and always healthy.
    InProcess,
    /// Connected: messages reach the other nodes.
    Up,
    /// Disconnected since `since`; reconnecting. Local delivery goes on, publishes report
    /// [`BackplaneError::Down`].
    Down {
        /// When the engine went down.
        since: Instant,
    },
}

impl EngineHealth {
    /// Whether messages reach every node (true without an engine).
    pub fn is_up(self) -> bool {
        !matches!(self, Self::Down { .. })
    }
}

/// Why an engine did not take a message, or could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackplaneError {
    /// The engine is disconnected (reconnecting): the message reached this node's subscribers
    /// only.
    #[error("the backplane is down: delivered on this node only")]
    Down,
    /// The engine's outgoing queue is full (it cannot keep up): the message reached this
    /// node's subscribers only.
    #[error("the backplane's queue is full: delivered on this node only")]
    Full,
    /// The engine failed (connecting, a command).
    #[error("backplane error")]
    Engine(#[source] crate::error::BoxError),
    /// A hub has one engine; this one was not attached.
    #[error("the hub already has a backplane")]
    AlreadyAttached,
}

/// What a hub hands its engine for one message: the encoded frame and a small header (origin
/// node, the connection to skip or the one to reach), in the wire form other nodes decode.
///
/// The wire form, version 1 (integers big-endian):
///
/// | bytes | field |
/// |---|---|
/// | 1 | version: 1 |
/// | 1 | flags: 1 = binary frame (else text), 2 = an excepted connection follows, 4 = a target connection follows (then there is no topic) |
/// | 8 | origin node id |
/// | 16 | excepted connection (node id, counter), if flagged |
/// | 16 | target connection (node id, counter), if flagged |
/// | 2 + n | channel `NAME`: its length, then UTF-8 |
/// | 4 + n | topic name: its length, then UTF-8 (not for a target) |
/// | rest | the frame's payload, as sent to clients |
///
/// A node skips (and counts, and logs) an envelope of a version it does not know, so nodes of
/// two releases can share one engine during a rolling deploy.
#[derive(Clone)]
pub struct Envelope {
    wire: Bytes,
    channel: &'static str,
    route: Route,
}

/// Where an envelope goes, without borrowing it.
#[derive(Clone, Copy)]
enum Route {
    /// A topic, whose name sits at this range of the wire form.
    Topic(usize, usize),
    Connection(ConnId),
}

/// Where an [`Envelope`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Destination<'a> {
    /// Every subscriber of a topic, on every node.
    Topic {
        /// The channel's `NAME`.
        channel: &'a str,
        /// The topic's name.
        topic: &'a str,
    },
    /// One connection, on the node in its id.
    Connection(ConnId),
}

/// The version of the envelope wire form this release writes and reads.
pub(crate) const WIRE_VERSION: u8 = 1;

const BINARY: u8 = 1;
const EXCEPT: u8 = 2;
const TARGET: u8 = 4;

impl Envelope {
    /// An envelope for every subscriber of a topic but `except`.
    pub(crate) fn topic(
        origin: u64,
        channel: &'static str,
        topic: &str,
        except: Option<ConnId>,
        frame: &WsMessage,
    ) -> Self {
        let (payload, binary) = payload(frame);
        let mut wire = header(origin, binary, except, None, channel, payload.len() + topic.len() + 4);
        wire.extend_from_slice(&u32::try_from(topic.len()).unwrap_or(u32::MAX).to_be_bytes());
        let start = wire.len();
        wire.extend_from_slice(topic.as_bytes());
        let end = wire.len();
        wire.extend_from_slice(payload);
        Self {
            wire: wire.into(),
            channel,
            route: Route::Topic(start, end),
        }
    }

    /// An envelope for one connection, on another node.
    pub(crate) fn direct(origin: u64, channel: &'static str, target: ConnId, frame: &WsMessage) -> Self {
        let (payload, binary) = payload(frame);
        let mut wire = header(origin, binary, None, Some(target), channel, payload.len());
        wire.extend_from_slice(payload);
        Self {
            wire: wire.into(),
            channel,
            route: Route::Connection(target),
        }
    }

    /// Where it goes: the engine routes by this.
    pub fn destination(&self) -> Destination<'_> {
        match self.route {
            Route::Connection(target) => Destination::Connection(target),
            Route::Topic(start, end) => Destination::Topic {
                channel: self.channel,
                // Written from a `&str` by `Envelope::topic`.
                topic: std::str::from_utf8(&self.wire[start..end]).unwrap_or_default(),
            },
        }
    }

    /// The wire form, for the engine to carry.
    pub fn wire(&self) -> &Bytes {
        &self.wire
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("destination", &self.destination())
            .field("bytes", &self.wire.len())
            .finish()
    }
}

fn payload(frame: &WsMessage) -> (&[u8], bool) {
    match frame {
        WsMessage::Binary(bytes) => (bytes, true),
        WsMessage::Text(text) => (text.as_bytes(), false),
        // The hub encodes text and binary frames only.
        _ => (&[], false),
    }
}

fn header(
    origin: u64,
    binary: bool,
    except: Option<ConnId>,
    target: Option<ConnId>,
    channel: &str,
    rest: usize,
) -> Vec<u8> {
    let mut wire = Vec::with_capacity(2 + 8 + 32 + 2 + channel.len() + rest);
    let flag = |set: bool, bit: u8| if set { bit } else { 0 };
    let flags = flag(binary, BINARY) | flag(except.is_some(), EXCEPT) | flag(target.is_some(), TARGET);
    wire.extend_from_slice(&[WIRE_VERSION, flags]);
    wire.extend_from_slice(&origin.to_be_bytes());
    for id in except.into_iter().chain(target) {
        wire.extend_from_slice(&id.node().to_be_bytes());
        wire.extend_from_slice(&id.seq().to_be_bytes());
    }
    // Channel names are Rust identifiers or short `name = "…"` strings.
    let len = u16::try_from(channel.len()).unwrap_or(u16::MAX);
    wire.extend_from_slice(&len.to_be_bytes());
    wire.extend_from_slice(&channel.as_bytes()[..usize::from(len)]);
    wire
}

/// Why a node did not deliver an envelope it received.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvelopeError {
    #[error("envelope of wire version {0}, this node reads version {WIRE_VERSION}")]
    UnknownVersion(u8),
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
}

/// A received envelope, its payload still the bytes the origin encoded.
#[derive(Debug)]
pub(crate) struct Received<'a> {
    pub(crate) origin: u64,
    pub(crate) except: Option<ConnId>,
    pub(crate) target: Option<ConnId>,
    pub(crate) channel: &'a str,
    pub(crate) topic: &'a str,
    pub(crate) frame: WsMessage,
}

/// Reads an envelope's header; the payload becomes a frame sharing `wire`'s bytes.
pub(crate) fn decode(wire: &Bytes) -> Result<Received<'_>, EnvelopeError> {
    let mut reader = Reader { wire, at: 0 };
    let version = reader.take(1)?[0];
    if version != WIRE_VERSION {
        return Err(EnvelopeError::UnknownVersion(version));
    }
    let flags = reader.take(1)?[0];
    let origin = reader.u64()?;
    let except = if flags & EXCEPT != 0 {
        Some(reader.conn_id()?)
    } else {
        None
    };
    let target = if flags & TARGET != 0 {
        Some(reader.conn_id()?)
    } else {
        None
    };
    let channel_len = usize::from(u16::from_be_bytes(reader.array()?));
    let channel = reader.str(channel_len)?;
    let topic = match target {
        Some(_) => "",
        None => {
            let len = u32::from_be_bytes(reader.array()?);
            reader.str(usize::try_from(len).map_err(|_| EnvelopeError::Malformed("topic length"))?)?
        }
    };
    let payload = wire.slice(reader.at..);
    let frame = match flags & BINARY != 0 {
        true => WsMessage::Binary(payload),
        false => WsMessage::Text(
            Utf8Bytes::try_from(payload).map_err(|_| EnvelopeError::Malformed("text payload is not UTF-8"))?,
        ),
    };
    Ok(Received {
        origin,
        except,
        target,
        channel,
        topic,
        frame,
    })
}

struct Reader<'a> {
    wire: &'a Bytes,
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        let wire: &'a [u8] = self.wire;
        let bytes = wire
            .get(self.at..self.at.saturating_add(n))
            .ok_or(EnvelopeError::Malformed("truncated"))?;
        self.at += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        self.take(N)?
            .try_into()
            .map_err(|_| EnvelopeError::Malformed("truncated"))
    }

    fn u64(&mut self) -> Result<u64, EnvelopeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn conn_id(&mut self) -> Result<ConnId, EnvelopeError> {
        Ok(ConnId::new(self.u64()?, self.u64()?))
    }

    fn str(&mut self, n: usize) -> Result<&'a str, EnvelopeError> {
        std::str::from_utf8(self.take(n)?).map_err(|_| EnvelopeError::Malformed("name is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_envelope_round_trips_without_touching_the_payload() {
        let except = ConnId::new(7, 9);
        let frame = WsMessage::text(r#"{"text":"héllo"}"#);
        let envelope = Envelope::topic(42, "chat", "chat/lobby", Some(except), &frame);
        assert_eq!(
            envelope.destination(),
            Destination::Topic {
                channel: "chat",
                topic: "chat/lobby"
            }
        );
        let received = decode(envelope.wire()).unwrap();
        assert_eq!(
            (received.origin, received.except, received.target),
            (42, Some(except), None)
        );
        assert_eq!((received.channel, received.topic), ("chat", "chat/lobby"));
        assert_eq!(received.frame, frame);
    }

    #[test]
    fn a_direct_binary_envelope_round_trips() {
        let target = ConnId::new(u64::MAX, 1);
        let frame = WsMessage::binary(vec![0_u8, 159, 255]);
        let envelope = Envelope::direct(1, "feed", target, &frame);
        assert_eq!(envelope.destination(), Destination::Connection(target));
        let received = decode(envelope.wire()).unwrap();
        assert_eq!(
            (received.target, received.except, received.channel),
            (Some(target), None, "feed")
        );
        assert_eq!(received.frame, frame);
    }

    #[test]
    fn an_unknown_version_is_refused_before_anything_else_is_read() {
        let envelope = Envelope::topic(1, "chat", "t", None, &WsMessage::text("x"));
        let mut future = envelope.wire().to_vec();
        future[0] = WIRE_VERSION + 1;
        // A later version may change everything after the version byte.
        future.truncate(3);
        assert_eq!(
            decode(&Bytes::from(future)).unwrap_err(),
            EnvelopeError::UnknownVersion(WIRE_VERSION + 1)
        );
    }

    #[test]
    fn truncated_or_garbled_envelopes_are_errors_not_panics() {
        let wire = Envelope::topic(1, "chat", "chat/lobby", Some(ConnId::new(2, 3)), &WsMessage::text("é"))
            .wire()
            .clone();
        // Everything shorter than the header (`é` is the last two bytes)...
        for len in 0..wire.len() - 2 {
            assert!(decode(&wire.slice(..len)).is_err(), "a prefix of {len} bytes decoded");
        }
        // ...and a text payload cut inside `é`.
        assert!(matches!(
            decode(&wire.slice(..wire.len() - 1)),
            Err(EnvelopeError::Malformed(_))
        ));
        let mut huge_topic = wire.to_vec();
        let topic_len_at = 2 + 8 + 16 + 2 + 4;
        huge_topic[topic_len_at..topic_len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode(&Bytes::from(huge_topic)),
            Err(EnvelopeError::Malformed(_))
        ));
    }
}
