//! The typed model of one `#[channel]` declaration, keeping the spans errors point at.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::format_ident;
use syn::{Ident, Item, LitStr, Type, Visibility};

use crate::attr::{Args, OnInvalid};
use crate::ctxt::Ctxt;
use crate::pattern::{self, Segment};

pub(crate) struct Model {
    /// The annotated message type.
    pub(crate) ident: Ident,
    pub(crate) vis: Visibility,
    /// `UserEvents` → `UserEventsParams`.
    pub(crate) params_ident: Ident,
    /// The template as written, for documentation.
    pub(crate) template: LitStr,
    pub(crate) segments: Vec<Segment>,
    pub(crate) params: Vec<Param>,
    pub(crate) shape: Shape,
    /// Present when the channel opted into `validate` (its span, for diagnostics).
    pub(crate) validate: Option<Ident>,
    /// Present under `on_invalid = reply`.
    pub(crate) reply_on_invalid: Option<Ident>,
    /// `on_lag = …`, as written (`drop_oldest`).
    pub(crate) on_lag: Option<Ident>,
    pub(crate) name: String,
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

pub(crate) enum Shape {
    Symmetric,
    /// The client sends the annotated type, the server sends this one.
    Asymmetric(Box<Type>),
    ServerOnly,
}

impl Model {
    /// Builds the model; `None` when the item or template is too broken to describe (the
    /// reasons are in `cx`).
    pub(crate) fn new(cx: &Ctxt, item: &Item, args: Args) -> Option<Self> {
        let (ident, vis, attrs) = match item {
            Item::Struct(s) => (s.ident.clone(), s.vis.clone(), &s.attrs),
            Item::Enum(e) => (e.ident.clone(), e.vis.clone(), &e.attrs),
            _ => return None,
        };
        let template = args.template?;
        let segments = match pattern::parse(&template.value()) {
            Ok(segments) => segments,
            Err(messages) => {
                for message in messages {
                    cx.error_spanned_by(&template, message);
                }
                return None;
            }
        };
        let params = segments
            .iter()
            .filter_map(|segment| match segment {
                Segment::Param { name, ty } => Some(param(cx, &template, name, ty.as_deref(), item)),
                Segment::Static(_) => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let shape = match (args.server, args.server_only) {
            (Some(server), _) => Shape::Asymmetric(Box::new(server)),
            (None, Some(_)) => Shape::ServerOnly,
            (None, None) => Shape::Symmetric,
        };
        Some(Self {
            params_ident: format_ident!("{}Params", ident),
            name: args.name.map_or_else(|| ident.to_string(), |n| n.value()),
            description: doc_comment(attrs),
            ident,
            vis,
            template,
            segments,
            params,
            shape,
            validate: args.validate,
            reply_on_invalid: args
                .on_invalid
                .and_then(|(policy, ident)| (policy == OnInvalid::Reply).then_some(ident)),
            on_lag: args.on_lag,
            krate: args.krate.unwrap_or_else(|| syn::parse_quote!(::ws_channels)),
        })
    }

    pub(crate) fn address(&self) -> String {
        pattern::canonical(&self.segments)
    }
}

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
    let parsed = match ty {
        None => syn::parse_quote_spanned!(template.span()=> ::std::string::String),
        Some(ty) => {
            match syn::parse_str::<TokenStream>(ty).and_then(|t| syn::parse2::<Type>(respan(t, template.span()))) {
                Ok(ty) => ty,
                Err(_) => {
                    cx.error_spanned_by(template, format!("`{ty}` is not a Rust type (parameter `{name}`)"));
                    return None;
                }
            }
        }
    };
    Some(Param {
        description: field_doc(item, &field),
        name: name.to_owned(),
        field,
        defaulted: ty.is_none(),
        ty: parsed,
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
