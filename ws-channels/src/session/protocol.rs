//! The protocol's JSON messages: the commands a client sends, the replies and pushes a server
//! sends, and the pre-encoded pieces of a `pub` push.
//!
//! The shapes are the `.proto`'s (`client.proto` of `centrifugal/protocol`), with its snake_case
//! names, as the Go server's JSON codec writes them and centrifuge-js reads them (the design's
//! part A). Decoding is lenient where Go is: unknown fields are skipped and `null` counts as
//! absent. Encoding omits every empty field (zero, `false`, `""`, empty list or map, absent
//! value) except a [`ClientInfo`]'s `user` and `client`, which are always written. `data`
//! fields are raw JSON, passed through and never parsed here.
//!
//! Crate-private, with every field `pub(crate)`: the session endpoint (next slice) and later
//! the session client build and read these values directly.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use super::codes::ErrorCode;

/// A raw JSON value (`data`, `conn_info`, `chan_info`): its bytes, checked to be one JSON
/// value, never parsed into a tree. In an `Option<Raw>`, `null` decodes as `None`, as Go's
/// decoder skips it; encoding `Some` of a `null` writes it.
pub(crate) type Raw = Box<RawValue>;

/// Why one JSON message (a command, or a reply) cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    /// Not JSON, not an object, or a field of the wrong type (an `id` over `u32::MAX`, a
    /// `channel` that is a number…).
    #[error("malformed message: {0}")]
    Malformed(#[from] serde_json::Error),
    /// No known method (a command) or result (a reply), and not the empty message `{}`.
    #[error("message {id} has no known method")]
    NoMethod {
        /// The message's `id`.
        id: u32,
    },
    /// More than one method: the protocol allows one per message.
    #[error("message has both `{first}` and `{second}`: one method per message")]
    SeveralMethods {
        /// The first method found (in the `.proto`'s order).
        first: &'static str,
        /// The second one.
        second: &'static str,
    },
    /// A command without an `id` (or `id` 0) that must have one: only `send` and the pong go
    /// without.
    #[error("`{method}` needs an id above 0")]
    MissingId {
        /// The command's method.
        method: &'static str,
    },
}

// ---------------------------------------------------------------------------------------------
// Serde helpers.

/// Decodes a field whose `null` means absent, as Go's decoder does: `null` gives the default.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A value decoded from a JSON object only: serde's derived structs also accept an array of
/// their fields in order, which would make `[]` a valid empty command.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Accepts a map and hands it to `T`'s own decoding.
        struct ObjectVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = Object<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Object)
            }
        }
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// Decodes a method field (`"subscribe":{…}`): absent or `null` is `None`, anything but an
/// object is an error.
fn method<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Object<T>>::deserialize(deserializer)?.map(|o| o.0))
}

/// Decodes one whole message, which must be a JSON object.
fn decode_object<T: DeserializeOwned>(json: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str::<Object<T>>(json).map(|o| o.0)
}

/// `skip_serializing_if` for `false`.
fn is_false(b: &bool) -> bool {
    !*b
}

/// `skip_serializing_if` for a zero number.
fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// An empty object: the results of `unsubscribe`, `publish` and `ping`, and the `ping`
/// command. Decoding skips any field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Empty {}

/// Picks the one method of a message out of its optional fields.
struct OneOf<T> {
    /// The method found so far, with its name.
    found: Option<(&'static str, T)>,
    /// The name of a second method, if there was one.
    second: Option<&'static str>,
}

impl<T> OneOf<T> {
    /// Nothing found yet.
    fn new() -> Self {
        Self {
            found: None,
            second: None,
        }
    }

    /// Records `value` under `name`, if present.
    fn add<V>(mut self, name: &'static str, value: Option<V>, wrap: impl FnOnce(V) -> T) -> Self {
        if let Some(value) = value {
            match self.found {
                None => self.found = Some((name, wrap(value))),
                Some(_) => self.second = self.second.or(Some(name)),
            }
        }
        self
    }

    /// The one method, none, or the error for several.
    fn finish(self) -> Result<Option<(&'static str, T)>, DecodeError> {
        match (self.found, self.second) {
            (Some((first, _)), Some(second)) => Err(DecodeError::SeveralMethods { first, second }),
            (found, _) => Ok(found),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Commands (client → server).

/// `connect`: the first command of a session, with the client's credentials.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ConnectRequest {
    /// The connection token (`token` option or `getToken` of the SDK).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) token: String,
    /// Application data sent with the connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<Raw>,
    /// Server-side subscriptions the client wants to recover, by channel.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) subs: BTreeMap<String, SubscribeRequest>,
    /// The client's name (`"js"` by default in centrifuge-js).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) name: String,
    /// The client's version, as the application configured it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) version: String,
    /// Emulated headers (`headers` option of the SDK).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) headers: BTreeMap<String, String>,
    /// Connection-level features the client supports (dictionary compression): never enabled.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) flag: i64,
    /// The client's application profile, a hint for compression: ignored.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) profile: String,
    /// The compression dictionary the client holds: ignored (we never send one).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) dict: String,
}

/// `subscribe`: one channel subscription (also a value of `connect.subs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SubscribeRequest {
    /// The channel name.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) channel: String,
    /// The subscription token, if the channel wants one.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) token: String,
    /// The client asks to recover missed publications from `offset`/`epoch`.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) recover: bool,
    /// The stream epoch the client last saw.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) epoch: String,
    /// The stream offset the client last saw.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) offset: u64,
    /// Application data sent with the subscribe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<Raw>,
    /// The client wants positioned delivery (offsets on publications).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) positioned: bool,
    /// The client wants a recoverable subscription.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) recoverable: bool,
    /// The client wants `join`/`leave` pushes.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) join_leave: bool,
    /// A delta compression format (`"fossil"`).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) delta: String,
    /// A tags filter tree: kept raw, a subscribe with one is refused (108).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tf: Option<Raw>,
    /// Feature bits: 1 channel compaction (always sent by the SDK, never honoured: pushes keep
    /// their `channel`), 2 reject an unrecovered subscribe.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) flag: i64,
    /// Subscription type: 0 stream; others (map, shared poll) are refused (108).
    #[serde(
        default,
        rename = "type",
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub(crate) kind: i32,
    /// Map subscription phase: unused by stream subscriptions.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) phase: i32,
    /// Map subscription page cursor: unused by stream subscriptions.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) cursor: String,
    /// Map subscription page size: unused by stream subscriptions.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) limit: i32,
    /// Map subscription order: unused by stream subscriptions.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) asc: bool,
}

/// A command that names one channel and nothing else: `unsubscribe`, `presence`,
/// `presence_stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ChannelRequest {
    /// The channel name.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) channel: String,
}

/// `publish`: a client's message on a channel.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PublishRequest {
    /// The channel name.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) channel: String,
    /// The message, as the channel's JSON codec decodes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<Raw>,
    /// 0 stream, 1 map: only 0 is served.
    #[serde(
        default,
        rename = "type",
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub(crate) kind: i32,
    /// Map publish key: unused.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) key: String,
    /// Map publish removal: unused.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) removed: bool,
}

/// A stream position: `offset` in the stream of `epoch`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamPosition {
    /// The offset.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) offset: u64,
    /// The epoch.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) epoch: String,
}

/// `history`: a channel's stored publications (issue 22; until then, 108).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct HistoryRequest {
    /// The channel name.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) channel: String,
    /// How many: 0 position only, -1 all.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) limit: i32,
    /// Publications after this position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) since: Option<StreamPosition>,
    /// Newest first.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) reverse: bool,
}

/// `send` (no reply) and the `data` of `rpc`: raw application data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SendRequest {
    /// The data (absent when the SDK was given `undefined`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<Raw>,
}

/// `rpc`: a call answered with data (issue 24; until then, 108).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RpcRequest {
    /// The call's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<Raw>,
    /// The application's method name.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) method: String,
}

/// `refresh`: a new connection token before the current one expires.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RefreshRequest {
    /// The new token.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) token: String,
}

/// `sub_refresh`: a new subscription token (refused with 108 until subscription tokens expire).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SubRefreshRequest {
    /// The channel name.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) channel: String,
    /// The new subscription token.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) token: String,
    /// 0 refresh, 1 track, 2 untrack (map subscriptions).
    #[serde(
        default,
        rename = "type",
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero"
    )]
    pub(crate) kind: i32,
    /// Map tracking batches: kept raw, unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) track: Option<Raw>,
    /// Map keys to untrack: unused.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub(crate) untrack: Vec<String>,
}

/// A command's one method, or the pong.
#[derive(Debug, Clone)]
pub(crate) enum Method {
    /// `connect`.
    Connect(ConnectRequest),
    /// `subscribe`.
    Subscribe(SubscribeRequest),
    /// `unsubscribe`.
    Unsubscribe(ChannelRequest),
    /// `publish`.
    Publish(PublishRequest),
    /// `presence`.
    Presence(ChannelRequest),
    /// `presence_stats`.
    PresenceStats(ChannelRequest),
    /// `history`.
    History(HistoryRequest),
    /// `ping`: answered `ping:{}`.
    Ping,
    /// `send`: no id, no reply.
    Send(SendRequest),
    /// `rpc`.
    Rpc(RpcRequest),
    /// `refresh`.
    Refresh(RefreshRequest),
    /// `sub_refresh`.
    SubRefresh(SubRefreshRequest),
    /// The empty command `{}`: the client's answer to a server ping.
    Pong,
}

impl Method {
    /// The method's field name (`"pong"` for the empty command).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Subscribe(_) => "subscribe",
            Self::Unsubscribe(_) => "unsubscribe",
            Self::Publish(_) => "publish",
            Self::Presence(_) => "presence",
            Self::PresenceStats(_) => "presence_stats",
            Self::History(_) => "history",
            Self::Ping => "ping",
            Self::Send(_) => "send",
            Self::Rpc(_) => "rpc",
            Self::Refresh(_) => "refresh",
            Self::SubRefresh(_) => "sub_refresh",
            Self::Pong => "pong",
        }
    }
}

/// One command: `{"id":n,"<method>":{…}}`, or `{}` (the pong).
///
/// **Exactly one method.** A command with several is a [`DecodeError::SeveralMethods`] (the
/// session closes it with 3501), where Go takes the first non-null in its own order: the
/// `.proto` says a server "may return an error if client passed more than one request", no SDK
/// sends two, and which one counts "first" would be Go's `if` chain, not the JSON's order.
/// A command without a method is the pong when it has no `id` (or `id` 0), and a
/// [`DecodeError::NoMethod`] otherwise. Every method but `send` needs an `id` above 0
/// ([`DecodeError::MissingId`]), as Go requires.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    /// The id its reply echoes; 0 for `send` and the pong.
    pub(crate) id: u32,
    /// What the client asks.
    pub(crate) method: Method,
}

/// The wire form of a command: every method an optional field.
#[derive(Deserialize)]
struct WireCommand {
    /// The id.
    #[serde(default, deserialize_with = "nullable")]
    id: u32,
    /// `connect`.
    #[serde(default, deserialize_with = "method")]
    connect: Option<ConnectRequest>,
    /// `subscribe`.
    #[serde(default, deserialize_with = "method")]
    subscribe: Option<SubscribeRequest>,
    /// `unsubscribe`.
    #[serde(default, deserialize_with = "method")]
    unsubscribe: Option<ChannelRequest>,
    /// `publish`.
    #[serde(default, deserialize_with = "method")]
    publish: Option<PublishRequest>,
    /// `presence`.
    #[serde(default, deserialize_with = "method")]
    presence: Option<ChannelRequest>,
    /// `presence_stats`.
    #[serde(default, deserialize_with = "method")]
    presence_stats: Option<ChannelRequest>,
    /// `history`.
    #[serde(default, deserialize_with = "method")]
    history: Option<HistoryRequest>,
    /// `ping`.
    #[serde(default, deserialize_with = "method")]
    ping: Option<Empty>,
    /// `send`.
    #[serde(default, deserialize_with = "method")]
    send: Option<SendRequest>,
    /// `rpc`.
    #[serde(default, deserialize_with = "method")]
    rpc: Option<RpcRequest>,
    /// `refresh`.
    #[serde(default, deserialize_with = "method")]
    refresh: Option<RefreshRequest>,
    /// `sub_refresh`.
    #[serde(default, deserialize_with = "method")]
    sub_refresh: Option<SubRefreshRequest>,
}

impl Command {
    /// Decodes one command (one line of a frame).
    pub(crate) fn decode(json: &str) -> Result<Self, DecodeError> {
        let wire: WireCommand = decode_object(json)?;
        let method = OneOf::new()
            .add("connect", wire.connect, Method::Connect)
            .add("subscribe", wire.subscribe, Method::Subscribe)
            .add("unsubscribe", wire.unsubscribe, Method::Unsubscribe)
            .add("publish", wire.publish, Method::Publish)
            .add("presence", wire.presence, Method::Presence)
            .add("presence_stats", wire.presence_stats, Method::PresenceStats)
            .add("history", wire.history, Method::History)
            .add("ping", wire.ping, |_| Method::Ping)
            .add("send", wire.send, Method::Send)
            .add("rpc", wire.rpc, Method::Rpc)
            .add("refresh", wire.refresh, Method::Refresh)
            .add("sub_refresh", wire.sub_refresh, Method::SubRefresh)
            .finish()?;
        let id = wire.id;
        match method {
            None if id == 0 => Ok(Self {
                id,
                method: Method::Pong,
            }),
            None => Err(DecodeError::NoMethod { id }),
            Some((name, _)) if id == 0 && name != "send" => Err(DecodeError::MissingId { method: name }),
            Some((_, method)) => Ok(Self { id, method }),
        }
    }
}

/// Encodes as centrifuge-js does: the method, then `id` (left out when 0).
impl Serialize for Command {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        let name = self.method.name();
        match &self.method {
            Method::Connect(r) => map.serialize_entry(name, r)?,
            Method::Subscribe(r) => map.serialize_entry(name, r)?,
            Method::Unsubscribe(r) | Method::Presence(r) | Method::PresenceStats(r) => map.serialize_entry(name, r)?,
            Method::Publish(r) => map.serialize_entry(name, r)?,
            Method::History(r) => map.serialize_entry(name, r)?,
            Method::Ping => map.serialize_entry(name, &Empty {})?,
            Method::Send(r) => map.serialize_entry(name, r)?,
            Method::Rpc(r) => map.serialize_entry(name, r)?,
            Method::Refresh(r) => map.serialize_entry(name, r)?,
            Method::SubRefresh(r) => map.serialize_entry(name, r)?,
            Method::Pong => {}
        }
        if self.id != 0 {
            map.serialize_entry("id", &self.id)?;
        }
        map.end()
    }
}

// ---------------------------------------------------------------------------------------------
// Results, pushes and replies (server → client).

/// An error reply's body: `{"code":…,"message":…,"temporary":true}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReplyError {
    /// The code ([`ErrorCode`], or an application's 400–1999).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) code: u32,
    /// A short message for humans.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) message: String,
    /// Whether the SDK should retry.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) temporary: bool,
}

impl From<ErrorCode> for ReplyError {
    fn from(code: ErrorCode) -> Self {
        Self {
            code: code.code(),
            message: code.message().to_owned(),
            temporary: code.temporary(),
        }
    }
}

/// Who published or joined: `{"user":…,"client":…}`, both always written, even empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ClientInfo {
    /// The user id (empty for an anonymous user).
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) user: String,
    /// The connection's id.
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) client: String,
    /// The connection's application info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) conn_info: Option<Raw>,
    /// The subscription's application info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) chan_info: Option<Raw>,
}

/// A publication in a channel: a `pub` push, or an entry of a recovery or history.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Publication {
    /// The message: the exact bytes a direct member of the channel gets as its frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<Raw>,
    /// The publisher, when a client published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) info: Option<ClientInfo>,
    /// Its offset in the channel's stream (history channels).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) offset: u64,
    /// Application tags.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) tags: BTreeMap<String, String>,
}

/// The result of `subscribe` (and a value of the connect result's `subs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SubscribeResult {
    /// The subscription expires (never sent: it would make the SDK ask for a token).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) expires: bool,
    /// Seconds until it expires.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) ttl: u32,
    /// The SDK may ask to recover it after a reconnect.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) recoverable: bool,
    /// The stream's epoch.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) epoch: String,
    /// Recovered publications, in order.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub(crate) publications: Vec<Publication>,
    /// The recovery was complete.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) recovered: bool,
    /// The stream's top offset.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) offset: u64,
    /// Publications will carry offsets.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) positioned: bool,
    /// Application data for the subscriber.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<Raw>,
    /// Echoes the request's `recover`, as Go does.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) was_recovering: bool,
}

/// The result of `connect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ConnectResult {
    /// The session's connection id.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) client: String,
    /// The server's version.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) version: String,
    /// The credentials expire: the SDK refreshes after `ttl`.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) expires: bool,
    /// Seconds until the credentials expire.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) ttl: u32,
    /// Application data for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<Raw>,
    /// Server-side subscriptions, by channel.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) subs: BTreeMap<String, SubscribeResult>,
    /// The ping interval in whole seconds (the SDK's watchdog is this plus its own delay).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) ping: u32,
    /// The client must answer pings with `{}`.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) pong: bool,
    /// A session id (unidirectional transports).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) session: String,
    /// The node's name.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) node: String,
    /// Server time in Unix milliseconds (not sent by default).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) time: i64,
}

/// The result of `refresh` (and of a server-side refresh, as the `refresh` push's fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RefreshResult {
    /// The connection id.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) client: String,
    /// The server's version.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) version: String,
    /// The new credentials expire too.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) expires: bool,
    /// Seconds until they do.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) ttl: u32,
}

/// The result of `rpc`, and the `message` push: raw data.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct DataResult {
    /// The data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<Raw>,
}

/// The `join` and `leave` pushes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct JoinLeave {
    /// Who joined or left.
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) info: ClientInfo,
}

/// The `unsubscribe` push: the server ended one subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct UnsubscribePush {
    /// The code: < 2500 final, ≥ 2500 the SDK resubscribes at once.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) code: u32,
    /// The reason (never valid JSON).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) reason: String,
}

/// The `subscribe` push: the server subscribed the session to a channel (server-side).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct SubscribePush {
    /// The SDK may recover it.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) recoverable: bool,
    /// The stream's epoch.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) epoch: String,
    /// The stream's top offset.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) offset: u64,
    /// Publications will carry offsets.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) positioned: bool,
    /// Application data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) data: Option<Raw>,
}

/// The `disconnect` push (not sent over WebSocket, where a close frame says it; kept for the
/// session client reading other servers).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DisconnectPush {
    /// The disconnect code.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) code: u32,
    /// The reason.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub(crate) reason: String,
    /// Whether the client should reconnect.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) reconnect: bool,
}

/// The `refresh` push: the server extended the credentials (ignored by centrifuge-js).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RefreshPush {
    /// The credentials still expire.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_false")]
    pub(crate) expires: bool,
    /// Seconds until they do.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub(crate) ttl: u32,
}

/// What a push carries.
#[derive(Debug, Clone)]
pub(crate) enum PushBody {
    /// `pub`: a publication in the channel.
    Pub(Publication),
    /// `join`: a client joined the channel.
    Join(JoinLeave),
    /// `leave`: a client left the channel.
    Leave(JoinLeave),
    /// `unsubscribe`: the server ended the subscription.
    Unsubscribe(UnsubscribePush),
    /// `message`: data for the whole connection (no channel).
    Message(DataResult),
    /// `subscribe`: a server-side subscription.
    Subscribe(SubscribePush),
    /// `connect`: unidirectional transports only.
    Connect(ConnectResult),
    /// `disconnect`.
    Disconnect(DisconnectPush),
    /// `refresh`.
    Refresh(RefreshPush),
}

impl PushBody {
    /// The field name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Pub(_) => "pub",
            Self::Join(_) => "join",
            Self::Leave(_) => "leave",
            Self::Unsubscribe(_) => "unsubscribe",
            Self::Message(_) => "message",
            Self::Subscribe(_) => "subscribe",
            Self::Connect(_) => "connect",
            Self::Disconnect(_) => "disconnect",
            Self::Refresh(_) => "refresh",
        }
    }
}

/// A push: `{"channel":…,"<kind>":{…}}`, the server speaking unasked.
#[derive(Debug, Clone)]
pub(crate) struct Push {
    /// The channel (empty, and left out, for connection-level pushes).
    pub(crate) channel: String,
    /// What it carries.
    pub(crate) body: PushBody,
}

impl Serialize for Push {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if !self.channel.is_empty() {
            map.serialize_entry("channel", &self.channel)?;
        }
        let name = self.body.name();
        match &self.body {
            PushBody::Pub(p) => map.serialize_entry(name, p)?,
            PushBody::Join(j) | PushBody::Leave(j) => map.serialize_entry(name, j)?,
            PushBody::Unsubscribe(u) => map.serialize_entry(name, u)?,
            PushBody::Message(m) => map.serialize_entry(name, m)?,
            PushBody::Subscribe(s) => map.serialize_entry(name, s)?,
            PushBody::Connect(c) => map.serialize_entry(name, c)?,
            PushBody::Disconnect(d) => map.serialize_entry(name, d)?,
            PushBody::Refresh(r) => map.serialize_entry(name, r)?,
        }
        map.end()
    }
}

/// The wire form of a push: every kind an optional field.
#[derive(Deserialize)]
struct WirePush {
    /// The channel.
    #[serde(default, deserialize_with = "nullable")]
    channel: String,
    /// `pub`.
    #[serde(default, rename = "pub", deserialize_with = "method")]
    publication: Option<Publication>,
    /// `join`.
    #[serde(default, deserialize_with = "method")]
    join: Option<JoinLeave>,
    /// `leave`.
    #[serde(default, deserialize_with = "method")]
    leave: Option<JoinLeave>,
    /// `unsubscribe`.
    #[serde(default, deserialize_with = "method")]
    unsubscribe: Option<UnsubscribePush>,
    /// `message`.
    #[serde(default, deserialize_with = "method")]
    message: Option<DataResult>,
    /// `subscribe`.
    #[serde(default, deserialize_with = "method")]
    subscribe: Option<SubscribePush>,
    /// `connect`.
    #[serde(default, deserialize_with = "method")]
    connect: Option<ConnectResult>,
    /// `disconnect`.
    #[serde(default, deserialize_with = "method")]
    disconnect: Option<DisconnectPush>,
    /// `refresh`.
    #[serde(default, deserialize_with = "method")]
    refresh: Option<RefreshPush>,
}

impl<'de> Deserialize<'de> for Push {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Object::<WirePush>::deserialize(deserializer)?.0;
        let body = OneOf::new()
            .add("pub", wire.publication, PushBody::Pub)
            .add("join", wire.join, PushBody::Join)
            .add("leave", wire.leave, PushBody::Leave)
            .add("unsubscribe", wire.unsubscribe, PushBody::Unsubscribe)
            .add("message", wire.message, PushBody::Message)
            .add("subscribe", wire.subscribe, PushBody::Subscribe)
            .add("connect", wire.connect, PushBody::Connect)
            .add("disconnect", wire.disconnect, PushBody::Disconnect)
            .add("refresh", wire.refresh, PushBody::Refresh)
            .finish()
            .map_err(serde::de::Error::custom)?;
        match body {
            Some((_, body)) => Ok(Self {
                channel: wire.channel,
                body,
            }),
            None => Err(serde::de::Error::custom("a push without a known kind")),
        }
    }
}

/// What a reply carries.
#[derive(Debug, Clone)]
pub(crate) enum ReplyBody {
    /// `{}`: the server's ping (no id, nothing else).
    ServerPing,
    /// `error`: the command failed.
    Error(ReplyError),
    /// `push`: not a reply to a command.
    Push(Push),
    /// `connect`'s result.
    Connect(ConnectResult),
    /// `subscribe`'s result.
    Subscribe(SubscribeResult),
    /// `unsubscribe`'s result, `{}`.
    Unsubscribe,
    /// `publish`'s result, `{}`.
    Publish,
    /// `ping`'s result, `{}`.
    Ping,
    /// `rpc`'s result.
    Rpc(DataResult),
    /// `refresh`'s result.
    Refresh(RefreshResult),
}

impl ReplyBody {
    /// The field name (`""` for the server ping).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::ServerPing => "",
            Self::Error(_) => "error",
            Self::Push(_) => "push",
            Self::Connect(_) => "connect",
            Self::Subscribe(_) => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Publish => "publish",
            Self::Ping => "ping",
            Self::Rpc(_) => "rpc",
            Self::Refresh(_) => "refresh",
        }
    }
}

/// One message from the server: `{"id":n,"<result>":{…}}`, `{"id":n,"error":{…}}`,
/// `{"push":{…}}` or the ping `{}`.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// The command's id; 0 for pushes and the ping.
    pub(crate) id: u32,
    /// What it carries.
    pub(crate) body: ReplyBody,
}

impl Reply {
    /// The answer to command `id`.
    pub(crate) fn result(id: u32, body: ReplyBody) -> Self {
        Self { id, body }
    }

    /// An error answer to command `id`.
    pub(crate) fn error(id: u32, error: impl Into<ReplyError>) -> Self {
        Self {
            id,
            body: ReplyBody::Error(error.into()),
        }
    }

    /// A push on `channel`.
    pub(crate) fn push(channel: impl Into<String>, body: PushBody) -> Self {
        Self {
            id: 0,
            body: ReplyBody::Push(Push {
                channel: channel.into(),
                body,
            }),
        }
    }

    /// Appends the reply's JSON to `out` (compact: no raw `\n`, so it can share a frame).
    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        serde_json::to_writer(out, self)
    }

    /// The reply's JSON.
    pub(crate) fn encode(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Decodes one reply (one line of a server frame): the session client's side.
    pub(crate) fn decode(json: &str) -> Result<Self, DecodeError> {
        let wire: WireReply = decode_object(json)?;
        let body = OneOf::new()
            .add("error", wire.error, ReplyBody::Error)
            .add("push", wire.push, ReplyBody::Push)
            .add("connect", wire.connect, ReplyBody::Connect)
            .add("subscribe", wire.subscribe, ReplyBody::Subscribe)
            .add("unsubscribe", wire.unsubscribe, |_| ReplyBody::Unsubscribe)
            .add("publish", wire.publish, |_| ReplyBody::Publish)
            .add("ping", wire.ping, |_| ReplyBody::Ping)
            .add("rpc", wire.rpc, ReplyBody::Rpc)
            .add("refresh", wire.refresh, ReplyBody::Refresh)
            .finish()?;
        let id = wire.id;
        match body {
            None if id == 0 => Ok(Self {
                id,
                body: ReplyBody::ServerPing,
            }),
            None => Err(DecodeError::NoMethod { id }),
            Some((_, body)) => Ok(Self { id, body }),
        }
    }
}

/// Encodes `id` first (left out when 0), then the body, as the Go server does.
impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if self.id != 0 {
            map.serialize_entry("id", &self.id)?;
        }
        let name = self.body.name();
        match &self.body {
            ReplyBody::ServerPing => {}
            ReplyBody::Error(e) => map.serialize_entry(name, e)?,
            ReplyBody::Push(p) => map.serialize_entry(name, p)?,
            ReplyBody::Connect(c) => map.serialize_entry(name, c)?,
            ReplyBody::Subscribe(s) => map.serialize_entry(name, s)?,
            ReplyBody::Unsubscribe | ReplyBody::Publish | ReplyBody::Ping => map.serialize_entry(name, &Empty {})?,
            ReplyBody::Rpc(r) => map.serialize_entry(name, r)?,
            ReplyBody::Refresh(r) => map.serialize_entry(name, r)?,
        }
        map.end()
    }
}

/// The wire form of a reply: every result an optional field.
#[derive(Deserialize)]
struct WireReply {
    /// The id.
    #[serde(default, deserialize_with = "nullable")]
    id: u32,
    /// `error`.
    #[serde(default, deserialize_with = "method")]
    error: Option<ReplyError>,
    /// `push`.
    #[serde(default)]
    push: Option<Push>,
    /// `connect`.
    #[serde(default, deserialize_with = "method")]
    connect: Option<ConnectResult>,
    /// `subscribe`.
    #[serde(default, deserialize_with = "method")]
    subscribe: Option<SubscribeResult>,
    /// `unsubscribe`.
    #[serde(default, deserialize_with = "method")]
    unsubscribe: Option<Empty>,
    /// `publish`.
    #[serde(default, deserialize_with = "method")]
    publish: Option<Empty>,
    /// `ping`.
    #[serde(default, deserialize_with = "method")]
    ping: Option<Empty>,
    /// `rpc`.
    #[serde(default, deserialize_with = "method")]
    rpc: Option<DataResult>,
    /// `refresh`.
    #[serde(default, deserialize_with = "method")]
    refresh: Option<RefreshResult>,
}

// ---------------------------------------------------------------------------------------------
// Pre-encoded pieces.

/// The server's ping: the empty reply.
pub(crate) const PING: &str = "{}";

/// What closes a `pub` push after its data: the `pub`, `push` and reply objects.
pub(crate) const PUB_PUSH_SUFFIX: &str = "}}}";

/// What opens a `pub` push on `channel`, up to its data:
/// `{"push":{"channel":"<channel, JSON-escaped>","pub":{"data":`.
///
/// `prefix ‖ frame ‖ PUB_PUSH_SUFFIX` is byte for byte what [`Reply::push`] of a
/// [`Publication`] with only `data` encodes, so a node encodes a publication once for its
/// direct members and wraps the same bytes for its session members, without re-encoding.
/// The frame must be one compact JSON value (what the JSON codec writes: no raw `\n`).
pub(crate) fn pub_push_prefix(channel: &str) -> String {
    let mut out = String::with_capacity(channel.len() + 36);
    out.push_str(r#"{"push":{"channel":"#);
    push_json_string(&mut out, channel);
    out.push_str(r#","pub":{"data":"#);
    out
}

/// `prefix ‖ frame ‖ PUB_PUSH_SUFFIX` in one allocation of the exact size.
pub(crate) fn wrap_pub(prefix: &str, frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + frame.len() + PUB_PUSH_SUFFIX.len());
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(frame);
    out.extend_from_slice(PUB_PUSH_SUFFIX.as_bytes());
    out
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it (`\"`, `\\`, the
/// short forms `\b \t \n \f \r`, other control characters as `\u00xx`), so the prefix matches
/// what serde would write.
fn push_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut start = 0;
    for (at, byte) in s.bytes().enumerate() {
        let escape: Option<&str> = match byte {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            0x08 => Some("\\b"),
            b'\t' => Some("\\t"),
            b'\n' => Some("\\n"),
            0x0c => Some("\\f"),
            b'\r' => Some("\\r"),
            0x00..=0x1f => Some(""),
            _ => None,
        };
        let Some(escape) = escape else { continue };
        out.push_str(&s[start..at]);
        match escape {
            "" => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
            short => out.push_str(short),
        }
        start = at + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw(json: &str) -> Raw {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    fn value(json: &str) -> serde_json::Value {
        serde_json::from_str(json).unwrap()
    }

    fn decode(json: &str) -> Command {
        Command::decode(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    /// Encodes a reply, checks it is the golden text, and that decoding it encodes the same.
    fn golden(reply: &Reply, json: &str) {
        assert_eq!(reply.encode().unwrap(), json);
        let again = Reply::decode(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(again.encode().unwrap(), json);
    }

    // -- Commands: the exact frames centrifuge-js sends (design A2).

    #[test]
    fn the_sdks_first_connect_and_subscribe() {
        let connect = decode(r#"{"connect":{"name":"js"},"id":1}"#);
        assert_eq!(connect.id, 1);
        let Method::Connect(req) = &connect.method else {
            panic!("{connect:?}")
        };
        assert_eq!(req.name, "js");
        assert!(req.token.is_empty() && req.data.is_none() && req.subs.is_empty());
        assert_eq!(
            serde_json::to_string(&connect).unwrap(),
            r#"{"connect":{"name":"js"},"id":1}"#
        );

        let subscribe = decode(r#"{"subscribe":{"channel":"chat/lobby","flag":1},"id":2}"#);
        assert_eq!(subscribe.id, 2);
        let Method::Subscribe(req) = &subscribe.method else {
            panic!("{subscribe:?}")
        };
        assert_eq!((req.channel.as_str(), req.flag, req.recover), ("chat/lobby", 1, false));
        assert_eq!(
            serde_json::to_string(&subscribe).unwrap(),
            r#"{"subscribe":{"channel":"chat/lobby","flag":1},"id":2}"#
        );
    }

    #[test]
    fn a_full_connect_with_token_data_headers_and_server_side_subs() {
        let json = r#"{"connect":{"token":"ann","data":{"a":[1,2]},"name":"js","version":"1.2","headers":{"x-app":"chat"},"subs":{"notices/ann":{"recover":true,"offset":18446744073709551615,"epoch":"ep"}}},"id":1}"#;
        let cmd = decode(json);
        let Method::Connect(req) = &cmd.method else {
            panic!("{cmd:?}")
        };
        assert_eq!(req.token, "ann");
        assert_eq!(req.data.as_deref().map(RawValue::get), Some(r#"{"a":[1,2]}"#));
        assert_eq!(req.headers["x-app"], "chat");
        let sub = &req.subs["notices/ann"];
        assert!(sub.recover);
        assert_eq!((sub.offset, sub.epoch.as_str()), (u64::MAX, "ep"));
        // Encoding keeps every field (in the .proto's order, not the SDK's).
        assert_eq!(value(&serde_json::to_string(&cmd).unwrap()), value(json));
    }

    #[test]
    fn resubscribe_publish_rpc_send_and_pong() {
        let json = r#"{"subscribe":{"channel":"chat/lobby","recoverable":true,"join_leave":true,"flag":3,"recover":true,"offset":7,"epoch":"xyz","token":"t","data":{"k":"v"}},"id":3}"#;
        let cmd = decode(json);
        let Method::Subscribe(req) = &cmd.method else {
            panic!("{cmd:?}")
        };
        assert!(req.recover && req.recoverable && req.join_leave);
        assert_eq!((req.offset, req.epoch.as_str(), req.flag), (7, "xyz", 3));
        assert_eq!(value(&serde_json::to_string(&cmd).unwrap()), value(json));

        let json = r#"{"publish":{"channel":"chat/lobby","data":{"type":"say","text":"hi \u2603\n"}},"id":4}"#;
        let cmd = decode(json);
        let Method::Publish(req) = &cmd.method else {
            panic!("{cmd:?}")
        };
        assert_eq!(req.channel, "chat/lobby");
        // The data's bytes are kept as sent, escapes included: never parsed here.
        assert_eq!(
            req.data.as_deref().map(RawValue::get),
            Some(r#"{"type":"say","text":"hi \u2603\n"}"#)
        );
        assert_eq!(serde_json::to_string(&cmd).unwrap(), json);

        let cmd = decode(r#"{"rpc":{"method":"sum","data":[1,2]},"id":5}"#);
        let Method::Rpc(req) = &cmd.method else {
            panic!("{cmd:?}")
        };
        assert_eq!(
            (req.method.as_str(), req.data.as_deref().map(RawValue::get)),
            ("sum", Some("[1,2]"))
        );

        let cmd = decode(r#"{"send":{"data":"hello"}}"#);
        assert_eq!(cmd.id, 0);
        let Method::Send(req) = &cmd.method else {
            panic!("{cmd:?}")
        };
        assert_eq!(req.data.as_deref().map(RawValue::get), Some(r#""hello""#));
        // `send(undefined)`: JSON.stringify drops the field.
        assert!(matches!(
            decode(r#"{"send":{}}"#).method,
            Method::Send(SendRequest { data: None })
        ));

        for pong in ["{}", " {} ", r#"{"id":0}"#, r#"{"id":null}"#, r#"{"future":1}"#] {
            let cmd = decode(pong);
            assert!(matches!(cmd.method, Method::Pong), "{pong}");
            assert_eq!(cmd.id, 0);
        }
        assert_eq!(serde_json::to_string(&decode("{}")).unwrap(), "{}");
    }

    #[test]
    fn every_method_decodes_with_its_fields() {
        let cases = [
            (r#"{"id":1,"unsubscribe":{"channel":"a"}}"#, "unsubscribe"),
            (r#"{"id":1,"presence":{"channel":"a"}}"#, "presence"),
            (r#"{"id":1,"presence_stats":{"channel":"a"}}"#, "presence_stats"),
            (
                r#"{"id":1,"history":{"channel":"a","limit":-1,"since":{"offset":3,"epoch":"e"},"reverse":true}}"#,
                "history",
            ),
            (r#"{"id":1,"ping":{}}"#, "ping"),
            (r#"{"id":1,"refresh":{"token":"t2"}}"#, "refresh"),
            (
                r#"{"id":1,"sub_refresh":{"channel":"a","token":"t3","type":0,"untrack":[]}}"#,
                "sub_refresh",
            ),
            (
                r#"{"id":1,"publish":{"channel":"a","data":null,"type":1,"key":"k","removed":true}}"#,
                "publish",
            ),
        ];
        for (json, name) in cases {
            let cmd = decode(json);
            assert_eq!((cmd.id, cmd.method.name()), (1, name), "{json}");
        }
        let Method::History(h) = decode(cases[3].0).method else {
            panic!()
        };
        assert_eq!(
            h.since,
            Some(StreamPosition {
                offset: 3,
                epoch: "e".into()
            })
        );
        assert_eq!(h.limit, -1);
        let Method::Publish(p) = decode(cases[7].0).method else {
            panic!()
        };
        assert!(p.data.is_none() && p.kind == 1 && p.removed);
    }

    #[test]
    fn nulls_are_absent_and_unknown_fields_skipped() {
        let json = r#"{"id":2,"connect":null,"subscribe":{"channel":"a","token":null,"data":null,"recover":null,"offset":null,"flag":null,"extra":[1,{"x":null}]},"future":{"y":2}}"#;
        let cmd = decode(json);
        let Method::Subscribe(req) = &cmd.method else {
            panic!("{cmd:?}")
        };
        assert_eq!(req.channel, "a");
        assert!(req.token.is_empty() && req.data.is_none() && !req.recover && req.offset == 0);
        // camelCase is not snake_case: an unknown field, skipped.
        let cmd = decode(r#"{"id":2,"subscribe":{"channel":"a","joinLeave":true}}"#);
        let Method::Subscribe(req) = &cmd.method else { panic!() };
        assert!(!req.join_leave);
    }

    #[test]
    fn malformed_commands_are_typed_errors() {
        let malformed = [
            "",
            "nul",
            "[]",
            "[1]",
            r#""x""#,
            "1",
            "null",
            r#"{"id":4294967296,"ping":{}}"#,
            r#"{"id":-1,"ping":{}}"#,
            r#"{"id":1.5,"ping":{}}"#,
            r#"{"id":"1","ping":{}}"#,
            r#"{"id":1,"subscribe":[]}"#,
            r#"{"id":1,"subscribe":"chat"}"#,
            r#"{"id":1,"subscribe":{"channel":5}}"#,
            r#"{"id":1,"publish":{"channel":"a","data":}}"#,
            r#"{"id":1,"ping":{}} {}"#,
            r#"{"id":1,"id":2,"ping":{}}"#,
        ];
        for json in malformed {
            assert!(
                matches!(Command::decode(json), Err(DecodeError::Malformed(_))),
                "{json}"
            );
        }
        assert!(matches!(
            Command::decode(r#"{"id":3}"#),
            Err(DecodeError::NoMethod { id: 3 })
        ));
        assert!(matches!(
            Command::decode(r#"{"id":3,"unknown":{}}"#),
            Err(DecodeError::NoMethod { id: 3 })
        ));
        assert!(matches!(
            Command::decode(r#"{"subscribe":{"channel":"a"}}"#),
            Err(DecodeError::MissingId { method: "subscribe" })
        ));
        assert!(matches!(
            Command::decode(r#"{"id":0,"ping":{}}"#),
            Err(DecodeError::MissingId { method: "ping" })
        ));
        assert!(matches!(
            Command::decode(r#"{"id":1,"publish":{"channel":"a"},"connect":{}}"#),
            Err(DecodeError::SeveralMethods {
                first: "connect",
                second: "publish"
            })
        ));
        // A `null` second method is absent, not a second method.
        assert!(matches!(
            decode(r#"{"id":1,"publish":{"channel":"a"},"connect":null}"#).method,
            Method::Publish(_)
        ));
        // `send` may carry an id; it is answered by nothing either way.
        assert_eq!(decode(r#"{"id":9,"send":{}}"#).id, 9);
    }

    // -- Replies and pushes (design A3), golden both ways.

    #[test]
    fn empty_results_and_errors() {
        golden(&Reply::result(3, ReplyBody::Publish), r#"{"id":3,"publish":{}}"#);
        golden(
            &Reply::result(4, ReplyBody::Unsubscribe),
            r#"{"id":4,"unsubscribe":{}}"#,
        );
        golden(&Reply::result(5, ReplyBody::Ping), r#"{"id":5,"ping":{}}"#);
        golden(&Reply::result(0, ReplyBody::ServerPing), "{}");
        assert_eq!(Reply::result(0, ReplyBody::ServerPing).encode().unwrap(), PING);
        golden(
            &Reply::result(2, ReplyBody::Subscribe(SubscribeResult::default())),
            r#"{"id":2,"subscribe":{}}"#,
        );
        golden(
            &Reply::error(2, ErrorCode::Internal),
            r#"{"id":2,"error":{"code":100,"message":"internal server error","temporary":true}}"#,
        );
        golden(
            &Reply::error(7, ErrorCode::PermissionDenied),
            r#"{"id":7,"error":{"code":103,"message":"permission denied"}}"#,
        );
        golden(
            &Reply::error(
                8,
                ReplyError {
                    code: 107,
                    message: "bad \"data\"\n".into(),
                    temporary: false,
                },
            ),
            r#"{"id":8,"error":{"code":107,"message":"bad \"data\"\n"}}"#,
        );
    }

    #[test]
    fn connect_subscribe_refresh_and_rpc_results() {
        let mut subs = BTreeMap::new();
        subs.insert("notices/ann".to_owned(), SubscribeResult::default());
        let connect = ConnectResult {
            client: "c1".into(),
            version: "0.1.0".into(),
            expires: true,
            ttl: 60,
            data: Some(raw(r#"{"motd":"hi"}"#)),
            subs,
            ping: 25,
            pong: true,
            session: String::new(),
            node: "n1".into(),
            time: 0,
        };
        golden(
            &Reply::result(1, ReplyBody::Connect(connect)),
            r#"{"id":1,"connect":{"client":"c1","version":"0.1.0","expires":true,"ttl":60,"data":{"motd":"hi"},"subs":{"notices/ann":{}},"ping":25,"pong":true,"node":"n1"}}"#,
        );
        let subscribe = SubscribeResult {
            recoverable: true,
            epoch: "e".into(),
            publications: vec![Publication {
                data: Some(raw("1")),
                offset: 4,
                ..Default::default()
            }],
            recovered: true,
            offset: 4,
            positioned: true,
            was_recovering: true,
            ..Default::default()
        };
        golden(
            &Reply::result(2, ReplyBody::Subscribe(subscribe)),
            r#"{"id":2,"subscribe":{"recoverable":true,"epoch":"e","publications":[{"data":1,"offset":4}],"recovered":true,"offset":4,"positioned":true,"was_recovering":true}}"#,
        );
        let refresh = RefreshResult {
            client: "c1".into(),
            version: "0.1.0".into(),
            expires: true,
            ttl: 30,
        };
        golden(
            &Reply::result(6, ReplyBody::Refresh(refresh)),
            r#"{"id":6,"refresh":{"client":"c1","version":"0.1.0","expires":true,"ttl":30}}"#,
        );
        golden(
            &Reply::result(9, ReplyBody::Rpc(DataResult { data: Some(raw("[3]")) })),
            r#"{"id":9,"rpc":{"data":[3]}}"#,
        );
    }

    #[test]
    fn pushes() {
        let publication = Publication {
            data: Some(raw(r#"{"type":"said","text":"hi"}"#)),
            ..Default::default()
        };
        golden(
            &Reply::push("chat/lobby", PushBody::Pub(publication)),
            r#"{"push":{"channel":"chat/lobby","pub":{"data":{"type":"said","text":"hi"}}}}"#,
        );
        // ClientInfo's user and client are written even when empty.
        let info = ClientInfo {
            user: String::new(),
            client: "c2".into(),
            conn_info: None,
            chan_info: None,
        };
        let publication = Publication {
            data: Some(raw("1")),
            info: Some(info.clone()),
            offset: 3,
            tags: BTreeMap::new(),
        };
        golden(
            &Reply::push("c", PushBody::Pub(publication)),
            r#"{"push":{"channel":"c","pub":{"data":1,"info":{"user":"","client":"c2"},"offset":3}}}"#,
        );
        golden(
            &Reply::push(
                "c",
                PushBody::Join(JoinLeave {
                    info: ClientInfo::default(),
                }),
            ),
            r#"{"push":{"channel":"c","join":{"info":{"user":"","client":""}}}}"#,
        );
        let info = ClientInfo {
            conn_info: Some(raw(r#"{"n":1}"#)),
            chan_info: Some(raw("true")),
            ..info
        };
        golden(
            &Reply::push("c", PushBody::Leave(JoinLeave { info })),
            r#"{"push":{"channel":"c","leave":{"info":{"user":"","client":"c2","conn_info":{"n":1},"chan_info":true}}}}"#,
        );
        golden(
            &Reply::push(
                "chat/lobby",
                PushBody::Unsubscribe(UnsubscribePush {
                    code: 2500,
                    reason: "insufficient state".into(),
                }),
            ),
            r#"{"push":{"channel":"chat/lobby","unsubscribe":{"code":2500,"reason":"insufficient state"}}}"#,
        );
        golden(
            &Reply::push("notices/ann", PushBody::Subscribe(SubscribePush::default())),
            r#"{"push":{"channel":"notices/ann","subscribe":{}}}"#,
        );
        golden(
            &Reply::push(
                "",
                PushBody::Message(DataResult {
                    data: Some(raw(r#""hi""#)),
                }),
            ),
            r#"{"push":{"message":{"data":"hi"}}}"#,
        );
        golden(
            &Reply::push(
                "",
                PushBody::Disconnect(DisconnectPush {
                    code: 3001,
                    reason: "shutdown".into(),
                    reconnect: true,
                }),
            ),
            r#"{"push":{"disconnect":{"code":3001,"reason":"shutdown","reconnect":true}}}"#,
        );
        golden(
            &Reply::push("", PushBody::Refresh(RefreshPush { expires: true, ttl: 9 })),
            r#"{"push":{"refresh":{"expires":true,"ttl":9}}}"#,
        );
    }

    #[test]
    fn replies_decode_leniently_and_refuse_ambiguity() {
        // As a client: nulls and unknown fields (`flag`, `dict`, push `id`) are skipped.
        let reply = Reply::decode(
            r#"{"id":1,"connect":{"client":"c","ping":25,"pong":true,"flag":0,"dict":null,"session":null}}"#,
        )
        .unwrap();
        let ReplyBody::Connect(c) = reply.body else { panic!() };
        assert_eq!((c.client.as_str(), c.ping, c.pong), ("c", 25, true));
        let reply = Reply::decode(r#"{"push":{"id":0,"channel":"a","pub":{"data":{},"delta":false}}}"#).unwrap();
        assert!(matches!(
            reply.body,
            ReplyBody::Push(Push {
                body: PushBody::Pub(_),
                ..
            })
        ));
        assert!(matches!(
            Reply::decode(r#"{"id":1}"#),
            Err(DecodeError::NoMethod { id: 1 })
        ));
        assert!(matches!(
            Reply::decode(r#"{"id":1,"error":{"code":1},"publish":{}}"#),
            Err(DecodeError::SeveralMethods {
                first: "error",
                second: "publish"
            })
        ));
        assert!(matches!(
            Reply::decode(r#"{"push":{"channel":"a"}}"#),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(Reply::decode("[]"), Err(DecodeError::Malformed(_))));
    }

    // -- The pre-encoded pub push.

    #[test]
    fn the_pub_push_prefix_escapes_like_serde() {
        for channel in [
            "chat/lobby",
            "chat/caf%C3%A9",
            "a\"b\\c",
            "tab\there\n\r\u{8}\u{c}\u{1}\u{1f}\u{7f}",
            "é☃",
            "",
        ] {
            let frame = br#"{"type":"said","text":"hi"}"#;
            let wrapped = wrap_pub(&pub_push_prefix(channel), frame);
            let publication = Publication {
                data: Some(raw(std::str::from_utf8(frame).unwrap())),
                ..Default::default()
            };
            let reply = Reply {
                id: 0,
                body: ReplyBody::Push(Push {
                    channel: channel.into(),
                    body: PushBody::Pub(publication),
                }),
            };
            let serde = reply.encode().unwrap();
            if !channel.is_empty() {
                assert_eq!(String::from_utf8(wrapped.clone()).unwrap(), serde, "{channel:?}");
            }
            // Either way the client reads the same message.
            let parsed: serde_json::Value = serde_json::from_slice(&wrapped).unwrap();
            assert_eq!(parsed["push"]["channel"], channel);
            assert_eq!(parsed["push"]["pub"]["data"]["text"], "hi");
        }
    }

    /// Arbitrary JSON text: scalars, and objects and arrays of them.
    fn json_text() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            ".{0,12}".prop_map(serde_json::Value::from),
        ];
        let value = leaf.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        value.prop_map(|v| serde_json::to_string(&v).unwrap())
    }

    /// An optional raw value; never `null`, which decodes as absent (`None`).
    fn opt_raw() -> impl Strategy<Value = Option<Raw>> {
        prop::option::of(
            json_text()
                .prop_filter("null is absent", |j| j != "null")
                .prop_map(|j| raw(&j)),
        )
    }

    fn client_info() -> impl Strategy<Value = ClientInfo> {
        (".{0,8}", ".{0,8}", opt_raw(), opt_raw()).prop_map(|(user, client, conn_info, chan_info)| ClientInfo {
            user,
            client,
            conn_info,
            chan_info,
        })
    }

    fn publication() -> impl Strategy<Value = Publication> {
        (
            opt_raw(),
            prop::option::of(client_info()),
            any::<u64>(),
            prop::collection::btree_map(".{0,4}", ".{0,4}", 0..3),
        )
            .prop_map(|(data, info, offset, tags)| Publication {
                data,
                info,
                offset,
                tags,
            })
    }

    fn push_body() -> impl Strategy<Value = PushBody> {
        prop_oneof![
            publication().prop_map(PushBody::Pub),
            client_info().prop_map(|info| PushBody::Join(JoinLeave { info })),
            client_info().prop_map(|info| PushBody::Leave(JoinLeave { info })),
            (any::<u32>(), ".{0,12}")
                .prop_map(|(code, reason)| PushBody::Unsubscribe(UnsubscribePush { code, reason })),
            opt_raw().prop_map(|data| PushBody::Message(DataResult { data })),
            (any::<bool>(), ".{0,6}", any::<u64>(), any::<bool>(), opt_raw()).prop_map(
                |(recoverable, epoch, offset, positioned, data)| PushBody::Subscribe(SubscribePush {
                    recoverable,
                    epoch,
                    offset,
                    positioned,
                    data
                })
            ),
            (any::<u32>(), ".{0,12}", any::<bool>()).prop_map(|(code, reason, reconnect)| PushBody::Disconnect(
                DisconnectPush {
                    code,
                    reason,
                    reconnect
                }
            )),
            (any::<bool>(), any::<u32>()).prop_map(|(expires, ttl)| PushBody::Refresh(RefreshPush { expires, ttl })),
        ]
    }

    fn reply() -> impl Strategy<Value = Reply> {
        let id = 1..=u32::MAX;
        prop_oneof![
            Just(Reply::result(0, ReplyBody::ServerPing)),
            (id.clone(), any::<u32>(), ".{0,16}", any::<bool>()).prop_map(|(id, code, message, temporary)| {
                Reply::error(
                    id,
                    ReplyError {
                        code,
                        message,
                        temporary,
                    },
                )
            }),
            (".{0,12}", push_body()).prop_map(|(channel, body)| Reply::push(channel, body)),
            (
                id.clone(),
                prop::sample::select(vec![ReplyBody::Unsubscribe, ReplyBody::Publish, ReplyBody::Ping])
            )
                .prop_map(|(id, body)| Reply::result(id, body)),
            (
                id.clone(),
                ".{0,8}",
                any::<u32>(),
                opt_raw(),
                prop::collection::btree_map(".{0,6}", Just(SubscribeResult::default()), 0..3),
                any::<u32>(),
                any::<bool>()
            )
                .prop_map(|(id, client, ttl, data, subs, ping, pong)| Reply::result(
                    id,
                    ReplyBody::Connect(ConnectResult {
                        client,
                        ttl,
                        expires: ttl > 0,
                        data,
                        subs,
                        ping,
                        pong,
                        ..Default::default()
                    })
                )),
            (
                id.clone(),
                ".{0,6}",
                prop::collection::vec(publication(), 0..3),
                any::<u64>(),
                any::<bool>(),
                opt_raw()
            )
                .prop_map(|(id, epoch, publications, offset, flag, data)| Reply::result(
                    id,
                    ReplyBody::Subscribe(SubscribeResult {
                        recoverable: flag,
                        epoch,
                        publications,
                        recovered: flag,
                        offset,
                        positioned: flag,
                        data,
                        was_recovering: !flag,
                        ..Default::default()
                    })
                )),
            (id.clone(), ".{0,8}", any::<bool>(), any::<u32>()).prop_map(|(id, client, expires, ttl)| {
                Reply::result(
                    id,
                    ReplyBody::Refresh(RefreshResult {
                        client,
                        version: "1".into(),
                        expires,
                        ttl,
                    }),
                )
            }),
            (id, opt_raw()).prop_map(|(id, data)| Reply::result(id, ReplyBody::Rpc(DataResult { data }))),
        ]
    }

    proptest! {
        /// Arbitrary bytes never panic the decoders.
        #[test]
        fn decoding_anything_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let text = String::from_utf8_lossy(&bytes);
            let _ = Command::decode(&text);
            let _ = Reply::decode(&text);
        }

        /// Nor does almost-JSON, which reaches deeper into them.
        #[test]
        fn decoding_json_like_text_never_panics(text in r#"[{}\[\]":,0-9a-z_ \-.]{0,80}"#) {
            let _ = Command::decode(&text);
            let _ = Reply::decode(&text);
        }

        /// encode → decode → encode is the identity, and what is encoded is one line of JSON.
        #[test]
        fn replies_and_pushes_round_trip(reply in reply()) {
            let json = reply.encode().unwrap();
            prop_assert!(!json.contains('\n'));
            let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
            prop_assert!(parsed.is_object());
            let again = Reply::decode(&json).unwrap();
            prop_assert_eq!(again.encode().unwrap(), json);
        }

        /// `prefix ‖ frame ‖ suffix` is serde's `pub` push, whatever the channel and data.
        #[test]
        fn the_wrapped_frame_is_serdes_pub_push(channel in ".{1,24}", data in json_text()) {
            let wrapped = wrap_pub(&pub_push_prefix(&channel), data.as_bytes());
            let publication = Publication { data: Some(raw(&data)), ..Default::default() };
            let serde = Reply::push(channel.clone(), PushBody::Pub(publication)).encode().unwrap();
            prop_assert_eq!(String::from_utf8(wrapped).unwrap(), serde);
        }
    }
}
