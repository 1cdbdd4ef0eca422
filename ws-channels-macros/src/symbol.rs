//! The words the macro reads or must avoid, each written once (serde_derive's `symbol.rs`).

/// An argument of `#[channel(…)]` after the template.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Arg {
    Server,
    ServerOnly,
    Validate,
    OnInvalid,
    OnLag,
    Codec,
    Name,
    Crate,
}

/// Every argument after the template as written, in the order the documentation lists them:
/// the allow-list a key is looked up in and the list an unknown key's message offers. A new
/// argument is one entry here; the parser's exhaustive match on `Arg` then asks for its branch,
/// and a variant left out of this table is never constructed, which the build warns about.
pub(crate) const ARGUMENTS: &[(&str, Arg)] = &[
    ("server", Arg::Server),
    ("server_only", Arg::ServerOnly),
    ("validate", Arg::Validate),
    ("on_invalid", Arg::OnInvalid),
    ("on_lag", Arg::OnLag),
    ("codec", Arg::Codec),
    ("name", Arg::Name),
    ("crate", Arg::Crate),
];

impl Arg {
    /// The argument a key names, if any.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        ARGUMENTS.iter().find(|(known, _)| *known == name).map(|&(_, arg)| arg)
    }
}

/// The words `syn` does not accept as an identifier: a mirror of syn's `accept_as_ident`, which
/// is private. A parameter named after one of them becomes a raw identifier (`type` →
/// `r#type`).
///
/// Kept as a list rather than asking `syn` about each name: asking means building a token
/// stream and parsing it, crossings of the proc-macro bridge the macro avoids on its common
/// path (see `source`). The tests compare the list with `syn`'s answer for every Rust keyword,
/// so an upgrade of `syn` that changes its set fails a test instead of drifting. `gen` is on it
/// though `syn` (which parses for every edition) takes it for an identifier: edition 2024
/// reserves it, so a field named `gen` would not compile in a 2024 crate, and `r#gen` does in
/// every edition.
pub(crate) const KEYWORDS: &[&str] = &[
    "_", "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro",
    "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return", "Self", "self", "static", "struct",
    "super", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while",
    "yield",
];

/// The keywords that cannot be raw identifiers either (`r#self` is not one), so a parameter
/// named after one cannot be a field at all. `Self` is one too, but a snake-case name never is.
pub(crate) const NOT_RAW: &[&str] = &["self", "super", "crate", "_"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_argument_has_one_name() {
        for (i, (name, arg)) in ARGUMENTS.iter().enumerate() {
            assert_eq!(Arg::from_name(name), Some(*arg), "`{name}`");
            assert!(
                ARGUMENTS[i + 1..]
                    .iter()
                    .all(|(other, again)| other != name && again != arg),
                "`{name}` is listed twice"
            );
        }
        assert_eq!(Arg::from_name("bogus"), None);
    }

    /// The Rust reference's keywords, every edition: strict, reserved, weak.
    const STRICT: &[&str] = &[
        "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
        "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
        "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while",
    ];
    const RESERVED: &[&str] = &[
        "abstract", "become", "box", "do", "final", "gen", "macro", "override", "priv", "try", "typeof", "unsized",
        "virtual", "yield",
    ];
    const WEAK: &[&str] = &["macro_rules", "raw", "safe", "union"];
    /// `_` is no keyword but no identifier either; the rest are plain identifiers, as a control.
    const OTHERS: &[&str] = &["_", "__", "user_id", "Type", "selfish", "crate_name", "string"];

    fn syn_refuses(word: &str) -> bool {
        syn::parse_str::<syn::Ident>(word).is_err()
    }

    #[test]
    fn keywords_are_what_syn_refuses() {
        let is_keyword = |word: &str| syn_refuses(word) || RESERVED_IN_2024.contains(&word);
        for word in KEYWORDS {
            assert!(
                is_keyword(word),
                "`syn` accepts `{word}` as an identifier: remove it from KEYWORDS"
            );
        }
        for word in [STRICT, RESERVED, WEAK, OTHERS].concat() {
            assert_eq!(
                KEYWORDS.contains(&word),
                is_keyword(word),
                "KEYWORDS and `syn` (with the 2024 edition's reservations) disagree about `{word}`"
            );
        }
    }

    /// Reserved by edition 2024, and taken for identifiers by `syn`.
    const RESERVED_IN_2024: &[&str] = &["gen"];

    #[test]
    fn not_raw_words_are_keywords_without_a_raw_form() {
        for word in NOT_RAW {
            assert!(KEYWORDS.contains(word), "`{word}`");
            assert!(
                syn::parse_str::<syn::Ident>(&format!("r#{word}")).is_err(),
                "`r#{word}` lexes as a raw identifier"
            );
        }
    }
}
