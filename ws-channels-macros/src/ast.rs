//! The typed model of one `#[channel]` declaration, keeping the spans errors point at.
//!
//! Building the model reports what cannot be modelled at all (an item that is not a struct or
//! an enum, a template or parameter that does not parse) and keeps a best guess for the rest,
//! so that the fallback can still render the items other code names.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::format_ident;
use syn::{Ident, Item, LitStr, Type, Visibility};

use crate::attr::{Args, CodecArg, OnInvalid, OnLag, Spanned};
use crate::ctxt::Ctxt;
use crate::pattern::{self, Segment};

pub(crate) struct Model {
    /// The annotated message type.
    pub(crate) ident: Ident,
    pub(crate) vis: Visibility,
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
    /// The `skip_wrappers` flag: no inherent `publish`, `subscribe` or `register`.
    pub(crate) skip_wrappers: Option<Span>,
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
    /// Builds the model; `None` when the item is not a struct or an enum, the only thing a
    /// channel can be (the reason is in `cx`).
    pub(crate) fn from_ast(cx: &Ctxt, item: &Item, args: Args) -> Option<Self> {
        let (ident, vis, generics, attrs) = match item {
            Item::Struct(s) => (&s.ident, &s.vis, &s.generics, &s.attrs),
            Item::Enum(e) => (&e.ident, &e.vis, &e.generics, &e.attrs),
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
        Some(Self {
            params_ident: format_ident!("{}Params", ident),
            description: doc_comment(attrs),
            ident: ident.clone(),
            vis: vis.clone(),
            generics: generics.clone(),
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
            skip_wrappers: args.skip_wrappers,
            krate: args.krate.unwrap_or_else(|| syn::parse_quote!(::ws_channels)),
        })
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
fn param(cx: &Ctxt, template: &LitStr, name: &str, ty: Option<&str>, item: &Item) -> Option<Param> {
    let snake = pattern::to_snake_case(name);
    let field = match syn::parse_str::<Ident>(&snake) {
        Ok(_) => Ident::new(&snake, template.span()),
        Err(_) if matches!(snake.as_str(), "self" | "super" | "crate" | "_") => {
            cx.error_spanned_by(template, format!("parameter name `{name}` cannot be a field name"));
            return None;
        }
        // A keyword such as `type` becomes the raw identifier `r#type`.
        Err(_) => Ident::new_raw(&snake, template.span()),
    };
    let string = || syn::parse_quote_spanned!(template.span()=> ::std::string::String);
    let (ty, defaulted) = match ty {
        None => (string(), true),
        Some(ty) => {
            match syn::parse_str::<TokenStream>(ty).and_then(|t| syn::parse2::<Type>(respan(t, template.span()))) {
                Ok(ty) => (ty, false),
                Err(_) => {
                    cx.error_spanned_by(template, format!("`{ty}` is not a Rust type (parameter `{name}`)"));
                    (string(), true)
                }
            }
        }
    };
    Some(Param {
        description: field_doc(item, &field),
        name: name.to_owned(),
        field,
        defaulted,
        ty,
    })
}

/// The text of `///` comments, lines joined with newlines, trimmed.
fn doc_comment(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(line),
                        ..
                    }),
                ..
            }) => Some(line.value().trim().to_owned()),
            _ => None,
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// A parameter's description: the doc comment of the message field it names (`userId` →
/// `user_id`), in the struct or in any variant of the enum.
fn field_doc(item: &Item, field: &Ident) -> String {
    let fields: Vec<&syn::Field> = match item {
        Item::Struct(s) => s.fields.iter().collect(),
        Item::Enum(e) => e.variants.iter().flat_map(|v| v.fields.iter()).collect(),
        _ => Vec::new(),
    };
    let unraw = field.to_string();
    let unraw = unraw.trim_start_matches("r#");
    fields
        .into_iter()
        .find(|f| f.ident.as_ref().is_some_and(|i| i == unraw))
        .map(|f| doc_comment(&f.attrs))
        .unwrap_or_default()
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
