//! The shapes of serde types the contract export must get right, gathered from reviews: the
//! regression test `typescript_handles_every_serde_shape` generates a TypeScript module from
//! them, compiles it strict and validates real `serde_json` output with it.

use std::collections::{BTreeMap, HashMap};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ws_channels::{AsyncApi, channel};

/// A generic page: two instantiations must stay two message types.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Page<T> {
    items: Vec<T>,
}

/// A user.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct User {
    name: String,
}

/// An order.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Order {
    total: u32,
}

/// Wrapped by a newtype variant.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Inner {
    a: u8,
}

/// Internally tagged, with a newtype variant (an `allOf` beside the tag).
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Internal {
    /// No data.
    Unit,
    /// Fields.
    Struct {
        /// A number.
        x: u32,
    },
    /// A newtype.
    Wrapped(Inner),
}

/// Externally tagged (serde's default), with each kind of variant.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub enum External {
    /// Fields.
    Circle {
        /// The radius.
        r: f64,
    },
    /// A newtype.
    Square(f64),
    /// No data.
    Empty,
}

/// Adjacently tagged.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "t", content = "c")]
pub enum Adjacent {
    /// With content.
    Go(u32),
    /// Without.
    Stop,
}

/// A name that shadows a global.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Error {
    code: u32,
}

/// Every awkward field at once.
#[channel("users/<id>", server = Page<User>)]
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Odd {
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

/// Orders: the other instantiation of `Page`.
#[channel("orders", server = Page<Order>, name = "delete")]
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct OrderQuery {
    kind: Internal,
    shape: External,
    step: Adjacent,
}

/// A payload schemars inlines.
#[channel("list", server = Vec<User>, name = "validate")]
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ListQuery {
    #[serde(flatten)]
    only: Internal,
}

/// Errors pushed by the server.
#[channel("star*/errors", server_only, name = "Error")]
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Errors {
    error: Error,
}

/// Same schema name in two modules.
pub mod a {
    /// An event of module a.
    #[ws_channels::channel("a/events", server_only, name = "aEvents")]
    #[derive(Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    pub struct Event {
        /// Only in a.
        pub left: String,
    }
}

/// Same schema name in two modules.
pub mod b {
    /// An event of module b.
    #[ws_channels::channel("b/events", server_only, name = "bEvents")]
    #[derive(Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    pub struct Event {
        /// Only in b.
        pub right: u64,
    }
}

fn document() -> AsyncApi {
    AsyncApi::new("Contract types", "1.0.0")
        // With sessions: every JSON channel gets its wrapper over the centrifuge SDK too.
        .server("local", "localhost:8080", "ws")
        .sessions("localhost:8080", "ws")
        .channel::<Odd>()
        .channel::<OrderQuery>()
        .channel::<ListQuery>()
        .channel::<Errors>()
        .channel::<a::Event>()
        .channel::<b::Event>()
}

/// Real serde_json output for each message, by schema name, each valid.
fn samples() -> serde_json::Value {
    let odd = Odd {
        int_map: HashMap::from([(1, "one".into())]),
        ordered: BTreeMap::from([(-2, true)]),
        ctor: "c".into(),
        letter: '😀',
        pair: [1, 2],
        maybe: None,
        extra: HashMap::from([("weight".into(), 1.5)]),
    };
    serde_json::json!({
        "Odd": [odd],
        "Page": [Page { items: vec![User { name: "ann".into() }] }],
        "Page2": [Page { items: vec![Order { total: 5 }] }],
        "OrderQuery": [
            OrderQuery { kind: Internal::Unit, shape: External::Empty, step: Adjacent::Stop },
            OrderQuery { kind: Internal::Struct { x: 1 }, shape: External::Circle { r: 1.5 }, step: Adjacent::Go(3) },
            OrderQuery { kind: Internal::Wrapped(Inner { a: 7 }), shape: External::Square(2.0), step: Adjacent::Stop },
        ],
        "ListQuery": [ListQuery { only: Internal::Wrapped(Inner { a: 1 }) }],
        "Array_of_User": [vec![User { name: "bob".into() }]],
        "Errors": [Errors { error: Error { code: 3 } }],
        "Event": [a::Event { left: "l".into() }],
        "Event2": [b::Event { right: 9 }],
    })
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("--samples") => println!("{}", samples()),
        Some("--asyncapi") => println!("{}", document().to_json_string()),
        _ => print!("{}", document().to_typescript()),
    }
}
