//! The traits the `#[channel]` macro implements: [`Channel`] and [`Params`].
//!
//! The one module that imports upward: [`Channel`]'s provided functions (`publish`,
//! `subscribe`, `register`) name the client's, the server's and the codec's types in their
//! signatures, which is what makes `Chat::register(server, …)` one call. Every other arrow
//! between the crate's modules points down (the tests folder's `layers.rs` checks it).

use std::fmt::{Debug, Display};
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client::{Publish, Subscription};
use crate::codec::Format;
use crate::error::{Error, ParamError, ValidationError};
use crate::pattern::Template;
use crate::server::{Handler, Server};
use crate::transport::{MessageSink, MessageStream};

/// A typed WebSocket channel: an address template plus the messages each side sends.
///
/// Implemented by `#[channel]`; see the [macro's documentation](macro@crate::channel) for the
/// three shapes (symmetric, asymmetric, server-only) and what each generates.
///
/// The typed functions a channel is used through are this trait's: [`publish`](Channel::publish)
/// and [`subscribe`](Channel::subscribe) on the client, [`register`](Channel::register) on the
/// server, called on the channel's type (`ChatCommand::register(server, |h| …)`) with the trait
/// in scope: `use ws_channels::Channel` (or `use ws_channels::Channel as _` beside a type of
/// your own named `Channel`). They are the trait's rather than generated for every channel, so
/// a crate of many channels compiles faster, and a type may have functions of its own with
/// these names: those take precedence, and `<T as Channel>::publish` still reaches the
/// channel's.
pub trait Channel: Sized + Send + Sync + 'static {
    /// The channel's name (the Rust type's name unless `name = "…"` overrides it).
    const NAME: &'static str;

    /// Who sends what on this channel.
    const SHAPE: Shape;

    /// What the channel is for: the annotated type's doc comment (empty without one). Used by
    /// exported documents.
    const DESCRIPTION: &'static str = "";

    /// The typed path parameters, `UserEventsParams` for `UserEvents`.
    type Params: Params<Channel = Self>;

    /// What a client sends and the server's handlers receive ([`NoMessage`] for server-only channels).
    type ClientMessage: Message;

    /// What the server sends and a client's subscription yields.
    type ServerMessage: Message;

    /// How messages travel: [`Json`](crate::Json) unless `codec = …` says otherwise.
    type Codec: Format<Self::ClientMessage> + Format<Self::ServerMessage>;

    /// Checks a client message after decoding (server side) and before sending (client side).
    ///
    /// The default accepts everything; `#[channel(…, validate)]` calls [`Validate`](crate::Validate).
    fn validate_client(message: &Self::ClientMessage) -> Result<(), ValidationError> {
        let _ = message;
        Ok(())
    }

    /// Checks a server message after decoding (client side) and before sending (server side).
    fn validate_server(message: &Self::ServerMessage) -> Result<(), ValidationError> {
        let _ = message;
        Ok(())
    }

    /// What happens when a connection's outbound queue is full: a client reads more slowly
    /// than the server sends. Set with `#[channel(…, on_lag = drop_oldest)]`.
    const LAG_POLICY: LagPolicy = LagPolicy::Disconnect;

    /// What the server does when a client frame does not decode or does not validate.
    ///
    /// `None` (the default) closes the connection: code 1007 for undecodable frames, 1008 for
    /// failed validation. `Some(reply)` sends `reply` and keeps the connection open;
    /// `#[channel(…, on_invalid = reply)]` builds it with [`ErrorReply`].
    fn on_invalid(error: &Error) -> Option<Self::ServerMessage> {
        let _ = error;
        None
    }

    /// Client: sends `message` on this channel over an already-connected WebSocket (any
    /// [`MessageSink`], such as a tokio-tungstenite stream or a [`ClientSocket`](crate::ClientSocket)).
    /// Not on `server_only` channels: publishing there does not compile.
    ///
    /// The message is validated and encoded when `publish` is called; the returned future sends
    /// the frame. The same as [`publish::<Self, _>`](crate::publish).
    ///
    /// ```
    /// use ws_channels::{Channel, ClientSocket, Error, channel};
    ///
    /// #[channel("chat/<room>")]
    /// #[derive(Debug, serde::Serialize, serde::Deserialize)]
    /// struct Chat { text: String }
    ///
    /// async fn say(socket: &mut ClientSocket) -> Result<(), Error> {
    ///     Chat::publish(socket, &Chat { text: "hi".into() }).await
    /// }
    /// ```
    fn publish<'a, W>(sink: &'a mut W, message: &Self::ClientMessage) -> Publish<'a, W>
    where
        Self: ClientSends,
        W: MessageSink + ?Sized,
    {
        crate::client::publish::<Self, W>(sink, message)
    }

    /// Client: the typed messages the server sends on this channel, from any stream of
    /// WebSocket messages ([`MessageStream`]). A frame that does not decode or validate is one
    /// `Err` item and the stream goes on. The same as [`subscribe::<Self, _>`](crate::subscribe).
    ///
    /// ```
    /// use futures_util::StreamExt;
    /// use ws_channels::tungstenite::{Error as WsError, Message};
    /// use ws_channels::{Channel, channel};
    ///
    /// #[channel("ticks/<feed>", server_only)]
    /// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    /// struct Tick { n: u32 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let frames = futures_util::stream::iter([Ok::<_, WsError>(Message::text(r#"{"n":1}"#))]);
    /// let mut ticks = Tick::subscribe(frames);
    /// assert_eq!(ticks.next().await.expect("one frame").ok(), Some(Tick { n: 1 }));
    /// # }
    /// ```
    fn subscribe<R: MessageStream>(stream: R) -> Subscription<Self, R> {
        crate::client::subscribe::<Self, R>(stream)
    }

    /// Server: handles this channel on `server`; `configure` sets the handler's callbacks
    /// ([`on_connect`](Handler::on_connect), [`on_message`](Handler::on_message), …). The
    /// same as `server.register(configure(Handler::new()))`.
    ///
    /// ```
    /// use ws_channels::{Channel, Server, channel};
    ///
    /// #[channel("echo/<room>")]
    /// #[derive(Debug, serde::Serialize, serde::Deserialize)]
    /// struct Echo { text: String }
    ///
    /// let server = Echo::register(Server::new(), |h| {
    ///     h.on_message(|conn, msg| async move {
    ///         conn.send(&msg).await?;
    ///         Ok(())
    ///     })
    /// });
    /// # drop(server);
    /// ```
    fn register<S, D>(server: Server<S>, configure: impl FnOnce(Handler<Self, S>) -> Handler<Self, S, D>) -> Server<S>
    where
        S: Send + Sync + 'static,
        D: Send + Sync + 'static,
    {
        server.register(configure(Handler::new()))
    }
}

/// Which side sends which type on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Both sides exchange the annotated type.
    Symmetric,
    /// The client sends the annotated type; the server sends the type named by `server = …`.
    Asymmetric,
    /// Only the server sends (the annotated type); clients may not publish.
    ServerOnly,
}

/// What a server does with a message for a connection whose outbound queue is full.
///
/// Each connection has a bounded queue (see [`Server::outbound_queue`](crate::Server::outbound_queue))
/// drained by the connection's own writer, so a slow reader never delays the publisher or anyone else;
/// this policy decides what the slow reader loses. Every drop or disconnect is reported to
/// `on_lag` and counted in [`Metrics`](crate::Metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LagPolicy {
    /// Close the connection with 1013 (`slow consumer`, "try again later"): the client knows it missed messages
    /// and can reconnect and resynchronize. The default.
    #[default]
    Disconnect,
    /// Drop the oldest queued message to make room: for feeds where only the latest matters.
    DropOldest,
    /// Drop the new message.
    DropNew,
}

/// Marks channels on which clients may publish: every channel except `server_only` ones.
///
/// Client publishing and server `on_message` handlers require it, so publishing on a push-only
/// channel is a compile error.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a `server_only` channel: clients cannot publish on it",
    label = "clients cannot publish on this channel",
    note = "only the server sends on a `server_only` channel; remove `server_only` from its `#[channel]` to let clients send"
)]
pub trait ClientSends: Channel {}

/// The bounds every message type meets: serde both ways, and shareable across tasks.
pub trait Message: Serialize + DeserializeOwned + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Send + Sync + 'static> Message for T {}

/// The typed path parameters of a channel (`UserEventsParams`), generated by `#[channel]`.
///
/// Generated params structs also implement `Display` (the concrete address, percent-encoded)
/// and `FromStr` (from a concrete address, percent-decoded and parsed), and have inherent
/// `new` and `url` functions.
pub trait Params: Debug + Display + Clone + Send + Sync + Sized + 'static {
    /// The channel these parameters belong to.
    type Channel: Channel<Params = Self>;

    /// The channel's address template.
    const TEMPLATE: Template;

    /// Descriptions of parameters, by name as written in the template: the doc comment of the
    /// message field with the same name. Used by exported documents.
    const DESCRIPTIONS: &'static [(&'static str, &'static str)] = &[];

    /// Parses percent-decoded values, in template order.
    fn from_values(values: &[String]) -> Result<Self, ParamError>;

    /// Formats each parameter with `Display`, in template order.
    fn to_values(&self) -> Vec<String>;

    /// The concrete address, `user/events/42` (no leading `/`).
    fn to_path(&self) -> Result<String, ParamError> {
        Self::TEMPLATE.format(&self.to_values())
    }

    /// Matches a concrete address (leading `/` optional) and parses its parameters.
    fn from_path(path: &str) -> Result<Self, ParamError> {
        Self::from_values(&Self::TEMPLATE.match_path(path)?)
    }

    /// The WebSocket URL of this address under `base`: `ws://localhost:8080/user/events/42`.
    fn to_url(&self, base: &str) -> Result<String, ParamError> {
        Ok(crate::pattern::join_url(base, &self.to_path()?))
    }
}

/// The types a template parameter can have: `FromStr` to parse it from a path, `Display` to
/// format it into one.
#[diagnostic::on_unimplemented(
    message = "channel parameter type `{Self}` must implement `FromStr` and `Display`",
    label = "used as a channel parameter type here",
    note = "parameters are parsed from the path with `FromStr` and formatted into it with `Display`; `String`, integers and most ID types qualify"
)]
pub trait ParamValue: FromStr<Err: Display> + Display + Debug + Clone + Send + Sync + 'static {}

impl<T> ParamValue for T where T: FromStr<Err: Display> + Display + Debug + Clone + Send + Sync + 'static {}

/// The client message type of a server-only channel: it has no values, so nothing can be
/// published, and a frame a client sends anyway fails to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoMessage {}

impl Serialize for NoMessage {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        match *self {}
    }
}

impl<'de> Deserialize<'de> for NoMessage {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "this channel is server_only: clients may not send messages on it",
        ))
    }
}

/// Builds the server message sent back when a client frame is invalid, for channels declared
/// with `on_invalid = reply`.
///
/// An error's `Display` is only its own layer ("cannot decode a message on channel `chat`");
/// print it with [`Report`](crate::Report) to tell the client why.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use ws_channels::{ErrorReply, Error, Report};
///
/// #[derive(Serialize, Deserialize)]
/// #[serde(tag = "type", rename_all = "snake_case")]
/// enum ChatEvent {
///     Message { text: String },
///     Error { message: String },
/// }
///
/// impl ErrorReply for ChatEvent {
///     fn error_reply(error: &Error) -> Self {
///         // The whole chain: "cannot decode a message on channel `chat`: unknown variant …".
///         ChatEvent::Error { message: Report(error).to_string() }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`on_invalid = reply` needs `{Self}` to implement `ws_channels::ErrorReply`",
    label = "the server message type must say how to report an invalid client message",
    note = "implement `ErrorReply` for `{Self}`, or use `on_invalid = close`"
)]
pub trait ErrorReply: Sized {
    /// The message that tells the client what was wrong with its frame.
    fn error_reply(error: &Error) -> Self;
}
