//! Every arrow points down: a check of the runtime crate's imports, read from its sources.
//!
//! - Among the top-level modules of `ws-channels/src`, the imports form no circle, except
//!   through `channel`: the `Channel` trait's provided functions (`publish`, `subscribe`,
//!   `register`) name the server's, the client's and the codec's types in their signatures,
//!   the one deliberate upward edge.
//! - Inside each folder module (`server/`, `client/`, `hub/`, `spec/`, `session/`), no two
//!   files import each other, nor do longer circles form. A name a file takes from `super::`
//!   counts as an import of the file that defines it, when `mod.rs` re-exports or imports it
//!   from there; what `mod.rs` defines itself (the `Server` builder, the `Hub`) is the
//!   folder's root, which its files extend (`impl Server` in a front end), so it is left out.
//!
//! - `session/`, the sessions' wire layer, is tokio-free so a WebAssembly client can reuse it:
//!   neither it nor any module it imports names tokio, `server`, `client` or `hub`.
//!
//! Imports are what a file's non-test code names as `crate::module…` or `super::module…`
//! (grouped `{…}` forms included); comments and `#[cfg(test)] mod tests` are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ws-channels/src")
}

/// A file's code, without its comments and its test module.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every path that follows `prefix`: `prefix::a::B` gives `a`, and
/// `prefix::{a, b::C}` gives `a` and `b`.
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        rest = &rest[at + prefix.len()..];
        let segments: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())].split(',').collect(),
            None => vec![rest],
        };
        for segment in segments {
            let name: String = segment
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

/// The `.rs` files and folders of `dir`, as module names.
fn modules(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_stem()?.to_str()?.to_owned();
            (path.is_dir() || path.extension()? == "rs").then_some(name)
        })
        .collect()
}

/// A module's files: `x.rs`, or every file of the folder `x/`.
fn files_of(dir: &Path, module: &str) -> Vec<PathBuf> {
    let folder = dir.join(module);
    match folder.is_dir() {
        true => modules(&folder)
            .into_iter()
            .map(|file| folder.join(format!("{file}.rs")))
            .filter(|path| path.is_file())
            .collect(),
        false => vec![dir.join(format!("{module}.rs"))],
    }
}

/// A circle in `graph`, as the path around it, if there is one.
fn circle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &Graph, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut around = path[at..].to_vec();
            around.push(node.to_owned());
            return Some(around);
        }
        if !done.insert(node.to_owned()) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_form_no_circle_except_through_channel() {
    let src = src();
    let top = modules(&src);
    let mut graph = Graph::new();
    for module in top.iter().filter(|m| !["lib", "channel"].contains(&m.as_str())) {
        for file in files_of(&src, module) {
            for name in names_after(&code(&file), "crate::") {
                if top.contains(&name) && &name != module && name != "channel" {
                    graph.entry(module.clone()).or_default().insert(name);
                }
            }
        }
    }
    assert!(
        graph.get("codec").is_none_or(|to| !to.contains("outbox")),
        "the codec the client uses knows nothing of the server's queue"
    );
    if let Some(around) = circle(&graph) {
        panic!("the top-level modules import in a circle: {}", around.join(" -> "));
    }
}

#[test]
fn no_two_files_of_a_folder_module_import_each_other() {
    let src = src();
    for folder in ["server", "client", "hub", "spec", "session"] {
        let dir = src.join(folder);
        let files = modules(&dir);
        // `pub use file::{A, B}` in mod.rs: `super::A` is file's.
        // Statement by statement, so a group over several lines is read whole.
        let root = code(&dir.join("mod.rs"));
        let mut defined_in = BTreeMap::new();
        for statement in root.split(';') {
            let Some((_, path)) = statement.split_once("use ") else {
                continue;
            };
            let path = path.trim();
            let path = path.strip_prefix("self::").unwrap_or(path);
            let Some((file, names)) = path.split_once("::") else {
                continue;
            };
            if !files.contains(file) {
                continue;
            }
            for name in names_after(&format!("x::{names}"), "x::") {
                defined_in.insert(name, file.to_owned());
            }
        }
        let mut graph = Graph::new();
        for file in files.iter().filter(|f| *f != "mod") {
            let code = code(&dir.join(format!("{file}.rs")));
            let names = names_after(&code, "super::")
                .into_iter()
                .chain(names_after(&code, &format!("crate::{folder}::")));
            for name in names {
                let target = match files.contains(&name) {
                    true => Some(name),
                    false => defined_in.get(&name).cloned(),
                };
                if let Some(target) = target.filter(|t| t != file && t != "mod") {
                    graph.entry(file.clone()).or_default().insert(target);
                }
            }
        }
        for (from, to) in &graph {
            for back in to {
                assert!(
                    !graph.get(back).is_some_and(|b| b.contains(from)),
                    "{folder}/{from}.rs and {folder}/{back}.rs import each other"
                );
            }
        }
        if let Some(around) = circle(&graph) {
            panic!("the files of {folder}/ import in a circle: {}", around.join(" -> "));
        }
    }
}

#[test]
fn the_session_wire_layer_is_tokio_free() {
    let src = src();
    let top = modules(&src);
    // `session` and every top-level module it reaches through `crate::` imports.
    let mut reached = BTreeSet::from(["session".to_owned()]);
    let mut todo = vec!["session".to_owned()];
    while let Some(module) = todo.pop() {
        for file in files_of(&src, &module) {
            let code = code(&file);
            let words: BTreeSet<&str> = code.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
            for runtime in ["tokio", "tokio_tungstenite", "tokio_rustls"] {
                assert!(
                    !words.contains(runtime),
                    "{} names `{runtime}`, and `session` reaches it: the wire layer must stay tokio-free",
                    file.display()
                );
            }
            for name in names_after(&code, "crate::") {
                if top.contains(&name) && reached.insert(name.clone()) {
                    todo.push(name);
                }
            }
        }
    }
    for forbidden in ["server", "client", "hub"] {
        assert!(
            !reached.contains(forbidden),
            "`session` reaches `{forbidden}` through its imports: {reached:?}"
        );
    }
}

#[test]
fn the_reader_of_imports_sees_grouped_and_plain_paths() {
    let code = "use super::{reader::Reader, Shared};\nlet x = crate::codec::encode();\nuse super::socket::Socket;";
    assert_eq!(
        names_after(code, "super::"),
        ["Shared", "reader", "socket"].map(String::from).into()
    );
    assert_eq!(names_after(code, "crate::"), ["codec"].map(String::from).into());
    let mut graph = Graph::new();
    graph.entry("a".into()).or_default().insert("b".into());
    assert_eq!(circle(&graph), None);
    graph.entry("b".into()).or_default().insert("a".into());
    assert_eq!(circle(&graph), Some(vec!["a".into(), "b".into(), "a".into()]));
}
