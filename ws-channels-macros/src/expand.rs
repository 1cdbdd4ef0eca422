//! The macro's entry point and the items every channel gets: the params struct with its
//! trait impls, and the `Channel` impl. The client's and the server's wrappers are rendered
//! apart (`render_client`, `render_server`); all logic is in the runtime, reached through
//! `#krate::__private`, so each channel costs the compiler a few one-line items.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Item;

use crate::ast::{Model, Shape};
use crate::attr::{CodecArg, OnInvalid, OnLag, Spanned};
use crate::ctxt::Ctxt;
use crate::pattern::Segment;
use crate::{attr, check, fallback, render_client, render_server};

/// The whole macro: parse, check, render. On error the item and the generated items are still
/// emitted beside the errors (see `fallback`), so one mistake gives one error.
pub(crate) fn channel(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: Item = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(error) => {
            let error = error.to_compile_error();
            return quote! { #input #error };
        }
    };
    let cx = Ctxt::default();
    let args = attr::parse(args, &cx);
    let model = Model::from_ast(&cx, &item, args);
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

/// Everything a channel generates.
pub(crate) fn render(model: &Model) -> TokenStream {
    let params = render_params(model);
    let params_impls = render_params_impls(model);
    let channel = render_channel(model);
    // `skip_wrappers`: the type keeps its own `publish`, `subscribe` and `register`.
    let wrappers = model.skip_wrappers.is_none().then(|| {
        let client = render_client::render(model);
        let server = render_server::render(model);
        quote! { #client #server }
    });
    let krate = &model.krate;
    quote! {
        #params
        #wrappers
        const _: () = {
            use #krate::__private as __wsc;
            #params_impls
            #channel
        };
    }
}

fn render_params(model: &Model) -> TokenStream {
    let Model {
        ident,
        vis,
        params_ident,
        krate,
        ..
    } = model;
    let template = model.template.value();
    let fields = model.params.iter().map(|p| {
        let (field, ty) = (&p.field, &p.ty);
        let doc = format!("The `{}` parameter of `{template}`.", p.name);
        quote! { #[doc = #doc] pub #field: #ty }
    });
    // `String` parameters take anything `Into<String>` (`&str`); typed ones take their type, so
    // an integer literal infers (`new("u1", 7)`).
    let args = model.params.iter().map(|p| {
        let (field, ty) = (&p.field, &p.ty);
        match p.defaulted {
            true => quote! { #field: impl ::core::convert::Into<#ty> },
            false => quote! { #field: #ty },
        }
    });
    let inits = model.params.iter().map(|p| {
        let field = &p.field;
        match p.defaulted {
            true => quote! { #field: ::core::convert::Into::into(#field) },
            false => quote! { #field },
        }
    });
    let struct_doc = format!("The path parameters of the [`{ident}`] channel, `{template}`.");
    let new_doc = format!("The parameters of one concrete `{template}` address.");
    let url_doc = format!(
        "The WebSocket URL of this `{template}` address under `base` (such as `ws://localhost:8080`), percent-encoding each parameter."
    );
    let private = quote!(#krate::__private);
    quote! {
        #[doc = #struct_doc]
        #[derive(Debug, Clone)]
        #vis struct #params_ident {
            #(#fields,)*
        }

        impl #params_ident {
            #[doc = #new_doc]
            pub fn new(#(#args),*) -> Self {
                Self { #(#inits,)* }
            }

            #[doc = #url_doc]
            pub fn url(&self, base: &::core::primitive::str) -> ::std::string::String {
                #private::url(self, base)
            }
        }

    }
}

fn render_params_impls(model: &Model) -> TokenStream {
    let Model {
        ident, params_ident, ..
    } = model;
    let address = model.address();
    let segments = model.segments.iter().map(|s| match s {
        Segment::Static(s) => quote!(__wsc::Segment::Static(#s)),
        Segment::Param { name, .. } => quote!(__wsc::Segment::Param(#name)),
    });
    let parse_fields = model.params.iter().map(|p| {
        let (field, ty, name) = (&p.field, &p.ty, &p.name);
        let parse = quote_spanned!(model.template.span()=> __wsc::parse_param::<#ty>);
        quote! { #field: #parse(<Self as __wsc::Params>::TEMPLATE.address(), #name, __values.next())? }
    });
    let from_values = if model.params.is_empty() {
        quote! { let _ = values; ::core::result::Result::Ok(Self {}) }
    } else {
        quote! {
            let mut __values = values.iter();
            ::core::result::Result::Ok(Self { #(#parse_fields,)* })
        }
    };
    let described: Vec<_> = model
        .params
        .iter()
        .filter(|p| !p.description.is_empty())
        .map(|p| {
            let (name, description) = (&p.name, &p.description);
            quote!((#name, #description))
        })
        .collect();
    let param_descriptions = (!described.is_empty()).then(|| {
        quote! {
            const DESCRIPTIONS: &'static [(&'static ::core::primitive::str, &'static ::core::primitive::str)] =
                &[#(#described),*];
        }
    });
    let to_values = model.params.iter().map(|p| {
        let field = &p.field;
        let ty = &p.ty;
        quote_spanned! {model.template.span()=> __wsc::format_param::<#ty>(&self.#field) }
    });
    quote! {
        #[automatically_derived]
        impl __wsc::Params for #params_ident {
            type Channel = #ident;
            const TEMPLATE: __wsc::Template = __wsc::Template::__new(#address, &[#(#segments),*]);
            #param_descriptions

            fn from_values(values: &[::std::string::String]) -> ::core::result::Result<Self, __wsc::ParamError> {
                #from_values
            }

            fn to_values(&self) -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![#(#to_values),*]
            }
        }

        #[automatically_derived]
        impl ::core::cmp::PartialEq for #params_ident {
            fn eq(&self, other: &Self) -> bool {
                __wsc::Params::to_values(self) == __wsc::Params::to_values(other)
            }
        }

        #[automatically_derived]
        impl ::core::fmt::Display for #params_ident {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                __wsc::fmt_params(self, f)
            }
        }

        #[automatically_derived]
        impl ::core::str::FromStr for #params_ident {
            type Err = __wsc::ParamError;

            fn from_str(path: &::core::primitive::str) -> ::core::result::Result<Self, Self::Err> {
                <Self as __wsc::Params>::from_path(path)
            }
        }
    }
}

fn render_channel(model: &Model) -> TokenStream {
    let Model {
        ident, params_ident, ..
    } = model;
    let name = model.name();
    let description = (!model.description.is_empty()).then(|| {
        let text = &model.description;
        quote! { const DESCRIPTION: &'static ::core::primitive::str = #text; }
    });
    // A raw channel's annotated type only names it: its messages are raw frames.
    let message = match model.is_raw() {
        true => quote!(__wsc::Raw),
        false => quote!(#ident),
    };
    let (shape, client, server) = match model.shape() {
        Shape::Symmetric => (quote!(Symmetric), message.clone(), message),
        // `server = …` on a raw channel is reported by `check`; the messages stay `Raw`, so
        // that mistake gives no second error.
        Shape::Asymmetric(_) if model.is_raw() => (quote!(Symmetric), message.clone(), message),
        Shape::Asymmetric(server) => (quote!(Asymmetric), message, quote!(#server)),
        Shape::ServerOnly => (quote!(ServerOnly), quote!(__wsc::NoMessage), message),
    };
    let codec = match model.codec.map(|codec| codec.value) {
        None | Some(CodecArg::Json) => quote!(__wsc::Json),
        Some(CodecArg::MsgPack) => quote!(__wsc::MsgPack),
        Some(CodecArg::Raw) => quote!(__wsc::Passthrough),
    };
    let validate = model.validate.map(|flag| {
        let validate_trait = quote!(__wsc::Validate);
        // Spanned at the `validate` argument, so a missing impl is reported there; the trait
        // path is interpolated unspanned so `unused_qualifications` never fires on it.
        let check = |ty: TokenStream| quote_spanned!(flag=> <#ty as #validate_trait>::validate(message));
        let validate_server = check(quote!(Self::ServerMessage));
        let validate_client = match model.shape() {
            Shape::ServerOnly => None,
            _ => {
                let check = check(quote!(Self::ClientMessage));
                Some(quote! {
                    fn validate_client(message: &Self::ClientMessage) -> ::core::result::Result<(), __wsc::ValidationError> {
                        #check
                    }
                })
            }
        };
        quote! {
            #validate_client
            fn validate_server(message: &Self::ServerMessage) -> ::core::result::Result<(), __wsc::ValidationError> {
                #validate_server
            }
        }
    });
    let on_invalid = match model.on_invalid {
        Some(Spanned {
            value: OnInvalid::Reply,
            span,
        }) => {
            let reply_trait = quote!(__wsc::ErrorReply);
            // Spanned at `reply`, so a missing `ErrorReply` impl is reported there.
            let reply = quote_spanned!(span=> <Self::ServerMessage as #reply_trait>::error_reply(error));
            Some(quote! {
                fn on_invalid(error: &__wsc::Error) -> ::core::option::Option<Self::ServerMessage> {
                    ::core::option::Option::Some(#reply)
                }
            })
        }
        // `close` is the trait's default.
        Some(Spanned {
            value: OnInvalid::Close,
            ..
        })
        | None => None,
    };
    let lag_policy = model.on_lag.map(|policy| {
        let variant = match policy.value {
            OnLag::Disconnect => quote!(Disconnect),
            OnLag::DropOldest => quote!(DropOldest),
            OnLag::DropNew => quote!(DropNew),
        };
        quote! { const LAG_POLICY: __wsc::LagPolicy = __wsc::LagPolicy::#variant; }
    });
    let client_sends = match model.shape() {
        Shape::ServerOnly => None,
        _ => Some(quote! {
            #[automatically_derived]
            impl __wsc::ClientSends for #ident {}
        }),
    };
    quote! {
        #[automatically_derived]
        impl __wsc::Channel for #ident {
            const NAME: &'static ::core::primitive::str = #name;
            #description
            const SHAPE: __wsc::Shape = __wsc::Shape::#shape;
            type Params = #params_ident;
            type ClientMessage = #client;
            type ServerMessage = #server;
            type Codec = #codec;
            #lag_policy
            #validate
            #on_invalid
        }
        #client_sends
    }
}
