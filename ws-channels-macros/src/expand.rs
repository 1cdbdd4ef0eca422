//! The macro's entry point and the items every channel gets: the params struct with its
//! trait impls, and the `Channel` impl. All logic is in the runtime, reached through
//! `#krate::__private`, so each channel costs the compiler a few one-line items; the typed
//! `publish`, `subscribe` and `register` are the `Channel` trait's provided functions. The
//! output is written as source text (see `source`), its string literals with `{:?}`.

use proc_macro2::{Delimiter, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::Item;

use crate::ast::{Annotated, Model, Shape};
use crate::attr::{CodecArg, OnInvalid, OnLag, Spanned};
use crate::ctxt::Ctxt;
use crate::pattern::Segment;
use crate::source::Source;
use crate::{attr, check, fallback};

/// The whole macro: parse, check, render. On error the item and the generated items are still
/// emitted beside the errors (see `fallback`), so one mistake gives one error.
pub(crate) fn channel(args: TokenStream, input: TokenStream) -> TokenStream {
    // A plain struct or enum is read from its tokens; anything else is parsed by `syn`.
    let scanned = Annotated::scan(&input);
    let parsed: Option<Item> = match scanned {
        Some(_) => None,
        None => match syn::parse2(input.clone()) {
            Ok(item) => Some(item),
            Err(error) => {
                let error = error.to_compile_error();
                return quote! { #input #error };
            }
        },
    };
    let cx = Ctxt::default();
    let args = attr::parse(args, &cx);
    let annotated = match (scanned, &parsed) {
        (Some(scanned), _) => Some(scanned),
        (None, Some(item)) => Annotated::parsed(&cx, item),
        (None, None) => None,
    };
    let model = annotated.map(|annotated| Model::from_ast(&cx, &annotated, args));
    if let Some(model) = &model {
        check::check(&cx, model);
    }
    // The item is emitted as the user wrote it: its tokens as they came in, rather than
    // printed back from syn's tree, which would cost every channel a second pass over them.
    match (cx.check(), model) {
        (Ok(()), Some(model)) => {
            let generated = render(&model);
            quote! { #input #generated }
        }
        (Err(errors), model) => {
            let errors = errors.to_compile_error();
            let generated = model.as_ref().map(fallback::render);
            quote! { #input #errors #generated }
        }
        // Unreachable: no model means an error was reported. Emitting the item alone is the
        // harmless answer.
        (Ok(()), None) => input,
    }
}

/// Everything a channel generates: the params struct and its inherent impl (outside the
/// const, so diagnostics name `UserEventsParams::new` rather than a path through `_`), then
/// every trait impl in one anonymous const that imports the runtime once as `__wsc`, so each
/// of its paths is two segments. Each item costs the compiler work per channel, which is why
/// `publish`, `subscribe` and `register` are provided methods of `Channel` rather than
/// generated here: generic wrappers were the largest part of a channel's build time.
pub(crate) fn render(model: &Model) -> TokenStream {
    let mut out = Source::new();
    // The inherent impl's path to the runtime, as text.
    let private = format!("{}::__private", model.krate.to_token_stream());
    render_params_struct(model, &private, &mut out);
    out.push("const _: () = ")
        .group(Delimiter::Brace, |out| {
            out.push("use ").tokens(&model.krate).push("::__private as __wsc;");
            render_params_impls(model, out);
            render_channel(model, out);
        })
        .push(";");
    out.finish()
}

/// The params struct and its inherent `new` and `url`.
fn render_params_struct(model: &Model, private: &str, out: &mut Source) {
    let Model {
        ident,
        vis,
        params_ident,
        ..
    } = model;
    let template = model.template.value();
    let struct_doc = format!("The path parameters of the [`{ident}`] channel, `{template}`.");
    out.write(format_args!("#[doc = {struct_doc:?}] #[derive(Debug, Clone)]"));
    out.tokens(vis).push(" struct ").tokens(params_ident);
    out.group(Delimiter::Brace, |out| {
        for p in &model.params {
            let doc = format!("The `{}` parameter of `{template}`.", p.name);
            out.write(format_args!("#[doc = {doc:?}] pub {}: ", p.field));
            out.tokens(&p.ty).push(",");
        }
    });

    let new_doc = format!("The parameters of one concrete `{template}` address.");
    let url_doc = format!(
        "The WebSocket URL of this `{template}` address under `base` (such as `ws://localhost:8080`), percent-encoding each parameter."
    );
    out.push("impl ").tokens(params_ident).group(Delimiter::Brace, |out| {
        out.write(format_args!("#[doc = {new_doc:?}] pub fn new"));
        // `String` parameters take anything `Into<String>` (`&str`); typed ones take their
        // type, so an integer literal infers (`new("u1", 7)`). The names keep the template's
        // span: a wrong argument's note points there.
        out.group(Delimiter::Parenthesis, |out| {
            for p in &model.params {
                out.tokens(&p.field);
                match p.defaulted {
                    true => out
                        .write(format_args!(": impl {private}::Into<"))
                        .tokens(&p.ty)
                        .push(">,"),
                    false => out.push(": ").tokens(&p.ty).push(","),
                };
            }
        });
        let inits: String = model
            .params
            .iter()
            .map(|p| match p.defaulted {
                true => format!("{0}: {private}::Into::into({0}),", p.field),
                false => format!("{},", p.field),
            })
            .collect();
        out.write(format_args!(
            "-> Self {{ Self {{ {inits} }} }}
            #[doc = {url_doc:?}]
            #[inline] pub fn url(&self, base: &{private}::str) -> {private}::String {{ {private}::url(self, base) }}"
        ));
    });
}

/// The params' trait impls, inside the const (`__wsc` in scope).
fn render_params_impls(model: &Model, out: &mut Source) {
    let Model {
        ident, params_ident, ..
    } = model;
    let address = model.address();
    out.push("#[automatically_derived] impl __wsc::Params for ")
        .tokens(params_ident)
        .group(Delimiter::Brace, |out| {
            out.push("type Channel = ").tokens(ident).push(";");
            let segments: String = model
                .segments
                .iter()
                .map(|s| match s {
                    Segment::Static(s) => format!("__wsc::Segment::Static({s:?}),"),
                    Segment::Param { name, .. } => format!("__wsc::Segment::Param({name:?}),"),
                })
                .collect();
            out.write(format_args!(
                "const TEMPLATE: __wsc::Template = __wsc::Template::__new({address:?}, &[{segments}]);"
            ));
            let described: String = model
                .params
                .iter()
                .filter(|p| !p.description.is_empty())
                .map(|p| format!("({:?}, {:?}),", p.name, p.description))
                .collect();
            if !described.is_empty() {
                out.write(format_args!(
                    "const DESCRIPTIONS: &'static [(&'static __wsc::str, &'static __wsc::str)] = &[{described}];"
                ));
            }

            out.push("#[inline] fn from_values(values: &[__wsc::String]) -> __wsc::Result<Self, __wsc::ParamError>");
            out.group(Delimiter::Brace, |out| {
                if model.params.is_empty() {
                    out.push("let _ = values; __wsc::Ok(Self {})");
                    return;
                }
                // Values come in template order: the i-th parameter is `values.get(i)`. The
                // address is the literal `TEMPLATE.address()` returns.
                out.push("__wsc::Ok").group(Delimiter::Parenthesis, |out| {
                    out.push("Self").group(Delimiter::Brace, |out| {
                        for (i, p) in model.params.iter().enumerate() {
                            let ty = &p.ty;
                            out.write(format_args!("{}: ", p.field));
                            out.tokens(&quote_spanned!(model.template.span()=> __wsc::parse_param::<#ty>));
                            out.write(format_args!("({address:?}, {:?}, values.get({i}))?,", p.name));
                        }
                    });
                });
            });

            out.push("#[inline] fn to_values(&self) -> __wsc::Vec<__wsc::String>");
            out.group(Delimiter::Brace, |out| {
                if model.params.is_empty() {
                    out.push("__wsc::Vec::new()");
                    return;
                }
                out.push("__wsc::Vec::from").group(Delimiter::Parenthesis, |out| {
                    out.group(Delimiter::Bracket, |out| {
                        for p in &model.params {
                            let (field, ty) = (&p.field, &p.ty);
                            out.tokens(
                                &quote_spanned!(model.template.span()=> __wsc::format_param::<#ty>(&self.#field)),
                            );
                            out.push(",");
                        }
                    });
                });
            });
        });
    out.push("#[automatically_derived] impl __wsc::PartialEq for ")
        .tokens(params_ident)
        .push("{ #[inline] fn eq(&self, other: &Self) -> bool { __wsc::params_eq(self, other) } }");
    out.push("#[automatically_derived] impl __wsc::Display for ")
        .tokens(params_ident)
        .push(
            "{ #[inline] fn fmt(&self, f: &mut __wsc::Formatter<'_>) -> __wsc::fmt::Result { __wsc::fmt_params(self, f) } }",
        );
    out.push("#[automatically_derived] impl __wsc::FromStr for ")
        .tokens(params_ident)
        .push(
            "{
                type Err = __wsc::ParamError;
                #[inline] fn from_str(path: &__wsc::str) -> __wsc::Result<Self, Self::Err> { __wsc::Params::from_path(path) }
            }",
        );
}

/// The `Channel` impl, inside the const.
fn render_channel(model: &Model, out: &mut Source) {
    let Model {
        ident, params_ident, ..
    } = model;
    // A raw channel's annotated type only names it: its messages are raw frames.
    let message = match model.is_raw() {
        true => quote!(__wsc::Raw),
        false => ident.to_token_stream(),
    };
    let (shape, client, server) = match model.shape() {
        Shape::Symmetric => ("Symmetric", message.clone(), message),
        // `server = …` on a raw channel is reported by `check`; the messages stay `Raw`, so
        // that mistake gives no second error.
        Shape::Asymmetric(_) if model.is_raw() => ("Symmetric", message.clone(), message),
        Shape::Asymmetric(server) => ("Asymmetric", message, server.to_token_stream()),
        Shape::ServerOnly => ("ServerOnly", quote!(__wsc::NoMessage), message),
    };
    let codec = match model.codec.map(|codec| codec.value) {
        None | Some(CodecArg::Json) => "Json",
        Some(CodecArg::MsgPack) => "MsgPack",
        Some(CodecArg::Raw) => "Passthrough",
    };
    out.push("#[automatically_derived] impl __wsc::Channel for ")
        .tokens(ident)
        .group(Delimiter::Brace, |out| {
            out.write(format_args!("const NAME: &'static __wsc::str = {:?};", model.name()));
            if !model.description.is_empty() {
                out.write(format_args!(
                    "const DESCRIPTION: &'static __wsc::str = {:?};",
                    model.description
                ));
            }
            out.write(format_args!("const SHAPE: __wsc::Shape = __wsc::Shape::{shape};"));
            out.push("type Params = ").tokens(params_ident).push(";");
            out.push("type ClientMessage = ").tokens(&client).push(";");
            out.push("type ServerMessage = ").tokens(&server).push(";");
            out.write(format_args!("type Codec = __wsc::{codec};"));
            if let Some(policy) = model.on_lag {
                let variant = match policy.value {
                    OnLag::Disconnect => "Disconnect",
                    OnLag::DropOldest => "DropOldest",
                    OnLag::DropNew => "DropNew",
                };
                out.write(format_args!(
                    "const LAG_POLICY: __wsc::LagPolicy = __wsc::LagPolicy::{variant};"
                ));
            }
            if let Some(flag) = model.validate {
                render_validate(model, flag, out);
            }
            // `close` is the trait's default.
            if let Some(Spanned {
                value: OnInvalid::Reply,
                span,
            }) = model.on_invalid
            {
                let reply_trait = quote!(__wsc::ErrorReply);
                // Spanned at `reply`, so a missing `ErrorReply` impl is reported there.
                let reply = quote_spanned!(span=> <Self::ServerMessage as #reply_trait>::error_reply(error));
                out.push("#[inline] fn on_invalid(error: &__wsc::Error) -> __wsc::Option<Self::ServerMessage>")
                    .group(Delimiter::Brace, |out| {
                        out.push("__wsc::Some").group(Delimiter::Parenthesis, |out| {
                            out.tokens(&reply);
                        });
                    });
            }
        });
    if !matches!(model.shape(), Shape::ServerOnly) {
        out.push("#[automatically_derived] impl __wsc::ClientSends for ")
            .tokens(ident)
            .push("{}");
    }
}

/// `validate`: each side's messages are checked with `Validate`.
fn render_validate(model: &Model, flag: proc_macro2::Span, out: &mut Source) {
    let validate_trait = quote!(__wsc::Validate);
    let mut side = |name: &str, message: TokenStream| {
        out.write(format_args!(
            "#[inline] fn validate_{name}(message: &{message}) -> __wsc::Result<(), __wsc::ValidationError>"
        ));
        // Spanned at the `validate` argument, so a missing impl is reported there; the trait
        // path is interpolated unspanned so `unused_qualifications` never fires on it.
        let check = quote_spanned!(flag=> <#message as #validate_trait>::validate(message));
        out.group(Delimiter::Brace, |out| {
            out.tokens(&check);
        });
    };
    if !matches!(model.shape(), Shape::ServerOnly) {
        side("client", quote!(Self::ClientMessage));
    }
    side("server", quote!(Self::ServerMessage));
}
