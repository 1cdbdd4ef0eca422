//! Every rule a declaration must follow, checked before any code is generated.

use syn::Item;

use crate::attr::Args;
use crate::ctxt::Ctxt;

pub(crate) fn check(cx: &Ctxt, item: &Item, args: &Args) {
    check_item_kind(cx, item);
    check_no_generics(cx, item);
    check_shape(cx, args);
    check_name(cx, args);
}

/// Channels are serde messages: a struct or an enum.
fn check_item_kind(cx: &Ctxt, item: &Item) {
    match item {
        Item::Struct(_) | Item::Enum(_) => {}
        Item::Union(u) => cx.error_spanned_by(
            u.union_token,
            "`#[channel]` supports structs and enums, not unions: serde cannot (de)serialize a union",
        ),
        Item::Fn(f) => cx.error_spanned_by(&f.sig, "`#[channel]` goes on a struct or an enum, not a function"),
        other => cx.error_spanned_by(other, "`#[channel]` goes on a struct or an enum"),
    }
}

/// A channel's wire format must be one concrete type, known to the router and the exports.
fn check_no_generics(cx: &Ctxt, item: &Item) {
    let generics = match item {
        Item::Struct(s) => &s.generics,
        Item::Enum(e) => &e.generics,
        _ => return,
    };
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned_by(
            generics,
            "`#[channel]` does not support generic types: a channel's messages must be one concrete type",
        );
    }
}

/// `server = T` names what the server sends; `server_only` says clients send nothing.
fn check_shape(cx: &Ctxt, args: &Args) {
    if let (Some(_), Some(flag)) = (&args.server, &args.server_only) {
        cx.error_spanned_by(
            flag,
            "`server_only` cannot be combined with `server = …`: on a server_only channel the annotated type is what the server sends",
        );
    }
}

/// The name appears in logs and exported documents.
fn check_name(cx: &Ctxt, args: &Args) {
    if let Some(name) = &args.name {
        if name.value().trim().is_empty() {
            cx.error_spanned_by(name, "`name` must not be empty");
        }
    }
}
