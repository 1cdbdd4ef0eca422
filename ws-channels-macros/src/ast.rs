//! The typed model of one `#[channel]` declaration, keeping the spans errors point at.
//!
//! Building the model reports what cannot be modelled at all (an item that is not a struct or
//! an enum, a template or parameter that does not parse) and keeps a best guess for the rest,
//! so that the fallback can still render the items other code names.

use proc_macro2::{Delimiter, Group, Spacing, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident};
use syn::{Ident, Item, LitStr, Type};

use crate::attr::{Args, CodecArg, OnInvalid, OnLag, Spanned};
use crate::ctxt::Ctxt;
use crate::pattern::{self, Segment};
use crate::symbol;

pub(crate) struct Model {
    /// The annotated message type.
    pub(crate) ident: Ident,
    /// The annotated type's visibility, as written.
    pub(crate) vis: TokenStream,
    pub(crate) generics: syn::Generics,
    /// `UserEvents` → `UserEventsParams`.
    pub(crate) params_ident: Ident,
    /// The template as written, for documentation (empty when it is missing).
    pub(crate) template: LitStr,
    /// The segments that parsed (all of them when there is no error).
    pub(crate) segments: Vec<Segment>,
    pub(crate) params: Vec<Param>,
    /// `server = T`: what the server sends, when it is not the annotated type.
    pub(crate) server: Option<Box<Type>>,
    /// The `server_only` flag.
    pub(crate) server_only: Option<Span>,
    /// The `validate` flag.
    pub(crate) validate: Option<Span>,
    pub(crate) on_invalid: Option<Spanned<OnInvalid>>,
    pub(crate) on_lag: Option<Spanned<OnLag>>,
    /// `codec = …`; JSON without one.
    pub(crate) codec: Option<Spanned<CodecArg>>,
    /// `name = "…"` as written.
    pub(crate) name: Option<LitStr>,
    /// The annotated type's doc comment: the channel's description in exported documents.
    pub(crate) description: String,
    pub(crate) krate: syn::Path,
}

pub(crate) struct Param {
    /// As written in the template (`userId`).
    pub(crate) name: String,
    /// The field (`user_id`).
    pub(crate) field: Ident,
    /// The declared type, spanned at the template; `String` by default.
    pub(crate) ty: Type,
    /// No type was declared: it is `String`.
    pub(crate) defaulted: bool,
    /// The doc comment of the message field with the same name, if any.
    pub(crate) description: String,
}

/// Who sends what. Derived from `server` and `server_only`; when both are given (an error),
/// `server` wins, so the fallback still types the server's messages as written.
pub(crate) enum Shape<'a> {
    Symmetric,
    /// The client sends the annotated type, the server sends this one.
    Asymmetric(&'a Type),
    ServerOnly,
}

impl Model {
    /// Builds the model of the annotated item.
    pub(crate) fn from_ast(cx: &Ctxt, item: &Annotated<'_>, args: Args) -> Self {
        let (template, segments) = match args.template {
            Some(template) => {
                let (segments, errors) = pattern::parse_partial(&template.value());
                for error in errors {
                    cx.error_spanned_by(&template, error);
                }
                (template, segments)
            }
            // A missing template was reported by `attr`; the fallback renders a channel with no
            // parameters.
            None => (LitStr::new("", Span::call_site()), Vec::new()),
        };
        let params = segments
            .iter()
            .filter_map(|segment| match segment {
                Segment::Param { name, ty } => param(cx, &template, name, ty.as_deref(), item),
                Segment::Static(_) => None,
            })
            .collect();
        Self {
            params_ident: format_ident!("{}Params", item.ident),
            description: item.description(),
            ident: item.ident.clone(),
            vis: item.vis.clone(),
            generics: item.generics.clone(),
            template,
            segments,
            params,
            server: args.server.map(Box::new),
            server_only: args.server_only,
            validate: args.validate,
            on_invalid: args.on_invalid,
            on_lag: args.on_lag,
            codec: args.codec,
            name: args.name,
            krate: args.krate.unwrap_or_else(|| syn::parse_quote!(::ws_channels)),
        }
    }

    /// Whether the annotated type has generic parameters or a `where` clause, which a channel
    /// cannot: `check` reports it, and `fallback` renders nothing for such a type.
    pub(crate) fn is_generic(&self) -> bool {
        !self.generics.params.is_empty() || self.generics.where_clause.is_some()
    }

    /// Whether messages are raw frames (`ws_channels::Raw`) rather than the annotated type.
    pub(crate) fn is_raw(&self) -> bool {
        self.codec.is_some_and(|codec| codec.value == CodecArg::Raw)
    }

    pub(crate) fn shape(&self) -> Shape<'_> {
        match (&self.server, self.server_only) {
            (Some(server), _) => Shape::Asymmetric(server),
            (None, Some(_)) => Shape::ServerOnly,
            (None, None) => Shape::Symmetric,
        }
    }

    /// The channel's name in logs and documents: `name = "…"`, else the type's name.
    pub(crate) fn name(&self) -> String {
        self.name.as_ref().map_or_else(|| self.ident.to_string(), LitStr::value)
    }

    pub(crate) fn address(&self) -> String {
        pattern::canonical(&self.segments)
    }
}

/// One parameter; `None` (reported) when its name cannot be a field. A type that does not
/// parse is reported and replaced by `String`, so that the parameter keeps its place in `new`.
fn param(cx: &Ctxt, template: &LitStr, name: &str, ty: Option<&str>, item: &Annotated<'_>) -> Option<Param> {
    let span = template.span();
    let snake = pattern::to_snake_case(name);
    // Built from the text rather than parsed: the macro runs unoptimized in a debug build, and
    // the common cases (a plain name, a one-word type, the default `String`) are most of its
    // parameters. Anything else is parsed by `syn`, as before.
    let field = match plain_ident(&snake) {
        Some(true) => Ident::new(&snake, span),
        _ if symbol::NOT_RAW.contains(&snake.as_str()) => {
            cx.error_spanned_by(template, format!("parameter name `{name}` cannot be a field name"));
            return None;
        }
        // A keyword such as `type` becomes the raw identifier `r#type`.
        Some(false) => Ident::new_raw(&snake, span),
        None => match syn::parse_str::<Ident>(&snake) {
            Ok(_) => Ident::new(&snake, span),
            Err(_) => Ident::new_raw(&snake, span),
        },
    };
    let (ty, defaulted) = match ty {
        None => (string_type(span), true),
        Some(ty) if plain_ident(ty) == Some(true) => (
            Type::Path(syn::TypePath {
                attrs: Vec::new(),
                qself: None,
                path: Ident::new(ty, span).into(),
            }),
            false,
        ),
        Some(ty) => match syn::parse_str::<TokenStream>(ty).and_then(|t| syn::parse2::<Type>(respan(t, span))) {
            Ok(ty) => (ty, false),
            Err(_) => {
                cx.error_spanned_by(template, format!("`{ty}` is not a Rust type (parameter `{name}`)"));
                (string_type(span), true)
            }
        },
    };
    Some(Param {
        description: item.field_doc(&field),
        name: name.to_owned(),
        field,
        defaulted,
        ty,
    })
}

/// `::std::string::String`, spanned at `span`.
fn string_type(span: Span) -> Type {
    let mut path = syn::Path {
        leading_colon: Some(syn::Token![::](span)),
        segments: syn::punctuated::Punctuated::new(),
    };
    for segment in ["std", "string", "String"] {
        path.segments.push(Ident::new(segment, span).into());
    }
    Type::Path(syn::TypePath {
        attrs: Vec::new(),
        qself: None,
        path,
    })
}

/// Whether `text` is one ASCII word that lexes as an identifier: `Some(true)` for a plain
/// identifier, `Some(false)` for a keyword (what `syn` does not accept as an identifier),
/// `None` for anything else.
fn plain_ident(text: &str) -> Option<bool> {
    let mut chars = text.chars();
    let word = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    word.then(|| !symbol::KEYWORDS.contains(&text))
}

/// What the model needs of the annotated item: its name, visibility and generics, and the doc
/// comments that become descriptions.
///
/// Read from the tokens directly when the item is a plain struct or enum (no generics, no
/// `where`, no discriminants), the case of nearly every channel: a full `syn::Item` parse of
/// the user's type, unoptimized in a debug build, was a large part of the macro's own time,
/// for a type whose body it never uses beyond field names and doc comments. Anything else goes
/// through `syn`, which also reports what a channel cannot be.
pub(crate) struct Annotated<'a> {
    pub(crate) ident: Ident,
    pub(crate) vis: TokenStream,
    pub(crate) generics: syn::Generics,
    docs: Docs<'a>,
}

enum Docs<'a> {
    /// The item's attributes (`[…]` of each `#[…]`), and each named field's name and attributes,
    /// in order: the struct's fields, or every variant's.
    Scanned {
        attrs: Vec<Group>,
        fields: Vec<(String, Vec<Group>)>,
    },
    Parsed(&'a Item),
}

impl<'a> Annotated<'a> {
    /// A plain struct or enum read from its tokens; `None` for anything else.
    pub(crate) fn scan(input: &TokenStream) -> Option<Self> {
        let mut tokens = input.clone().into_iter().peekable();
        let attrs = outer_attrs(&mut tokens)?;
        let mut vis = TokenStream::new();
        if let Some(TokenTree::Ident(word)) = tokens.peek()
            && word == "pub"
        {
            vis.extend(tokens.next());
            if let Some(TokenTree::Group(group)) = tokens.peek()
                && group.delimiter() == Delimiter::Parenthesis
            {
                vis.extend(tokens.next());
            }
        }
        let is_enum = match tokens.next()? {
            TokenTree::Ident(word) if word == "enum" => true,
            TokenTree::Ident(word) if word == "struct" => false,
            _ => return None,
        };
        let TokenTree::Ident(ident) = tokens.next()? else {
            return None;
        };
        let mut fields = Vec::new();
        match tokens.next() {
            Some(TokenTree::Group(body)) if body.delimiter() == Delimiter::Brace => {
                if is_enum {
                    variants(body.stream(), &mut fields)?;
                } else {
                    named_fields(body.stream(), &mut fields)?;
                }
            }
            Some(TokenTree::Group(body)) if !is_enum && body.delimiter() == Delimiter::Parenthesis => {
                match tokens.next() {
                    Some(TokenTree::Punct(semi)) if semi.as_char() == ';' => {}
                    _ => return None,
                }
            }
            Some(TokenTree::Punct(semi)) if !is_enum && semi.as_char() == ';' => {}
            // Generics, a `where` clause: `syn` reads them.
            _ => return None,
        }
        if tokens.next().is_some() {
            return None;
        }
        Some(Self {
            ident,
            vis,
            generics: syn::Generics::default(),
            docs: Docs::Scanned { attrs, fields },
        })
    }

    /// The item parsed by `syn`; `None` (reported) when it is not a struct or an enum, the only
    /// thing a channel can be.
    pub(crate) fn parsed(cx: &Ctxt, item: &'a Item) -> Option<Self> {
        let (ident, vis, generics) = match item {
            Item::Struct(s) => (&s.ident, &s.vis, &s.generics),
            Item::Enum(e) => (&e.ident, &e.vis, &e.generics),
            Item::Union(u) => {
                cx.error_spanned_by(
                    u.union_token,
                    "`#[channel]` supports structs and enums, not unions: serde cannot (de)serialize a union",
                );
                return None;
            }
            Item::Fn(f) => {
                cx.error_spanned_by(&f.sig, "`#[channel]` goes on a struct or an enum, not a function");
                return None;
            }
            other => {
                cx.error_spanned_by(other, "`#[channel]` goes on a struct or an enum");
                return None;
            }
        };
        Some(Self {
            ident: ident.clone(),
            vis: vis.to_token_stream(),
            generics: generics.clone(),
            docs: Docs::Parsed(item),
        })
    }

    /// The item's doc comment.
    fn description(&self) -> String {
        match &self.docs {
            Docs::Scanned { attrs, .. } => doc_comment(attrs.iter().filter_map(doc_line)),
            Docs::Parsed(Item::Struct(s)) => doc_comment(s.attrs.iter().filter_map(syn_doc_line)),
            Docs::Parsed(Item::Enum(e)) => doc_comment(e.attrs.iter().filter_map(syn_doc_line)),
            Docs::Parsed(_) => String::new(),
        }
    }

    /// A parameter's description: the doc comment of the message field it names (`userId` →
    /// `user_id`), in the struct or in any variant of the enum.
    fn field_doc(&self, field: &Ident) -> String {
        let unraw = field.to_string();
        let unraw = unraw.trim_start_matches("r#");
        match &self.docs {
            Docs::Scanned { fields, .. } => fields
                .iter()
                .find(|(name, _)| name == unraw)
                .map(|(_, attrs)| doc_comment(attrs.iter().filter_map(doc_line)))
                .unwrap_or_default(),
            Docs::Parsed(item) => {
                let fields: Vec<&syn::Field> = match item {
                    Item::Struct(s) => s.fields.iter().collect(),
                    Item::Enum(e) => e.variants.iter().flat_map(|v| v.fields.iter()).collect(),
                    _ => Vec::new(),
                };
                fields
                    .into_iter()
                    .find(|f| f.ident.as_ref().is_some_and(|i| i == unraw))
                    .map(|f| doc_comment(f.attrs.iter().filter_map(syn_doc_line)))
                    .unwrap_or_default()
            }
        }
    }
}

type Tokens = std::iter::Peekable<proc_macro2::token_stream::IntoIter>;

/// Outer attributes: the `[…]` group of each `#[…]`.
fn outer_attrs(tokens: &mut Tokens) -> Option<Vec<Group>> {
    let mut attrs = Vec::new();
    while let Some(TokenTree::Punct(pound)) = tokens.peek() {
        if pound.as_char() != '#' {
            return None;
        }
        tokens.next();
        match tokens.next()? {
            TokenTree::Group(attr) if attr.delimiter() == Delimiter::Bracket => attrs.push(attr),
            _ => return None,
        }
    }
    Some(attrs)
}

/// Named fields, `a: A, pub b: B<C, D>`: each name with its attributes.
fn named_fields(body: TokenStream, fields: &mut Vec<(String, Vec<Group>)>) -> Option<()> {
    let mut tokens = body.into_iter().peekable();
    while tokens.peek().is_some() {
        let attrs = outer_attrs(&mut tokens)?;
        let mut name = tokens.next()?;
        if matches!(&name, TokenTree::Ident(word) if word == "pub") {
            if let Some(TokenTree::Group(group)) = tokens.peek()
                && group.delimiter() == Delimiter::Parenthesis
            {
                tokens.next();
            }
            name = tokens.next()?;
        }
        let TokenTree::Ident(name) = name else {
            return None;
        };
        match tokens.next()? {
            TokenTree::Punct(colon) if colon.as_char() == ':' && colon.spacing() == Spacing::Alone => {}
            _ => return None,
        }
        fields.push((name.to_string(), attrs));
        // The type, up to the next comma outside angle brackets (`->` closes none).
        let mut depth = 0usize;
        let mut arrow = false;
        for token in tokens.by_ref() {
            let TokenTree::Punct(punct) = token else {
                arrow = false;
                continue;
            };
            match punct.as_char() {
                ',' if depth == 0 => break,
                '<' => depth += 1,
                '>' if !arrow => depth = depth.checked_sub(1)?,
                _ => {}
            }
            arrow = punct.as_char() == '-' && punct.spacing() == Spacing::Joint;
        }
    }
    Some(())
}

/// An enum's variants: the named fields of each (tuple and unit variants have none).
fn variants(body: TokenStream, fields: &mut Vec<(String, Vec<Group>)>) -> Option<()> {
    let mut tokens = body.into_iter().peekable();
    while tokens.peek().is_some() {
        outer_attrs(&mut tokens)?;
        let TokenTree::Ident(_) = tokens.next()? else {
            return None;
        };
        if let Some(TokenTree::Group(group)) = tokens.peek() {
            match group.delimiter() {
                Delimiter::Brace => named_fields(group.stream(), fields)?,
                Delimiter::Parenthesis => {}
                _ => return None,
            }
            tokens.next();
        }
        // A discriminant (`= …`) or anything else: `syn` reads it.
        match tokens.next() {
            None => break,
            Some(TokenTree::Punct(comma)) if comma.as_char() == ',' => {}
            Some(_) => return None,
        }
    }
    Some(())
}

/// The text of one `#[doc = "…"]` attribute (a `///` line), given its `[…]` group.
fn doc_line(attr: &Group) -> Option<String> {
    let mut tokens = attr.stream().into_iter();
    match (tokens.next()?, tokens.next()?, tokens.next()?, tokens.next()) {
        (TokenTree::Ident(doc), TokenTree::Punct(eq), TokenTree::Literal(line), None)
            if eq.as_char() == '=' && doc == "doc" =>
        {
            match syn::Lit::new(line) {
                syn::Lit::Str(line) => Some(line.value()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The text of one `#[doc = "…"]` attribute parsed by `syn`.
fn syn_doc_line(attr: &syn::Attribute) -> Option<String> {
    if !attr.path().is_ident("doc") {
        return None;
    }
    match &attr.meta {
        syn::Meta::NameValue(syn::MetaNameValue {
            value:
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(line),
                    ..
                }),
            ..
        }) => Some(line.value()),
        _ => None,
    }
}

/// The text of `///` comments, lines trimmed and joined with newlines, trimmed.
fn doc_comment(lines: impl Iterator<Item = String>) -> String {
    let lines: Vec<String> = lines.map(|line| line.trim().to_owned()).collect();
    lines.join("\n").trim().to_owned()
}

/// Types parsed out of the template string point at the template literal, so a type that is not
/// `FromStr` is reported there.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner = proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    /// The token walk reads what `syn` reads: the same name, visibility and doc comments.
    fn assert_scan_matches_syn(input: TokenStream, fields: &[&str]) {
        let scanned = Annotated::scan(&input).unwrap_or_else(|| panic!("not read from tokens: {input}"));
        let item: Item = syn::parse2(input.clone()).expect("a valid item");
        let cx = Ctxt::default();
        let parsed = Annotated::parsed(&cx, &item).expect("a struct or an enum");
        assert_eq!(scanned.ident, parsed.ident);
        assert_eq!(scanned.vis.to_string(), parsed.vis.to_string());
        assert_eq!(scanned.description(), parsed.description());
        for field in fields {
            let field = Ident::new(field, Span::call_site());
            assert_eq!(scanned.field_doc(&field), parsed.field_doc(&field), "field {field}");
        }
        assert!(cx.check().is_ok());
    }

    #[test]
    fn plain_items_are_read_from_tokens() {
        assert_scan_matches_syn(
            quote! {
                /// A struct.
                ///   Two lines.
                #[derive(Serialize)]
                #[doc = "three"]
                pub(crate) struct S {
                    /// Generic arguments with a comma.
                    pub map: HashMap<String, Vec<u8>>,
                    /// A function type.
                    pub(crate) f: fn(u8, u16) -> Option<u32>,
                    #[serde(default)]
                    /// After another attribute.
                    user_id: u64,
                    #[doc(hidden)]
                    hidden: (),
                    r#type: String,
                }
            },
            &["map", "f", "user_id", "hidden", "type", "missing"],
        );
        assert_scan_matches_syn(
            quote! {
                enum E {
                    /// Unit.
                    A,
                    B(u8, String),
                    C {
                        /// In a variant.
                        room: String,
                    },
                    D { room: String, other: Result<u8, ()> }
                }
            },
            &["room", "other"],
        );
        assert_scan_matches_syn(quote! { pub struct Unit; }, &[]);
        assert_scan_matches_syn(quote! { pub struct Tuple(pub u8, String); }, &[]);
    }

    #[test]
    fn anything_else_goes_through_syn() {
        for input in [
            quote! { struct G<T> { t: T } },
            quote! { struct W where u8: Copy { t: u8 } },
            quote! { enum D { A = 1, B } },
            quote! { union U { a: u8 } },
            quote! { fn f() {} },
        ] {
            assert!(Annotated::scan(&input).is_none(), "{input}");
        }
    }
}
