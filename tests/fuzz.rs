//! Hostile input, as property tests (proptest: `cargo fuzz` needs a nightly toolchain). Three
//! surfaces, each against an oracle written here rather than a mere "did not panic":
//!
//! - the template matcher and params parsing, on arbitrary paths (percent-escapes of `/`, NUL,
//!   invalid UTF-8, dot segments, doubled and trailing slashes, very long input), directly and
//!   through a served server's router over both HTTP front ends;
//! - a client's subscription, on arbitrary frames for every example channel's server message;
//! - a server's connection (the in-memory `TestServer`), on arbitrary frames for every example
//!   channel: each frame gets the documented outcome (a reply, an error reply, or a close with
//!   1007, 1008 or 1009, never 1011), and a second connection is served afterwards.
//!
//! Huge input (a 1 MB path, 100 000 `%` signs, JSON nested 30 000 deep, frames just over the
//! size limits) must be answered within [`QUICK`], which is shorter than the server's 3 s close
//! timeout: a refusal that waited for a timeout would fail.

// Test helpers too report failure by panicking.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use ws_channels::tungstenite::Message;
use ws_channels::tungstenite::protocol::CloseFrame;
use ws_channels::{Channel, CloseCode, Error, ParamError, Params, Server, Template, TestServer, channel};
use ws_channels_tests::{Backend, Served};

/// The longest one step on hostile input may take (debug build, busy machine included).
const QUICK: Duration = Duration::from_secs(2);

/// Awaits `future`, failing the test if it takes longer than [`QUICK`].
async fn quickly<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(QUICK, future).await {
        Ok(output) => output,
        Err(_) => panic!("took longer than {QUICK:?}: {what}"),
    }
}

/// `n` cases, and no regression files: a failure prints its minimal input.
fn cases(n: u32) -> Config {
    Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The example channels.
//
// The examples crate has example binaries and no library target, so their types cannot be
// imported: they are copied here with the attributes that shape their wire format (serde's and
// `#[channel]`'s), without `schemars::JsonSchema`, which decoding does not involve. The servers
// are copied too where an example has one (user_events, echo, chat, the benchmarks' echo);
// contract_types has none, so its channels get a small replying handler here.
// ---------------------------------------------------------------------------------------------

/// `examples/user_events.rs`.
mod user_events {
    use serde::{Deserialize, Serialize};
    use ws_channels::{Channel, Server, channel};

    /// A user signed up.
    #[channel("user/events/<userId>", name = "userEvents")]
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub(crate) struct UserSignedUp {
        pub(crate) user_id: String,
        pub(crate) email: String,
    }

    pub(crate) fn server() -> Server {
        UserSignedUp::register(Server::new(), |handler| {
            handler.on_message(|conn, message| async move {
                let reply = UserSignedUp {
                    user_id: message.user_id,
                    email: "updated@example.com".to_owned(),
                };
                conn.send(&reply).await?;
                Ok(())
            })
        })
    }
}

/// `examples/echo.rs`.
mod echo {
    use ws_channels::{Channel, Server, channel};

    /// Any JSON value.
    #[channel("echo")]
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(transparent)]
    pub(crate) struct Echo(pub(crate) serde_json::Value);

    pub(crate) fn server() -> Server {
        Echo::register(Server::new(), |handler| {
            handler.on_message(|conn, message| async move {
                conn.send(&message).await?;
                Ok(())
            })
        })
    }
}

/// `examples/bench/common.rs`.
mod bench {
    use ws_channels::{Channel, Server, channel};

    /// A message of a realistic shape, echoed typed: decoded, then encoded again.
    #[channel("echo")]
    #[derive(serde::Serialize, serde::Deserialize)]
    pub(crate) struct Echo {
        pub(crate) user_id: String,
        pub(crate) seq: u64,
        pub(crate) text: String,
    }

    pub(crate) fn server() -> Server {
        Echo::register(Server::new(), |h| {
            h.on_message(|conn, message| async move {
                conn.send(&message).await?;
                Ok(())
            })
        })
    }
}

/// `examples/chat/main.rs`.
mod chat {
    use std::time::{SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Serialize};
    use ws_channels::{
        Channel, Error, ErrorReply, Escaped, Handshake, RateLimit, RateLimitAction, Reject, Server, TokenSource,
        channel,
    };

    /// What a client sends in a room.
    #[channel("chat/<room>", server = ChatEvent, on_invalid = reply, name = "chat")]
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub(crate) enum ChatCommand {
        Say { text: String },
        Typing,
    }

    /// What the server tells a room.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub(crate) enum ChatEvent {
        Joined { user: String },
        Left { user: String },
        Message { user: String, text: String, ts: u64 },
        Typing { user: String },
        Error { message: String },
    }

    impl ErrorReply for ChatEvent {
        fn error_reply(error: &Error) -> Self {
            ChatEvent::Error {
                message: error.to_string(),
            }
        }
    }

    #[derive(Debug)]
    struct User {
        name: String,
    }

    const TOKEN_PREFIX: &str = "demo-token-";

    async fn identify(handshake: Handshake<ChatCommand>) -> Result<User, Reject> {
        let sources = [
            TokenSource::Bearer,
            TokenSource::Cookie("chat_token"),
            TokenSource::Query("token"),
        ];
        let name = match handshake.token(&sources) {
            Some(token) => token
                .strip_prefix(TOKEN_PREFIX)
                .map(str::to_owned)
                .ok_or_else(|| Reject::unauthorized("invalid token"))?,
            None => handshake
                .query_param("name")
                .ok_or_else(|| Reject::unauthorized("a ?name= or a token is required"))?,
        };
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 32 {
            return Err(Reject::bad_request("the name must be 1 to 32 characters"));
        }
        if !Escaped(&name).is_plain() {
            return Err(Reject::bad_request("the name must not contain control characters"));
        }
        Ok(User { name })
    }

    fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) const MAX_MESSAGE: usize = 4 * 1024;

    pub(crate) fn server() -> Server {
        let server = Server::new()
            .max_message_size(MAX_MESSAGE)
            .rate_limit(RateLimit::per_second(10).burst(20).on_exceed(RateLimitAction::Reply));
        ChatCommand::register(server, |handler| {
            handler
                .on_connect(identify)
                .on_open(|conn| async move {
                    let user = conn.data().name.clone();
                    let _ = conn.broadcast_others(&ChatEvent::Joined { user }).await?;
                    Ok(())
                })
                .on_message(|conn, command| async move {
                    let user = conn.data().name.clone();
                    match command {
                        ChatCommand::Say { text } => {
                            let _ = conn
                                .broadcast(&ChatEvent::Message {
                                    user,
                                    text,
                                    ts: now_ms(),
                                })
                                .await?;
                        }
                        ChatCommand::Typing => {
                            let _ = conn.broadcast_others(&ChatEvent::Typing { user }).await?;
                        }
                    }
                    Ok(())
                })
                .on_close(|conn, _info| async move {
                    let left = ChatEvent::Left {
                        user: conn.data().name.clone(),
                    };
                    let _ = conn.hub().publish(conn.params(), &left).await;
                })
        })
    }
}

/// `examples/contract_types.rs`: every awkward serde shape.
mod contract {
    use std::collections::{BTreeMap, HashMap};

    use serde::{Deserialize, Serialize};
    use ws_channels::{Channel, Server, channel};

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct Page<T> {
        pub(crate) items: Vec<T>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct User {
        pub(crate) name: String,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct Order {
        pub(crate) total: u32,
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct Inner {
        a: u8,
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub(crate) enum Internal {
        Unit,
        Struct { x: u32 },
        Wrapped(Inner),
    }

    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct Error {
        pub(crate) code: u32,
    }

    #[channel("users/<id>", server = Page<User>)]
    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct Odd {
        int_map: HashMap<u32, String>,
        ordered: BTreeMap<i64, bool>,
        #[serde(rename = "constructor")]
        ctor: String,
        letter: char,
        pair: [u8; 2],
        maybe: Option<String>,
        #[serde(flatten)]
        extra: HashMap<String, f64>,
    }

    #[channel("orders", server = Page<Order>, name = "delete")]
    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct OrderQuery {
        kind: Internal,
    }

    #[channel("list", server = Vec<User>, name = "validate")]
    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct ListQuery {
        #[serde(flatten)]
        only: Internal,
    }

    #[channel("star*/errors", server_only, name = "Error")]
    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct Errors {
        pub(crate) error: Error,
    }

    pub(crate) mod a {
        #[ws_channels::channel("a/events", server_only, name = "aEvents")]
        #[derive(Debug, serde::Serialize, serde::Deserialize)]
        pub(crate) struct Event {
            pub(crate) left: String,
        }
    }

    pub(crate) mod b {
        #[ws_channels::channel("b/events", server_only, name = "bEvents")]
        #[derive(Debug, serde::Serialize, serde::Deserialize)]
        pub(crate) struct Event {
            pub(crate) right: u64,
        }
    }

    /// Valid client messages, as serde_json writes them.
    pub(crate) const ODD: &str = r#"{"int_map":{"1":"one"},"ordered":{"-2":true},"constructor":"c","letter":"😀","pair":[1,2],"maybe":null,"weight":1.5}"#;
    pub(crate) const ORDER_QUERIES: [&str; 3] = [
        r#"{"kind":{"type":"unit"}}"#,
        r#"{"kind":{"type":"struct","x":1}}"#,
        r#"{"kind":{"type":"wrapped","a":7}}"#,
    ];
    pub(crate) const LIST_QUERY: &str = r#"{"type":"wrapped","a":1}"#;

    /// The example has no server: each client-sending channel answers with an empty page here.
    pub(crate) fn users_server() -> Server {
        Odd::register(Server::new(), |h| {
            h.on_message(|conn, _| async move {
                conn.send(&Page { items: Vec::new() }).await?;
                Ok(())
            })
        })
    }

    pub(crate) fn orders_server() -> Server {
        OrderQuery::register(Server::new(), |h| {
            h.on_message(|conn, _| async move {
                conn.send(&Page { items: Vec::new() }).await?;
                Ok(())
            })
        })
    }

    pub(crate) fn list_server() -> Server {
        ListQuery::register(Server::new(), |h| {
            h.on_message(|conn, _| async move {
                conn.send(&Vec::new()).await?;
                Ok(())
            })
        })
    }

    /// Server-only channels: nothing to handle, clients only listen.
    pub(crate) fn errors_server() -> Server {
        Errors::register(Server::new(), |h| h)
    }

    pub(crate) fn a_server() -> Server {
        a::Event::register(Server::new(), |h| h)
    }

    pub(crate) fn b_server() -> Server {
        b::Event::register(Server::new(), |h| h)
    }

    /// Every example channel but the echoes (which share `echo`), for routing.
    pub(crate) fn register_all(server: Server) -> Server {
        let server = Odd::register(server, |h| h);
        let server = OrderQuery::register(server, |h| h);
        let server = ListQuery::register(server, |h| h);
        let server = Errors::register(server, |h| h);
        let server = a::Event::register(server, |h| h);
        b::Event::register(server, |h| h)
    }
}

/// Typed parameters: the examples' are all `String`s, and "params parsing" includes the rest.
#[channel("typed/<n: u64>/<flag: bool>")]
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Typed {
    note: String,
}

use chat::{ChatCommand, ChatCommandParams, ChatEvent};
use contract::{ListQuery, ListQueryParams, Odd, OddParams, OrderQuery, OrderQueryParams};
use user_events::{UserSignedUp, UserSignedUpParams};

// ---------------------------------------------------------------------------------------------
// The template matcher and params parsing.
// ---------------------------------------------------------------------------------------------

/// A channel's `Params::from_path`, values discarded.
type FromPath = fn(&str) -> Result<(), ParamError>;

/// Every template below, with its channel's `from_path` (values discarded).
fn channel_paths() -> Vec<(Template, FromPath)> {
    fn parse<P: Params>(path: &str) -> Result<(), ParamError> {
        P::from_path(path).map(drop)
    }
    vec![
        (UserSignedUpParams::TEMPLATE, parse::<UserSignedUpParams>),
        (ChatCommandParams::TEMPLATE, parse::<ChatCommandParams>),
        (echo::EchoParams::TEMPLATE, parse::<echo::EchoParams>),
        (OddParams::TEMPLATE, parse::<OddParams>),
        (OrderQueryParams::TEMPLATE, parse::<OrderQueryParams>),
        (ListQueryParams::TEMPLATE, parse::<ListQueryParams>),
        (contract::ErrorsParams::TEMPLATE, parse::<contract::ErrorsParams>),
        (contract::a::EventParams::TEMPLATE, parse::<contract::a::EventParams>),
        (contract::b::EventParams::TEMPLATE, parse::<contract::b::EventParams>),
        (TypedParams::TEMPLATE, parse::<TypedParams>),
    ]
}

/// Percent-decoding as RFC 3986 reads it, strictly: a `%` not followed by two hex digits makes
/// the segment invalid (kept as it is, `%zz` would be a second spelling of `%25zz`). `None`:
/// not percent-encoding, or the bytes are not UTF-8.
fn decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap());
                i += 3;
            }
            // RFC 3986 §2.1: a `%` starts a triplet, or the segment is not percent-encoded.
            (b'%', _, _) => return None,
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// What matching `path` against `template` should give, worked out independently.
fn oracle_match(template: &Template, path: &str) -> Result<Vec<String>, ParamError> {
    let no_match = || ParamError::NoMatch {
        template: template.address(),
        path: path.to_owned(),
    };
    let parts: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    if parts.len() != template.segments().len() {
        return Err(no_match());
    }
    // Shape first (every static equal, every parameter non-empty), then the values.
    for (segment, part) in template.segments().iter().zip(&parts) {
        let fits = match segment {
            ws_channels::Segment::Static(literal) => literal == part,
            ws_channels::Segment::Param(_) => !part.is_empty(),
        };
        if !fits {
            return Err(no_match());
        }
    }
    let mut values = Vec::new();
    for (segment, part) in template.segments().iter().zip(&parts) {
        if let ws_channels::Segment::Param(name) = segment {
            let value = decode(part).ok_or(ParamError::InvalidEncoding {
                template: template.address(),
                name,
            })?;
            // No URL carries `.` or `..`: both ends refuse them.
            if let Some(dots) = dot_segment(&value) {
                return Err(ParamError::DotSegment {
                    template: template.address(),
                    name,
                    value: dots,
                });
            }
            values.push(value);
        }
    }
    Ok(values)
}

/// `.` or `..`, the values a path cannot carry.
fn dot_segment(value: &str) -> Option<&'static str> {
    match value {
        "." => Some("."),
        ".." => Some(".."),
        _ => None,
    }
}

/// A piece of a path segment: legal characters, percent-escapes good and bad.
fn uri_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9._~!$&'()*+,;=:@-]{1,4}",
        prop::sample::select(vec![
            "%2F",
            "%2f",
            "%00",
            "%FF",
            "%ff",
            "%C3",
            "%C3%A9",
            "%E2%82%AC",
            "%E2%82",
            "%F0%9F%98",
            "%ED%A0%80",
            "%C0%AF",
            "%25",
            "%",
            "%%",
            "%G1",
            "%2",
            "%20",
            "%2E",
            "%2e%2e",
            "%3F",
            "%23",
            "%7B",
            "+",
        ])
        .prop_map(str::to_owned),
    ]
}

/// A segment made of legal request-target characters.
fn uri_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        1 => prop::sample::select(vec![".", ".."]).prop_map(str::to_owned),
        3 => prop::sample::select(vec![
            "user", "events", "chat", "echo", "users", "orders", "list", "star*", "star", "errors", "a", "b", "typed",
            "7", "18446744073709551615", "18446744073709551616", "-1", "+1", "true", "false", "True",
        ])
        .prop_map(str::to_owned),
        4 => prop::collection::vec(uri_piece(), 1..5).prop_map(|pieces| pieces.concat()),
    ]
}

/// A segment that may hold anything a `&str` can: what a hostile caller of `from_path` passes.
fn any_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => uri_segment(),
        1 => prop::collection::vec(
            prop_oneof![
                any::<char>().prop_map(String::from),
                prop::sample::select(vec!["?", "#", " ", "\\", "\0", "é", "\u{FEFF}", "%2F/"]).prop_map(str::to_owned),
            ],
            1..4,
        )
        .prop_map(|pieces| pieces.concat()),
    ]
}

/// A path: a leading `/` or not, up to 6 segments, a trailing `/` or not (which is an empty
/// last segment).
fn path_of(segment: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(segment, 0..6)).prop_map(|(slash, segments)| {
        let joined = segments.join("/");
        if slash { format!("/{joined}") } else { joined }
    })
}

proptest! {
    #![proptest_config(cases(512))]

    /// `match_path` agrees with the oracle on every template: the values, or which typed error
    /// (`NoMatch` carrying the exact path, `InvalidEncoding` naming the parameter). Each match
    /// formats back to a path that matches to the same values, and `from_path` of every
    /// channel refuses exactly what its template refuses (plus `Invalid` for typed values).
    #[test]
    fn matching_arbitrary_paths_agrees_with_the_oracle(path in path_of(any_segment().boxed())) {
        for (template, from_path) in channel_paths() {
            let got = template.match_path(&path);
            prop_assert_eq!(&got, &oracle_match(&template, &path), "{} on {:?}", template.address(), path);
            match got {
                Ok(values) => {
                    let canonical = template.format(&values).unwrap();
                    prop_assert_eq!(template.match_path(&canonical).unwrap(), values.clone());
                    match from_path(&path) {
                        Ok(()) => {}
                        Err(ParamError::Invalid { template: t, name, value, .. }) => {
                            prop_assert_eq!(t, TypedParams::TEMPLATE.address(), "only typed values can be invalid");
                            let index = template.param_names().position(|n| n == name).unwrap();
                            prop_assert_eq!(&value, &values[index]);
                        }
                        Err(other) => prop_assert!(false, "{path:?} matched {} but from_path said {other:?}", template.address()),
                    }
                }
                Err(error) => prop_assert_eq!(from_path(&path), Err(error)),
            }
        }
    }

    /// Whatever non-empty strings the parameters hold (separators, `%`, dots, controls,
    /// any Unicode), `new` → `to_path` → `from_path` gives them back; `Display` is `to_path`;
    /// and the path is a request target the `http` crate takes as it is, so it reaches a
    /// server unchanged. Except `.` and `..`, which URL parsers resolve away: refused both
    /// ways, as `DotSegment`.
    #[test]
    fn any_value_round_trips_through_a_path(
        value in prop_oneof![".{1,24}", prop::sample::select(vec![".", "..", "/", "%", "%25", "%2F", "?#", " ", "a/../b"]).prop_map(str::to_owned)],
        n in any::<u64>(),
        flag in any::<bool>(),
    ) {
        let user = UserSignedUpParams::new(value.as_str());
        if let Some(dots) = dot_segment(&value) {
            let refused = |got: Result<_, ParamError>| matches!(got, Err(ParamError::DotSegment { value, .. }) if value == dots);
            let plain = format!("user/events/{value}");
            let escaped = format!("user/events/{}", value.replace('.', "%2E"));
            prop_assert!(refused(user.to_path().map(drop)));
            prop_assert!(refused(UserSignedUpParams::from_path(&plain).map(drop)));
            prop_assert!(refused(UserSignedUpParams::from_path(&escaped).map(drop)));
            return Ok(());
        }
        let path = user.to_path().unwrap();
        prop_assert_eq!(user.to_string(), path.clone());
        prop_assert_eq!(&UserSignedUpParams::from_path(&path).unwrap().user_id, &value);
        prop_assert_eq!(&path.parse::<UserSignedUpParams>().unwrap().user_id, &value);
        let uri: ws_channels::http::Uri = format!("/{path}").parse().unwrap();
        prop_assert_eq!(uri.path(), format!("/{path}"));
        prop_assert!(uri.query().is_none());

        let room = ChatCommandParams::new(value.as_str());
        prop_assert_eq!(&ChatCommandParams::from_path(&room.to_path().unwrap()).unwrap().room, &value);

        let typed = TypedParams::new(n, flag);
        let back = TypedParams::from_path(&typed.to_path().unwrap()).unwrap();
        prop_assert_eq!((back.n, back.flag), (n, flag));
    }

    /// Typed parameters: a value that does not parse is `Invalid`, naming the parameter, the
    /// decoded value and the expected type; one that parses is accepted; an empty one is
    /// `NoMatch`, as no path carries it.
    #[test]
    fn typed_values_parse_or_are_invalid(n in uri_segment(), flag in uri_segment()) {
        let path = format!("typed/{n}/{flag}");
        let got = TypedParams::from_path(&path);
        if n.is_empty() || flag.is_empty() {
            prop_assert!(matches!(got, Err(ParamError::NoMatch { .. })), "{path:?}: {got:?}");
            return Ok(());
        }
        // Each value in turn is decoded, then checked for `.`/`..`: the first that fails is
        // the error.
        let mut decoded = Vec::new();
        for (name, raw) in [("n", &n), ("flag", &flag)] {
            match decode(raw) {
                None => {
                    prop_assert!(matches!(&got, Err(ParamError::InvalidEncoding { name: at, .. }) if *at == name), "{path:?}: {got:?}");
                    return Ok(());
                }
                Some(value) if dot_segment(&value).is_some() => {
                    prop_assert!(matches!(&got, Err(ParamError::DotSegment { name: at, .. }) if *at == name), "{path:?}: {got:?}");
                    return Ok(());
                }
                Some(value) => decoded.push(value),
            }
        }
        let [n_value, flag_value] = <[String; 2]>::try_from(decoded).expect("two values");
        match (n_value.parse::<u64>(), flag_value.parse::<bool>()) {
            (Ok(n), Ok(flag)) => {
                let params = got.unwrap();
                prop_assert_eq!((params.n, params.flag), (n, flag));
            }
            (Err(_), _) => prop_assert!(
                matches!(&got, Err(ParamError::Invalid { name: "n", value, expected, .. }) if *value == n_value && expected.contains("u64")),
                "{path:?}: {got:?}"
            ),
            (Ok(_), Err(_)) => prop_assert!(
                matches!(&got, Err(ParamError::Invalid { name: "flag", value, expected, .. }) if *value == flag_value && expected.contains("bool")),
                "{path:?}: {got:?}"
            ),
        }
    }
}

/// Very long input is answered at once, with the same result from `match_path` and `from_path`.
#[test]
fn very_long_paths_are_answered_quickly() {
    let user = UserSignedUpParams::TEMPLATE;
    type Check = fn(&Result<Vec<String>, ParamError>) -> bool;
    let cases: Vec<(&str, String, Check)> = vec![
        (
            "a 1 MB value",
            format!("/user/events/{}", "a".repeat(1 << 20)),
            |r| matches!(r, Ok(values) if values[0].len() == 1 << 20),
        ),
        (
            "100 000 `%` signs",
            format!("/user/events/{}", "%".repeat(100_000)),
            |r| matches!(r, Err(ParamError::InvalidEncoding { name: "userId", .. })),
        ),
        (
            "100 000 `%25`",
            format!("/user/events/{}", "%25".repeat(100_000)),
            |r| matches!(r, Ok(values) if values[0].len() == 100_000),
        ),
        (
            "100 000 `%FF`",
            format!("/user/events/{}", "%FF".repeat(100_000)),
            |r| matches!(r, Err(ParamError::InvalidEncoding { name: "userId", .. })),
        ),
        (
            "100 000 escaped `/`",
            format!("/user/events/{}", "%2F".repeat(100_000)),
            |r| matches!(r, Ok(values) if values[0] == "/".repeat(100_000)),
        ),
        (
            "500 000 segments",
            "/user/events/x".to_owned() + &"/x".repeat(500_000),
            |r| matches!(r, Err(ParamError::NoMatch { .. })),
        ),
        ("1 MB of slashes", "/".repeat(1 << 20), |r| {
            matches!(r, Err(ParamError::NoMatch { .. }))
        }),
    ];
    for (what, path, expected) in cases {
        let started = Instant::now();
        let got = user.match_path(&path);
        let parsed = UserSignedUpParams::from_path(&path);
        assert!(started.elapsed() < QUICK, "{what}: took {:?}", started.elapsed());
        assert!(expected(&got), "{what}: {:?}", got.as_ref().map(Vec::len));
        assert_eq!(parsed.map(|p| p.user_id), got.map(|mut v| v.remove(0)), "{what}");
    }
}

/// A raw WebSocket upgrade request for `target`; the status of the response.
async fn upgrade_status(addr: std::net::SocketAddr, target: &str) -> u16 {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    // The status line is all we need; a 101 leaves the connection open.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && tcp.read(&mut byte).await.unwrap() == 1 {
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line for {target:?}: {line:?}"))
}

/// A served server routes as `from_path` parses, on both HTTP front ends: 101 when a channel's
/// template matches and its parameters parse, 400 when they do not (invalid UTF-8, a bad typed
/// value), 404 when no template has the path's shape.
#[test]
fn served_routing_agrees_with_from_path() {
    let runtime = runtime();
    for backend in [Backend::Standalone, Backend::Axum] {
        let served = runtime.block_on(async {
            let server = UserSignedUp::register(Server::new(), |h| h);
            let server = ChatCommand::register(server, |h| h);
            let server = echo::Echo::register(server, |h| h);
            let server = Typed::register(server, |h| h);
            Served::start_on(backend, contract::register_all(server)).await
        });
        let mut runner = TestRunner::new(cases(64));
        runner
            .run(&path_of(uri_segment().boxed()), |path| {
                let target = format!("/{}", path.strip_prefix('/').unwrap_or(&path));
                let expected = channel_paths()
                    .into_iter()
                    .find_map(|(_, from_path)| match from_path(&target) {
                        Err(ParamError::NoMatch { .. }) => None,
                        Ok(()) => Some(101),
                        Err(_) => Some(400),
                    })
                    .unwrap_or(404);
                let status = runtime.block_on(quickly("the handshake", upgrade_status(served.addr, &target)));
                prop_assert_eq!(status, expected, "{:?} on {:?}", target, backend);
                Ok(())
            })
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Frames.
// ---------------------------------------------------------------------------------------------

/// Where a padded frame's size falls, for a server whose `max_message_size` is `max`.
#[derive(Debug, Clone, Copy)]
enum Edge {
    /// Exactly `max`: read and decoded.
    AtMax,
    /// `max + 1`: read, refused as too large.
    OverMax,
    /// `2 × max`: the most the protocol layer reads.
    AtHard,
    /// `2 × max + 1`: refused by the protocol layer without reading it.
    OverHard,
}

/// A frame, before it is made for one channel (its samples) and one size limit.
#[derive(Debug, Clone)]
enum Frame {
    /// A JSON document built from the example types' own keys and tags.
    Json(Value),
    /// Any text.
    Text(String),
    /// Any bytes, as a binary frame.
    Binary(Vec<u8>),
    /// One of the channel's valid messages (index modulo their number).
    Sample(usize),
    /// A valid message cut short at a byte (index modulo its length), at a char boundary.
    Cut(usize, usize),
    /// A valid message with one extra field, or inside an array.
    Wrapped(usize, bool),
    /// Arrays nested this deep (serde_json refuses past 128).
    Deep(usize),
    /// A valid message padded with trailing whitespace (still valid JSON) to a size edge.
    Padded(usize, Edge),
}

impl Frame {
    fn message(&self, samples: &[String], max: usize) -> Message {
        let sample = |i: usize| samples[i % samples.len()].as_str();
        match self {
            Frame::Json(value) => Message::text(value.to_string()),
            Frame::Text(text) => Message::text(text.as_str()),
            Frame::Binary(bytes) => Message::binary(bytes.clone()),
            Frame::Sample(i) => Message::text(sample(*i)),
            Frame::Cut(i, at) => {
                let text = sample(*i);
                let mut at = at % text.len().max(1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                Message::text(&text[..at])
            }
            Frame::Wrapped(i, in_array) => match in_array {
                true => Message::text(format!("[{}]", sample(*i))),
                false => {
                    let mut value: Value = serde_json::from_str(sample(*i)).unwrap();
                    if let Some(object) = value.as_object_mut() {
                        object.insert("unexpected".into(), Value::from(1));
                    }
                    Message::text(value.to_string())
                }
            },
            Frame::Deep(depth) => Message::text("[".repeat(*depth) + &"]".repeat(*depth)),
            Frame::Padded(i, edge) => {
                let target = match edge {
                    Edge::AtMax => max,
                    Edge::OverMax => max + 1,
                    Edge::AtHard => 2 * max,
                    Edge::OverHard => 2 * max + 1,
                };
                let text = sample(*i);
                Message::text(format!("{text}{}", " ".repeat(target.saturating_sub(text.len()))))
            }
        }
    }
}

/// Keys and strings of the example messages, so generated documents often almost fit.
const WORDS: &[&str] = &[
    "type",
    "userId",
    "user_id",
    "email",
    "user",
    "text",
    "ts",
    "message",
    "items",
    "name",
    "total",
    "error",
    "code",
    "left",
    "right",
    "int_map",
    "ordered",
    "constructor",
    "letter",
    "pair",
    "maybe",
    "kind",
    "x",
    "a",
    "seq",
    "say",
    "typing",
    "joined",
    "message",
    "unit",
    "struct",
    "wrapped",
    "1",
    "-2",
    "😀",
    "",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,6}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(WORDS), inner), 0..5)
                .prop_map(|fields| Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

fn frame(sized: bool) -> impl Strategy<Value = Frame> {
    let edge = prop_oneof![
        Just(Edge::AtMax),
        Just(Edge::OverMax),
        Just(Edge::AtHard),
        Just(Edge::OverHard)
    ];
    let padded = (any::<usize>(), edge).prop_map(|(i, edge)| Frame::Padded(i, edge));
    prop_oneof![
        4 => json().prop_map(Frame::Json),
        2 => ".{0,40}".prop_map(Frame::Text),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Frame::Binary),
        3 => any::<usize>().prop_map(Frame::Sample),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(i, at)| Frame::Cut(i, at)),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, array)| Frame::Wrapped(i, array)),
        1 => prop_oneof![100..160usize, Just(30_000usize)].prop_map(Frame::Deep),
        // A frame over the limit costs a connection: a few of them, on the server side only.
        (if sized { 1 } else { 0 }) => padded,
    ]
}

fn json_of<T: Serialize>(message: &T) -> Value {
    serde_json::to_value(message).unwrap()
}

/// The kind of a subscription item, for messages.
fn describe<T: Serialize>(item: &Option<Result<T, Error>>) -> String {
    match item {
        Some(Ok(message)) => format!("the message {}", json_of(message)),
        Some(Err(error)) => format!("the error {error:?}"),
        None => "the end of the stream".to_owned(),
    }
}

/// A client's subscription yields one item per data frame, in order: `Ok` exactly when the
/// frame is the channel's server message, else `Decode` (text) or `UnexpectedBinary`.
fn subscription_case<C: Channel>(samples: &[String], frames: &[Frame]) -> Result<(), TestCaseError> {
    let messages: Vec<Message> = frames.iter().map(|f| f.message(samples, 64 * 1024)).collect();
    let input = messages.iter().cloned().map(Ok::<_, ws_channels::tungstenite::Error>);
    let items: Vec<Result<C::ServerMessage, Error>> = runtime().block_on(quickly(
        "the subscription",
        ws_channels::subscribe::<C, _>(futures_util::stream::iter(input)).collect(),
    ));
    prop_assert_eq!(items.len(), messages.len());
    for (message, item) in messages.iter().zip(&items) {
        match (message, item) {
            (Message::Text(text), Ok(_)) => prop_assert!(serde_json::from_str::<C::ServerMessage>(text).is_ok()),
            (Message::Text(text), Err(Error::Decode { channel, source })) => {
                prop_assert_eq!(*channel, C::NAME);
                prop_assert_eq!(
                    source.to_string(),
                    serde_json::from_str::<C::ServerMessage>(text)
                        .err()
                        .unwrap()
                        .to_string()
                );
            }
            (Message::Binary(_), Err(Error::UnexpectedBinary { channel })) => prop_assert_eq!(*channel, C::NAME),
            (message, Ok(item)) => prop_assert!(false, "{message:?} gave the message {}", json_of(item)),
            (message, Err(error)) => prop_assert!(false, "{message:?} gave the error {error:?}"),
        }
    }
    Ok(())
}

/// Valid server messages of every example channel, as JSON text.
fn server_samples() -> Vec<(&'static str, Vec<String>)> {
    let text = |v: Value| v.to_string();
    vec![
        (
            "userEvents",
            vec![text(serde_json::json!({"userId": "u", "email": "e@x"}))],
        ),
        (
            "echo",
            vec![text(serde_json::json!({"hello": "world"})), "[1,null]".into()],
        ),
        (
            "bench echo",
            vec![text(serde_json::json!({"user_id": "u", "seq": 1, "text": "t"}))],
        ),
        (
            "chat",
            vec![
                text(json_of(&ChatEvent::Joined { user: "ann".into() })),
                text(json_of(&ChatEvent::Message {
                    user: "ann".into(),
                    text: "hi".into(),
                    ts: 1,
                })),
                text(json_of(&ChatEvent::Error { message: "no".into() })),
            ],
        ),
        ("users", vec![r#"{"items":[{"name":"ann"}]}"#.into()]),
        ("orders", vec![r#"{"items":[{"total":5}]}"#.into()]),
        ("list", vec![r#"[{"name":"bob"}]"#.into()]),
        ("errors", vec![r#"{"error":{"code":3}}"#.into()]),
        ("a", vec![r#"{"left":"l"}"#.into()]),
        ("b", vec![r#"{"right":9}"#.into()]),
    ]
}

proptest! {
    #![proptest_config(cases(96))]

    /// Every example channel's server message, decoded by a subscription from arbitrary frames.
    #[test]
    fn subscriptions_of_every_example_channel_yield_a_typed_result_per_frame(
        frames in prop::collection::vec(frame(false), 0..12),
    ) {
        for (name, samples) in server_samples() {
            let run = match name {
                "userEvents" => subscription_case::<UserSignedUp>,
                "echo" => subscription_case::<echo::Echo>,
                "bench echo" => subscription_case::<bench::Echo>,
                "chat" => subscription_case::<ChatCommand>,
                "users" => subscription_case::<Odd>,
                "orders" => subscription_case::<OrderQuery>,
                "list" => subscription_case::<ListQuery>,
                "errors" => subscription_case::<contract::Errors>,
                "a" => subscription_case::<contract::a::Event>,
                "b" => subscription_case::<contract::b::Event>,
                other => unreachable!("{other}"),
            };
            run(&samples, &frames)?;
        }
    }
}

/// One example channel's server, as a client meets it.
struct Spec<C: Channel> {
    server: fn() -> Server,
    params: C::Params,
    /// The handshake's query string, if the channel's `on_connect` needs one.
    query: Option<&'static str>,
    /// The server's `max_message_size`.
    max: usize,
    /// Valid client messages (for a server-only channel: server messages, which a client may
    /// not send either).
    samples: Vec<String>,
    /// What the handler sends back to the sender of a valid message (`None`: nothing).
    reply: fn(&C::ClientMessage) -> Option<C::ServerMessage>,
    /// A server message for the hub to publish.
    push: fn() -> C::ServerMessage,
}

/// What a frame must lead to.
#[derive(Debug)]
enum Expect {
    Reply(Value),
    Nothing,
    Close(CloseCode),
}

/// A data frame's payload size.
fn size_of(frame: &Message) -> usize {
    match frame {
        Message::Text(text) => text.len(),
        Message::Binary(bytes) => bytes.len(),
        _ => 0,
    }
}

/// The documented outcome of one frame: the size limits (`max`, then 1009 from the protocol
/// layer past twice that), decoding, validation, then the channel's `on_invalid` (an error
/// reply) or a close: 1009 too large, 1008 invalid, 1007 undecodable, 1003 binary.
fn expect<C: Channel>(spec: &Spec<C>, frame: &Message) -> Expect {
    let size = size_of(frame);
    if size > 2 * spec.max {
        return Expect::Close(CloseCode::Size);
    }
    let error = if size > spec.max {
        Error::MessageTooLarge { size, max: spec.max }
    } else {
        match frame {
            Message::Text(text) => match serde_json::from_str::<C::ClientMessage>(text) {
                Ok(message) => match C::validate_client(&message) {
                    Ok(()) => return (spec.reply)(&message).map_or(Expect::Nothing, |r| Expect::Reply(json_of(&r))),
                    Err(source) => Error::Validation {
                        channel: C::NAME,
                        source,
                    },
                },
                Err(source) => Error::Decode {
                    channel: C::NAME,
                    source: ws_channels::CodecError::new(source),
                },
            },
            _ => Error::UnexpectedBinary { channel: C::NAME },
        }
    };
    match C::on_invalid(&error) {
        Some(reply) => Expect::Reply(json_of(&reply)),
        None => Expect::Close(match error {
            Error::Validation { .. } => CloseCode::Policy,
            Error::MessageTooLarge { .. } => CloseCode::Size,
            Error::UnexpectedBinary { .. } => CloseCode::Unsupported,
            _ => CloseCode::Invalid,
        }),
    }
}

/// Whether a reply is the expected one, but for the chat's server timestamp (`ts`) and the
/// last digits of floats: serde_json without its `float_roundtrip` feature may parse a float
/// one ULP off, so each decode/encode hop can move it.
fn same(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) if a.is_f64() || b.is_f64() => x == y || (x - y).abs() <= 1e-14 * x.abs().max(y.abs()),
            _ => a == b,
        },
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y)),
        (Value::Object(a), Value::Object(b)) => {
            let keys =
                |o: &serde_json::Map<String, Value>| o.keys().filter(|k| *k != "ts").cloned().collect::<Vec<_>>();
            keys(a) == keys(b) && keys(a).iter().all(|k| same(&a[k], &b[k]))
        }
        _ => got == want,
    }
}

impl<C: Channel> Spec<C> {
    async fn connect(&self, test: &TestServer) -> ws_channels::TestClient<C> {
        let request = test.request(&self.params);
        let request = match self.query {
            Some(query) => request.query(query),
            None => request,
        };
        quickly("the handshake", request.connect()).await.unwrap()
    }

    /// Sends `frames` on one connection, one at a time, checking each outcome; then checks
    /// that a second connection is served.
    async fn run(&self, frames: &[Frame]) -> Result<(), TestCaseError> {
        let test = TestServer::new((self.server)());
        let (tx, mut rx) = self.connect(&test).await;
        let mut sink = tx.into_inner();
        let mut open = true;
        for frame in frames {
            let message = frame.message(&self.samples, self.max);
            let expected = expect(self, &message);
            let over_hard = size_of(&message) > 2 * self.max;
            let what = format!("{frame:?} (expecting {expected:?})");
            // A send may fail when the server refused the frame before reading all of it: the
            // outcome below is what counts.
            let _ = quickly(&what, sink.send(message)).await;
            match expected {
                Expect::Nothing => {}
                Expect::Reply(want) => {
                    let item = quickly(&what, rx.next()).await;
                    match &item {
                        Some(Ok(reply)) => {
                            let got = json_of(reply);
                            prop_assert!(same(&got, &want), "{what}: got {got}");
                        }
                        _ => prop_assert!(false, "{what}: got {}", describe(&item)),
                    }
                }
                Expect::Close(code) => {
                    let mut item = quickly(&what, rx.next()).await;
                    if over_hard && matches!(item, Some(Err(Error::WebSocket(_)))) {
                        // Past 2 × max the server stops reading mid-frame and hangs up after its
                        // close frame, so the client's close reply cannot be written: the
                        // subscription yields that write error once, then ends. (It could as well
                        // end quietly: it already has the close frame.)
                        item = quickly(&what, rx.next()).await;
                    }
                    prop_assert!(item.is_none(), "{what}: got {}", describe(&item));
                    prop_assert_eq!(rx.close_code(), Some(code), "{}", what);
                    open = false;
                    break;
                }
            }
        }
        if open {
            // Nothing else was sent to us: a normal close ends the stream without another item.
            let close = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            quickly("the client's close", sink.send(Message::Close(Some(close))))
                .await
                .unwrap();
            let item = quickly("the close reply", rx.next()).await;
            prop_assert!(item.is_none(), "after {frames:?}: got {}", describe(&item));
            prop_assert_eq!(rx.close_code(), Some(CloseCode::Normal));
        }
        self.second_connection(&test).await
    }

    /// Another connection on the same server gets what the hub publishes and, on a channel
    /// clients send on, the reply to a valid message.
    async fn second_connection(&self, test: &TestServer) -> Result<(), TestCaseError> {
        let (tx, mut rx) = self.connect(test).await;
        let push = (self.push)();
        // The connection joins its topic as its task starts, just after the handshake.
        quickly("the connection to join its topic", async {
            while test.hub().publish::<C>(&self.params, &push).await.unwrap().local == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        let item = quickly("the published message", rx.next()).await;
        match &item {
            Some(Ok(message)) => prop_assert_eq!(json_of(message), json_of(&push)),
            _ => prop_assert!(false, "second connection: got {}", describe(&item)),
        }
        let sample = Message::text(self.samples[0].as_str());
        if let Expect::Reply(want) = expect(self, &sample) {
            let mut sink = tx.into_inner();
            quickly("a valid message", sink.send(sample)).await.unwrap();
            let item = quickly("its reply", rx.next()).await;
            match &item {
                Some(Ok(reply)) => prop_assert!(
                    same(&json_of(reply), &want),
                    "second connection: got {}",
                    json_of(reply)
                ),
                _ => prop_assert!(false, "second connection: got {}", describe(&item)),
            }
        }
        Ok(())
    }
}

const DEFAULT_MAX: usize = 64 * 1024;

/// Runs `frames` against every example channel's server.
fn every_example_server(frames: &[Frame]) -> Result<(), TestCaseError> {
    let runtime = runtime();
    runtime.block_on(
        Spec::<UserSignedUp> {
            server: user_events::server,
            params: UserSignedUpParams::new("user123"),
            query: None,
            max: DEFAULT_MAX,
            samples: vec![r#"{"userId":"user123","email":"user@example.com"}"#.into()],
            reply: |m| {
                Some(UserSignedUp {
                    user_id: m.user_id.clone(),
                    email: "updated@example.com".into(),
                })
            },
            push: || UserSignedUp {
                user_id: "p".into(),
                email: "p@x".into(),
            },
        }
        .run(frames),
    )?;
    runtime.block_on(
        Spec::<echo::Echo> {
            server: echo::server,
            params: echo::EchoParams::new(),
            query: None,
            max: DEFAULT_MAX,
            samples: vec![r#"{"hello":"world"}"#.into(), "[1,2.5,null]".into(), "\"s\"".into()],
            reply: |m| Some(echo::Echo(m.0.clone())),
            push: || echo::Echo(Value::from("pushed")),
        }
        .run(frames),
    )?;
    runtime.block_on(
        Spec::<bench::Echo> {
            server: bench::server,
            params: bench::EchoParams::new(),
            query: None,
            max: DEFAULT_MAX,
            samples: vec![r#"{"user_id":"u","seq":1,"text":"hello"}"#.into()],
            reply: |m| {
                Some(bench::Echo {
                    user_id: m.user_id.clone(),
                    seq: m.seq,
                    text: m.text.clone(),
                })
            },
            push: || bench::Echo {
                user_id: "p".into(),
                seq: 0,
                text: String::new(),
            },
        }
        .run(frames),
    )?;
    runtime.block_on(
        Spec::<ChatCommand> {
            server: chat::server,
            params: ChatCommandParams::new("lobby"),
            query: Some("name=ann"),
            max: chat::MAX_MESSAGE,
            samples: vec![r#"{"type":"say","text":"hello"}"#.into(), r#"{"type":"typing"}"#.into()],
            // `say` is broadcast to the room, the speaker included; `typing` to the others.
            reply: |m| match m {
                ChatCommand::Say { text } => Some(ChatEvent::Message {
                    user: "ann".into(),
                    text: text.clone(),
                    ts: 0,
                }),
                ChatCommand::Typing => None,
            },
            push: || ChatEvent::Left { user: "bob".into() },
        }
        .run(frames),
    )?;
    runtime.block_on(
        Spec::<Odd> {
            server: contract::users_server,
            params: OddParams::new("7"),
            query: None,
            max: DEFAULT_MAX,
            samples: vec![contract::ODD.into()],
            reply: |_| Some(contract::Page { items: Vec::new() }),
            push: || contract::Page {
                items: vec![contract::User { name: "ann".into() }],
            },
        }
        .run(frames),
    )?;
    runtime.block_on(
        Spec::<OrderQuery> {
            server: contract::orders_server,
            params: OrderQueryParams::new(),
            query: None,
            max: DEFAULT_MAX,
            samples: contract::ORDER_QUERIES.iter().map(|s| (*s).to_owned()).collect(),
            reply: |_| Some(contract::Page { items: Vec::new() }),
            push: || contract::Page {
                items: vec![contract::Order { total: 5 }],
            },
        }
        .run(frames),
    )?;
    runtime.block_on(
        Spec::<ListQuery> {
            server: contract::list_server,
            params: ListQueryParams::new(),
            query: None,
            max: DEFAULT_MAX,
            samples: vec![contract::LIST_QUERY.into()],
            reply: |_| Some(Vec::new()),
            push: || vec![contract::User { name: "bob".into() }],
        }
        .run(frames),
    )?;
    runtime.block_on(
        Spec::<contract::Errors> {
            server: contract::errors_server,
            params: contract::ErrorsParams::new(),
            query: None,
            max: DEFAULT_MAX,
            samples: vec![r#"{"error":{"code":3}}"#.into()],
            reply: |m| match *m {},
            push: || contract::Errors {
                error: contract::Error { code: 3 },
            },
        }
        .run(frames),
    )?;
    runtime.block_on(
        Spec::<contract::a::Event> {
            server: contract::a_server,
            params: contract::a::EventParams::new(),
            query: None,
            max: DEFAULT_MAX,
            samples: vec![r#"{"left":"l"}"#.into()],
            reply: |m| match *m {},
            push: || contract::a::Event { left: "l".into() },
        }
        .run(frames),
    )?;
    runtime.block_on(
        Spec::<contract::b::Event> {
            server: contract::b_server,
            params: contract::b::EventParams::new(),
            query: None,
            max: DEFAULT_MAX,
            samples: vec![r#"{"right":9}"#.into()],
            reply: |m| match *m {},
            push: || contract::b::Event { right: 9 },
        }
        .run(frames),
    )
}

proptest! {
    #![proptest_config(cases(64))]

    /// Arbitrary frames to every example channel's server: each gets its documented outcome,
    /// never 1011, and the server goes on serving.
    #[test]
    fn every_example_server_answers_arbitrary_frames_as_documented(
        frames in prop::collection::vec(frame(true), 1..10),
    ) {
        every_example_server(&frames)?;
    }
}

/// The edges, on every example channel, every time: exactly `max` is read, `max + 1` is
/// refused as too large (an error reply or 1009), so is `2 × max`, and `2 × max + 1` closes
/// with 1009 from the protocol layer; JSON nested 30 000 deep and 60 000 `%` signs are
/// refused as undecodable (or as too large, on the chat's 4 KiB limit).
#[test]
fn the_edges_get_their_documented_outcome_on_every_example_server() {
    for frames in [
        vec![
            Frame::Padded(0, Edge::AtMax),
            Frame::Padded(0, Edge::OverMax),
            Frame::Sample(0),
        ],
        vec![Frame::Padded(0, Edge::AtHard), Frame::Sample(0)],
        vec![Frame::Padded(0, Edge::OverHard)],
        vec![Frame::Deep(30_000), Frame::Sample(0)],
        vec![Frame::Text("%".repeat(60_000)), Frame::Sample(0)],
        vec![Frame::Binary(vec![0xFF; 1000]), Frame::Sample(0)],
    ] {
        if let Err(error) = every_example_server(&frames) {
            panic!("{frames:?}: {error}");
        }
    }
}

/// Two `String` parameters, the second after the first: what showed the router's empty-value
/// bug below (no example channel has a parameter before the last segment).
#[channel("pair/<a>/<b>")]
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pair {
    note: String,
}

/// Regression: the router (matchit) matched an empty parameter before the last segment
/// (`/pair//x` → 101 with `a == ""`, on both front ends), though `from_path` refuses that path
/// (`NoMatch`) and an empty last segment (`/pair/x/`) gets 404.
#[test]
fn an_empty_parameter_before_the_last_segment_is_not_routed() {
    assert!(matches!(
        PairParams::from_path("/pair//x"),
        Err(ParamError::NoMatch { .. })
    ));
    let runtime = runtime();
    for backend in [Backend::Standalone, Backend::Axum] {
        let status = runtime.block_on(async {
            let served = Served::start_on(backend, Pair::register(Server::new(), |h| h)).await;
            quickly("the handshake", upgrade_status(served.addr, "/pair//x")).await
        });
        assert_eq!(status, 404, "{backend:?}");
    }
}
