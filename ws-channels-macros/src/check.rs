//! The rules a declaration must follow beyond the grammar of each argument, checked on the
//! model before any code is generated. Each rule is one small function saying why.

use crate::ast::Model;
use crate::ctxt::Ctxt;

pub(crate) fn check(cx: &Ctxt, model: &Model) {
    check_no_generics(cx, model);
    check_shape(cx, model);
    check_name(cx, model);
}

/// A channel's wire format must be one concrete type, known to the router and the exports.
fn check_no_generics(cx: &Ctxt, model: &Model) {
    let generics = &model.generics;
    if !generics.params.is_empty() || generics.where_clause.is_some() {
        cx.error_spanned_by(
            generics,
            "`#[channel]` does not support generic types: a channel's messages must be one concrete type",
        );
    }
}

/// `server = T` names what the server sends; `server_only` says clients send nothing.
fn check_shape(cx: &Ctxt, model: &Model) {
    if let (Some(_), Some(flag)) = (&model.server, model.server_only) {
        cx.error_spanned(
            flag,
            "`server_only` cannot be combined with `server = …`: on a server_only channel the annotated type is what the server sends",
        );
    }
}

/// The name appears in logs and exported documents.
fn check_name(cx: &Ctxt, model: &Model) {
    if let Some(name) = &model.name {
        if name.value().trim().is_empty() {
            cx.error_spanned_by(name, "`name` must not be empty");
        }
    }
}
