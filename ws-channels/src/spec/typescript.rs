//! A TypeScript client generated from an AsyncAPI document built by [`AsyncApi`]: the message
//! types, a params type per channel, and per channel `url`, typed `publish` / `subscribe` over
//! the standard `WebSocket` interface and a reconnecting `connect`, validating what it receives
//! against the same schemas.
//!
//! The code that is the same for every contract lives once in `runtime.ts` ([`RUNTIME`]),
//! which users save as `ws-channels.ts`; each generated module imports the names it uses from it
//! and exports only its contract's own, so that two contracts can share one index.
//!
//! Each operation's codec is read back from its messages' `contentType`: MessagePack
//! (`application/msgpack`) encodes and decodes with `@msgpack/msgpack`, imported only by modules
//! that have such a channel; raw frames (`text/plain` and `application/octet-stream`) travel as
//! `string | Uint8Array`, unvalidated; anything else is JSON text.
//!
//! A document with a sessions server (one marked `x-ws-channels-session`) also gives each JSON
//! channel on it a `subscribe<Channel>` over the `centrifuge` SDK, whose types the module then
//! imports (types only: the SDK is a peer dependency, and its reconnects are its own); the
//! runtime's `subscribeSession` and `publishable` do the work.
//!
//! [`AsyncApi`]: super::AsyncApi

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{pointer, unpointer};

/// The hand-written runtime every generated module imports, emitted once as [`RUNTIME_FILE`]:
/// the WebSocket interfaces it needs, URLs, codecs, a validator for the JSON Schema subset the
/// documents use, and the reconnecting `Connection`.
pub(crate) const RUNTIME: &str = include_str!("runtime.ts");

/// The module specifier generated modules import the runtime by: a file next to them.
const RUNTIME_IMPORT: &str = "./ws-channels.js";

/// The MessagePack codec, only in modules with a MessagePack channel: the others need no
/// package at all.
const MSGPACK_RUNTIME: &str = include_str!("msgpack.ts");

/// What [`MSGPACK_RUNTIME`] imports, aliased so that no channel or type can shadow it.
const MSGPACK_IMPORT: &str = "import { decode as msgpackDecode, encode as msgpackEncode } from \"@msgpack/msgpack\";\n";

/// What modules with session wrappers import from the `centrifuge` SDK (a peer dependency):
/// types only, erased when compiled, so nothing of the SDK is bundled or reimplemented. Only
/// modules of documents with a sessions server import it.
const CENTRIFUGE_IMPORT: &str = "import type { Centrifuge, PublicationContext, SubscribedContext, Subscription, SubscriptionOptions } from \"centrifuge\";\n";

/// The names [`CENTRIFUGE_IMPORT`] declares, which no generated declaration may take.
const CENTRIFUGE_NAMES: &[&str] = &[
    "Centrifuge",
    "PublicationContext",
    "SubscribedContext",
    "Subscription",
    "SubscriptionOptions",
];

/// The extension that marks a server as the sessions endpoint (see `AsyncApi::sessions`).
pub(crate) const SESSION_EXTENSION: &str = "x-ws-channels-session";

/// The content types of MessagePack messages; `application/x-msgpack` is the older name.
const MSGPACK_TYPES: &[&str] = &[
    "application/msgpack",
    "application/x-msgpack",
    "application/vnd.msgpack",
];

/// The content types of a raw channel's messages: frames sent and received as they are.
const RAW_TYPES: &[&str] = &["text/plain", "application/octet-stream"];

/// Names a generated declaration must not take, beside the runtime's exports: the module's
/// private declarations, TypeScript's and JavaScript's globals the module uses, and reserved
/// words.
const RESERVED: &[&str] = &[
    // The module's own declarations (the runtime's exports are taken too: `runtime_exports`).
    "SCHEMAS",
    "MSGPACK_CODEC",
    "msgpackEncode",
    "msgpackDecode",
    // Globals the runtime and typical clients use.
    "Error",
    "SyntaxError",
    "Record",
    "Array",
    "ArrayBuffer",
    "Promise",
    "Object",
    "String",
    "Number",
    "Boolean",
    "Symbol",
    "Map",
    "Set",
    "Date",
    "JSON",
    "Math",
    "RegExp",
    "Function",
    "BigInt",
    "TextDecoder",
    "Blob",
    "WebSocket",
    "Partial",
    "Required",
    "Readonly",
    "Pick",
    "Omit",
    "Exclude",
    "Extract",
    "NonNullable",
    "ReturnType",
    "Uint8Array",
    "undefined",
    "NaN",
    "Infinity",
    // Reserved words.
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "let",
    "static",
    "yield",
    "await",
    "implements",
    "interface",
    "package",
    "private",
    "protected",
    "public",
    "any",
    "unknown",
    "never",
    "string",
    "number",
    "boolean",
    "object",
    "type",
    "declare",
    "namespace",
    "module",
];

/// Renders the module for `document` (an [`AsyncApi`](super::AsyncApi) document). It imports
/// what it uses of [`RUNTIME`] from `./ws-channels.js`, and exports only the contract's own
/// names, so that modules of several contracts can be re-exported from one index.
pub(crate) fn render(document: &Value) -> String {
    let empty = Map::new();
    let schemas = document["components"]["schemas"].as_object().unwrap_or(&empty);
    let channels = document["channels"].as_object().unwrap_or(&empty);

    // How each channel's messages travel, and whether it has a session wrapper.
    let wires: BTreeMap<String, Wires> = channels
        .keys()
        .map(|id| {
            let wires = Wires {
                publishes: operation(document, id, "receive"),
                subscribes: operation(document, id, "send"),
            };
            (id.clone(), wires)
        })
        .collect();
    let sessions: BTreeSet<String> = channels
        .iter()
        .filter(|(id, channel)| on_sessions(document, channel) && wires[*id].travel_in_sessions())
        .map(|(id, _)| id.clone())
        .collect();

    // Every declaration's name, decided once: unique, and never one of RESERVED or the runtime's.
    let mut taken: BTreeSet<String> = RESERVED
        .iter()
        .copied()
        .chain(runtime_names())
        .chain(
            if sessions.is_empty() { &[][..] } else { CENTRIFUGE_NAMES }
                .iter()
                .copied(),
        )
        .map(str::to_owned)
        .collect();
    let types: BTreeMap<String, String> = schemas
        .keys()
        .map(|key| (key.clone(), unique(identifier(key, true), "Message", &mut taken)))
        .collect();
    let consts: BTreeMap<String, String> = channels
        .keys()
        .map(|id| (id.clone(), unique(identifier(id, false), "Channel", &mut taken)))
        .collect();
    let params: BTreeMap<String, String> = channels
        .keys()
        .map(|id| {
            (
                id.clone(),
                unique(format!("{}Parameters", identifier(id, true)), "", &mut taken),
            )
        })
        .collect();
    let subscribers: BTreeMap<String, String> = sessions
        .iter()
        .map(|id| {
            (
                id.clone(),
                unique(format!("subscribe{}", identifier(id, true)), "Session", &mut taken),
            )
        })
        .collect();
    let render = Render { types: &types };

    // The body first: it decides what the module imports.
    let mut imports = Imports::default();
    let mut body = String::new();
    let schemas_json = serde_json::to_string_pretty(schemas).unwrap_or_else(|_| "{}".into());
    imports.ty("Schemas");
    let _ = writeln!(
        body,
        "\n/** The contract's JSON Schemas by name, which `$ref`s point at. */\nconst SCHEMAS: Schemas = {schemas_json};\n"
    );
    for (key, schema) in schemas {
        doc_comment(&mut body, schema, "");
        let _ = writeln!(body, "export type {} = {};\n", types[key], render.ty(schema, ""));
    }
    for (id, channel) in channels {
        let names = ChannelNames {
            constant: &consts[id],
            params: &params[id],
            subscriber: subscribers.get(id).map(String::as_str),
        };
        render_channel(&mut body, &mut imports, &render, channel, &wires[id], names);
    }

    let mut out = String::new();
    let title = document["info"]["title"]
        .as_str()
        .unwrap_or("channels")
        .replace(['\n', '\r'], " ");
    let _ = writeln!(
        out,
        "// The typed client of \"{title}\", generated by ws-channels from its Rust channel types.\n// Do not edit: regenerate it. It needs the runtime next to it, `ws-channels.ts`.\n"
    );
    // The MessagePack codec, and its import, only where a channel uses it.
    if imports.msgpack {
        out.push_str(MSGPACK_IMPORT);
    }
    if !sessions.is_empty() {
        out.push_str(CENTRIFUGE_IMPORT);
    }
    let _ = writeln!(
        out,
        "import {{ {} }} from {};",
        imports.list(),
        Value::from(RUNTIME_IMPORT)
    );
    if imports.msgpack {
        out.push_str(MSGPACK_RUNTIME);
    }
    out.push_str(&body);
    out
}

/// The names the runtime exports (`export function validate…`), read from its text so that
/// the two never disagree.
pub(crate) fn runtime_names() -> impl Iterator<Item = &'static str> {
    RUNTIME.lines().filter_map(|line| {
        let rest = line.strip_prefix("export ")?;
        let rest = ["const ", "function ", "class ", "type ", "interface "]
            .iter()
            .find_map(|keyword| rest.strip_prefix(keyword))?;
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(rest.len());
        Some(&rest[..end])
    })
}

/// What a module takes from the runtime, collected while its body is rendered.
#[derive(Default)]
struct Imports {
    /// Runtime names used as values.
    values: BTreeSet<&'static str>,
    /// Runtime names used only as types (`import { type … }`).
    types: BTreeSet<&'static str>,
    /// Whether a channel uses MessagePack.
    msgpack: bool,
}

impl Imports {
    fn value(&mut self, name: &'static str) -> &'static str {
        self.values.insert(name);
        name
    }

    fn ty(&mut self, name: &'static str) -> &'static str {
        self.types.insert(name);
        name
    }

    /// `a, b, type C`: values and types together in alphabetical order.
    fn list(&self) -> String {
        let mut all: Vec<(&str, bool)> = self
            .values
            .iter()
            .map(|name| (*name, false))
            .chain(
                self.types
                    .iter()
                    .filter(|name| !self.values.contains(*name))
                    .map(|name| (*name, true)),
            )
            .collect();
        all.sort_unstable();
        all.iter()
            .map(|(name, is_type)| {
                if *is_type {
                    format!("type {name}")
                } else {
                    (*name).to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The runtime expression of one direction's `MessageCodec<ty>`.
    fn codec(&mut self, wire: &Wire, ty: &str) -> String {
        match wire {
            Wire::Typed { schema, msgpack } => {
                let frames = if *msgpack {
                    self.msgpack = true;
                    self.value("frameBytes");
                    self.ty("FrameCodec");
                    "MSGPACK_CODEC"
                } else {
                    self.value("JSON_CODEC")
                };
                let typed = self.value("typed");
                format!("{typed}<{ty}>(SCHEMAS, {}, {frames})", Value::String(schema.clone()))
            }
            Wire::Raw => self.value("RAW").to_owned(),
        }
    }
}

/// `name`, or `name` + `suffix` (+ a number) when taken; then marks it taken.
fn unique(name: String, suffix: &str, taken: &mut BTreeSet<String>) -> String {
    let chosen = std::iter::once(name.clone())
        .chain((1..).map(|n| {
            if n == 1 {
                format!("{name}{suffix}")
            } else {
                format!("{name}{suffix}{n}")
            }
        }))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or(name);
    taken.insert(chosen.clone());
    chosen
}

/// How one operation's messages travel, read back from the document.
#[derive(Debug, Clone)]
enum Wire {
    /// Values of one schema, as JSON text or MessagePack.
    Typed {
        /// The payload's key in `components/schemas`.
        schema: String,
        msgpack: bool,
    },
    /// Raw text and binary frames, as they are.
    Raw,
}

/// The operation of channel `id` with `action` (the server's: it `receive`s what clients
/// publish and `send`s what they subscribe to), as a [`Wire`]; `None` without one.
fn operation(document: &Value, id: &str, action: &str) -> Option<Wire> {
    let this_channel = format!("#/channels/{}", pointer(id));
    let operation = document["operations"]
        .as_object()?
        .values()
        .find(|op| op["channel"]["$ref"].as_str() == Some(this_channel.as_str()) && op["action"] == action)?;
    // Each `#/channels/<id>/messages/<key>` → its `#/components/messages/<key>`.
    let messages: Vec<&Value> = operation["messages"]
        .as_array()?
        .iter()
        .filter_map(|reference| resolve(document, reference))
        .collect();
    let content_type = |message: &Value| {
        message["contentType"]
            .as_str()
            .or_else(|| document["defaultContentType"].as_str())
            .unwrap_or("application/json")
            .to_ascii_lowercase()
    };
    let raw = !messages.is_empty()
        && messages
            .iter()
            .all(|message| RAW_TYPES.contains(&content_type(message).as_str()));
    if raw {
        return Some(Wire::Raw);
    }
    let message = messages.first()?;
    let schema = message["payload"]["$ref"]
        .as_str()
        .map(|reference| unpointer(reference.rsplit('/').next().unwrap_or_default()))
        .unwrap_or_default();
    Some(Wire::Typed {
        schema,
        msgpack: MSGPACK_TYPES.contains(&content_type(message).as_str()),
    })
}

/// Follows local `$ref`s (`#/…`) to what they point at.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> Option<&'a Value> {
    let mut value = value;
    // A bound, not a cycle detector: documents from `AsyncApi` have chains of two.
    for _ in 0..8 {
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let path: String = reference
                    .strip_prefix('#')?
                    .split('/')
                    .map(|segment| {
                        percent_encoding::percent_decode_str(segment)
                            .decode_utf8_lossy()
                            .into_owned()
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                value = document.pointer(&path)?;
            }
            None => return Some(value),
        }
    }
    None
}

/// The declarations a channel's code is named by.
struct ChannelNames<'a> {
    /// The channel's `const`.
    constant: &'a str,
    /// Its parameters' interface.
    params: &'a str,
    /// Its session wrapper (`subscribeChat`), if it has one.
    subscriber: Option<&'a str>,
}

/// How a channel's messages travel each way, from the client's point of view.
struct Wires {
    /// What clients send (the server's `receive` operation).
    publishes: Option<Wire>,
    /// What clients receive (the server's `send` operation).
    subscribes: Option<Wire>,
}

impl Wires {
    /// Whether the channel's messages can travel over a session: JSON values both ways (what
    /// clients publish, if anything, and what they receive). MessagePack and raw frames cannot.
    fn travel_in_sessions(&self) -> bool {
        let json = |wire: &Wire| matches!(wire, Wire::Typed { msgpack: false, .. });
        self.subscribes.as_ref().is_some_and(json) && self.publishes.as_ref().is_none_or(json)
    }
}

/// Whether `channel` is served by a sessions server of `document` (one marked with
/// [`SESSION_EXTENSION`]): it lists one, or lists no servers (then it is on all of them).
fn on_sessions(document: &Value, channel: &Value) -> bool {
    let Some(servers) = document["servers"].as_object() else {
        return false;
    };
    let session_refs: Vec<String> = servers
        .iter()
        .filter(|(_, server)| server.get(SESSION_EXTENSION).is_some())
        .map(|(name, _)| format!("#/servers/{}", pointer(name)))
        .collect();
    match channel["servers"].as_array() {
        Some(listed) if !listed.is_empty() => listed.iter().any(|server| {
            server["$ref"]
                .as_str()
                .is_some_and(|r| session_refs.iter().any(|s| s == r))
        }),
        _ => !session_refs.is_empty(),
    }
}

fn render_channel(
    out: &mut String,
    imports: &mut Imports,
    render: &Render<'_>,
    channel: &Value,
    wires: &Wires,
    names_of: ChannelNames<'_>,
) {
    let ChannelNames {
        constant: const_name,
        params: params_type,
        subscriber,
    } = names_of;
    let address = channel["address"].as_str().unwrap_or_default();
    let shown = comment_safe(address);
    let names: Vec<&str> = channel["parameters"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();

    let _ = writeln!(out, "/** The path parameters of `{shown}`. */");
    let _ = writeln!(out, "export interface {params_type} {{");
    for name in &names {
        if let Some(description) = channel["parameters"][name]["description"].as_str() {
            let _ = writeln!(out, "  /** {} */", comment_safe(description));
        }
        let _ = writeln!(out, "  {}: string | number;", property_key(name));
    }
    let _ = writeln!(out, "}}\n");

    // Each direction's TypeScript type and runtime codec.
    let direction = |wire: &Option<Wire>, imports: &mut Imports| {
        wire.as_ref().map(|wire| {
            let ty = match wire {
                Wire::Typed { schema, .. } => render.type_name(schema),
                Wire::Raw => "string | Uint8Array".to_owned(),
            };
            let codec = imports.codec(wire, &ty);
            (ty, codec)
        })
    };
    let publishes = direction(&wires.publishes, imports);
    let subscribes = direction(&wires.subscribes, imports);

    let description = channel["description"]
        .as_str()
        .map(|d| format!(" {}", comment_safe(d)))
        .unwrap_or_default();
    let address_literal = Value::String(address.to_owned());
    let params_record = "Readonly<Record<string, string | number>>";
    let _ = writeln!(out, "/** The `{shown}` channel.{description} */");
    let _ = writeln!(out, "export const {const_name} = {{");
    let _ = writeln!(out, "  address: {address_literal},");
    let _ = writeln!(
        out,
        "  /** The JSON Schemas of the contract this channel belongs to, for `validate`. */"
    );
    let _ = writeln!(out, "  schemas: SCHEMAS,");
    let _ = writeln!(
        out,
        "  /**\n   * The WebSocket URL of one address, with `query` pairs after it:\n   * `url(\"ws://localhost:8080\", {{ … }}, {{ token }})`. Throws a `ParameterError` for a value\n   * no URL can carry (empty, `.`, `..`).\n   */"
    );
    let _ = writeln!(
        out,
        "  url(base: string, parameters: {params_type}, query?: {}): string {{",
        imports.ty("Query")
    );
    let _ = writeln!(
        out,
        "    return {}(base, {address_literal}, parameters as unknown as {params_record}, query);",
        imports.value("channelUrl")
    );
    let _ = writeln!(out, "  }},");
    if let Some((ty, codec)) = &publishes {
        let _ = writeln!(
            out,
            "  /** Sends a message on an open socket; rejects if the socket is not open or the message is invalid. */"
        );
        let _ = writeln!(
            out,
            "  publish(ws: {}, message: {ty}): Promise<void> {{",
            imports.ty("WebSocketLike")
        );
        let _ = writeln!(
            out,
            "    return {}(ws, {codec}, message);",
            imports.value("publishMessage")
        );
        let _ = writeln!(out, "  }},");
    }
    if let Some((ty, codec)) = &subscribes {
        let _ = writeln!(
            out,
            "  /**\n   * Calls `onData` with each message the server sends (`{{ ok: true, msg }}`), or with the error\n   * that made a frame unusable (`{{ ok: false, err }}`); never throws. Returns a function that\n   * unsubscribes.\n   */"
        );
        let _ = writeln!(
            out,
            "  subscribe(ws: {}, onData: (received: {}<{ty}>) => void): () => void {{",
            imports.ty("WebSocketLike"),
            imports.ty("Received")
        );
        let _ = writeln!(
            out,
            "    return {}(ws, {codec}, onData);",
            imports.value("subscribeMessages")
        );
        let _ = writeln!(out, "  }},");
        let (out_ty, out_codec) = publishes
            .as_ref()
            .map_or(("never", "null"), |(ty, codec)| (ty.as_str(), codec.as_str()));
        let _ = writeln!(
            out,
            "  /**\n   * A connection to one address that reconnects by itself (see `Connection`): `send`\n   * queues while it is down, subscribers get every message and a marker at each reconnect.\n   */"
        );
        let _ = writeln!(
            out,
            "  connect(base: string, parameters: {params_type}, options?: {}): {}<{out_ty}, {ty}> {{",
            imports.ty("ConnectOptions"),
            imports.ty("Connection")
        );
        let _ = writeln!(
            out,
            "    return {}(base, {address_literal}, parameters as unknown as {params_record}, {out_codec}, {codec}, options);",
            imports.value("connectChannel")
        );
        let _ = writeln!(out, "  }},");
    }
    let _ = writeln!(out, "}};\n");
    if let Some(subscriber) = subscriber {
        render_session(out, imports, render, wires, subscriber, params_type, address);
    }
}

/// The session wrapper of a JSON channel: `subscribe<Channel>(client, parameters, handlers)`
/// over the `centrifuge` SDK, with `publish` when clients publish on it.
fn render_session(
    out: &mut String,
    imports: &mut Imports,
    render: &Render<'_>,
    wires: &Wires,
    subscriber: &str,
    params_type: &str,
    address: &str,
) {
    let schema_of = |wire: &Option<Wire>| match wire {
        Some(Wire::Typed { schema, .. }) => Some(schema.clone()),
        _ => None,
    };
    let Some(incoming) = schema_of(&wires.subscribes) else {
        return;
    };
    let outgoing = schema_of(&wires.publishes);
    let shown = comment_safe(address);
    let in_ty = render.type_name(&incoming);
    let values = imports.value("jsonValues");
    let check = |schema: &str, ty: &str| format!("{values}<{ty}>(SCHEMAS, {})", Value::String(schema.to_owned()));
    let subscribe = format!(
        "{}(client, {}({}, parameters as unknown as Readonly<Record<string, string | number>>), {}, handlers, options)",
        imports.value("subscribeSession"),
        imports.value("channelAddress"),
        Value::String(address.to_owned()),
        check(&incoming, &in_ty),
    );
    let handlers = format!(
        "{}<{in_ty}, PublicationContext, SubscribedContext>",
        imports.ty("SessionHandlers")
    );
    let _ = writeln!(
        out,
        "/**\n * Subscribes `client` (the `centrifuge` SDK, over its one session) to one address of\n * `{shown}`, by its canonical channel string (`channelAddress`). Each publication's `data`\n * is validated: a message goes to `handlers.onMessage`, anything else to `handlers.onInvalid`."
    );
    if outgoing.is_some() {
        let _ = writeln!(out, " * `publish` on the result validates before it sends.");
    } else {
        let _ = writeln!(out, " * Clients publish nothing on this channel.");
    }
    let _ = writeln!(
        out,
        " * The SDK reconnects and resubscribes by itself. Throws a `ParameterError` for a value no\n * address can carry, and the SDK's error if `client` already subscribes to that address.\n */"
    );
    match outgoing {
        Some(outgoing) => {
            let out_ty = render.type_name(&outgoing);
            let _ = writeln!(
                out,
                "export function {subscriber}(client: Centrifuge, parameters: {params_type}, handlers: {handlers}, options?: SubscriptionOptions): {}<{out_ty}, Subscription> {{",
                imports.ty("TypedSubscription")
            );
            let _ = writeln!(
                out,
                "  return {}({subscribe}, {});",
                imports.value("publishable"),
                check(&outgoing, &out_ty)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "export function {subscriber}(client: Centrifuge, parameters: {params_type}, handlers: {handlers}, options?: SubscriptionOptions): {}<Subscription> {{",
                imports.ty("SessionSubscription")
            );
            let _ = writeln!(out, "  return {subscribe};");
        }
    }
    let _ = writeln!(out, "}}\n");
}

/// Renders JSON Schemas (the draft-07 subset `schemars` produces) as TypeScript types.
struct Render<'a> {
    /// Schema key → TypeScript type name.
    types: &'a BTreeMap<String, String>,
}

impl Render<'_> {
    fn type_name(&self, key: &str) -> String {
        self.types.get(key).cloned().unwrap_or_else(|| "unknown".into())
    }

    fn ty(&self, schema: &Value, indent: &str) -> String {
        let object = match schema {
            Value::Bool(true) => return "unknown".into(),
            Value::Bool(false) => return "never".into(),
            Value::Object(object) => object,
            _ => return "unknown".into(),
        };
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            return self.type_name(&unpointer(reference.rsplit('/').next().unwrap_or_default()));
        }
        if let Some(constant) = object.get("const") {
            return constant.to_string();
        }
        if let Some(Value::Array(values)) = object.get("enum") {
            return union(values.iter().map(Value::to_string));
        }
        for combinator in ["oneOf", "anyOf"] {
            if let Some(Value::Array(options)) = object.get(combinator) {
                let own = without(object, combinator);
                return union(options.iter().map(|option| self.with_siblings(&own, option, indent)));
            }
        }
        if let Some(Value::Array(parts)) = object.get("allOf") {
            let own = without(object, "allOf");
            let mut all: Vec<String> = parts
                .iter()
                .map(|part| format!("({})", self.ty(part, indent)))
                .collect();
            if has_properties(&own) {
                all.push(format!("({})", self.object(&own, indent)));
            }
            return all.join(" & ");
        }
        match object.get("type") {
            Some(Value::Array(types)) => union(types.iter().map(|t| {
                let mut single = object.clone();
                single.insert("type".into(), t.clone());
                self.ty(&Value::Object(single), indent)
            })),
            Some(Value::String(t)) => match t.as_str() {
                "string" => "string".into(),
                "integer" | "number" => "number".into(),
                "boolean" => "boolean".into(),
                "null" => "null".into(),
                "array" => self.array(object, indent),
                "object" => self.object(object, indent),
                _ => "unknown".into(),
            },
            _ if has_properties(object) => self.object(object, indent),
            _ => "unknown".into(),
        }
    }

    /// A variant of a `oneOf` merged with the properties its parent declares beside it (a
    /// struct with a flattened enum).
    fn with_siblings(&self, own: &Map<String, Value>, option: &Value, indent: &str) -> String {
        match has_properties(own) {
            true => format!("{} & {}", self.object(own, indent), self.ty(option, indent)),
            false => self.ty(option, indent),
        }
    }

    fn array(&self, object: &Map<String, Value>, indent: &str) -> String {
        match object.get("items") {
            Some(Value::Array(items)) => {
                format!(
                    "[{}]",
                    items.iter().map(|i| self.ty(i, indent)).collect::<Vec<_>>().join(", ")
                )
            }
            Some(items) => format!("Array<{}>", self.ty(items, indent)),
            None => "unknown[]".into(),
        }
    }

    fn object(&self, object: &Map<String, Value>, indent: &str) -> String {
        let inner = format!("{indent}  ");
        let required: Vec<&str> = object
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut members = Vec::new();
        let mut property_types = Vec::new();
        if let Some(Value::Object(properties)) = object.get("properties") {
            for (name, property) in properties {
                let mut member = String::new();
                doc_comment(&mut member, property, &inner);
                let ty = self.ty(property, &inner);
                // An optional property may be `undefined` too (`exactOptionalPropertyTypes`
                // tells the two apart): it is left out of the frame either way.
                let (optional, ty) = if required.contains(&name.as_str()) {
                    ("", ty)
                } else {
                    ("?", format!("{ty} | undefined"))
                };
                let _ = write!(member, "{inner}{}{optional}: {ty};", property_key(name));
                property_types.push(ty);
                members.push(member);
            }
        }
        // Extra keys: `additionalProperties`, or `patternProperties` (maps with integer keys).
        let mut extra: Vec<String> = Vec::new();
        if let Some(Value::Object(patterns)) = object.get("patternProperties") {
            extra.extend(patterns.values().map(|schema| self.ty(schema, &inner)));
        }
        match object.get("additionalProperties") {
            Some(Value::Bool(false)) | None => {}
            Some(schema) => extra.push(self.ty(schema, &inner)),
        }
        if !extra.is_empty() {
            // An index signature must admit every named property's type too.
            extra.extend(property_types);
            let mut seen = BTreeSet::new();
            extra.retain(|ty| seen.insert(ty.clone()));
            members.push(format!("{inner}[key: string]: {};", union(extra.into_iter())));
        }
        if members.is_empty() {
            return "Record<string, never>".into();
        }
        format!("{{\n{}\n{indent}}}", members.join("\n"))
    }
}

fn has_properties(object: &Map<String, Value>) -> bool {
    ["properties", "additionalProperties", "patternProperties"]
        .iter()
        .any(|key| {
            object
                .get(*key)
                .is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty()) || v == &Value::Bool(true))
        })
}

fn without(object: &Map<String, Value>, key: &str) -> Map<String, Value> {
    let mut copy = object.clone();
    copy.remove(key);
    copy.remove("description");
    copy
}

fn union(parts: impl Iterator<Item = String>) -> String {
    let parts: Vec<String> = parts
        .map(|p| if p.contains(" & ") { format!("({p})") } else { p })
        .collect();
    match parts.len() {
        0 => "never".into(),
        _ => parts.join(" | "),
    }
}

/// Text safe inside a `/** … */` comment.
fn comment_safe(text: &str) -> String {
    text.replace("*/", "* /")
}

fn doc_comment(out: &mut String, schema: &Value, indent: &str) {
    let Some(description) = schema.get("description").and_then(Value::as_str) else {
        return;
    };
    let text = comment_safe(description);
    let lines: Vec<&str> = text.lines().collect();
    match lines.as_slice() {
        [one] => {
            let _ = writeln!(out, "{indent}/** {one} */");
        }
        _ => {
            let _ = writeln!(out, "{indent}/**");
            for line in lines {
                let _ = writeln!(out, "{indent} * {line}");
            }
            let _ = writeln!(out, "{indent} */");
        }
    }
}

/// A property name, quoted unless it is a plain identifier.
fn property_key(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if plain {
        name.to_owned()
    } else {
        Value::String(name.to_owned()).to_string()
    }
}

/// A TypeScript identifier from a name: `user_events` → `userEvents` (or `UserEvents`).
fn identifier(name: &str, capital: bool) -> String {
    let mut out = String::new();
    let mut upper = capital;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(if upper { c.to_ascii_uppercase() } else { c });
            upper = false;
        } else {
            upper = true;
        }
    }
    if !capital && let Some(first) = out.get(..1) {
        out = first.to_ascii_lowercase() + &out[1..];
    }
    if out.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}
