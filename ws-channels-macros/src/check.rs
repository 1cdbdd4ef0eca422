//! The rules a declaration must follow beyond the grammar of each argument, checked on the
//! model before any code is generated. Each rule is one small function saying why.

use crate::ast::Model;
use crate::ctxt::Ctxt;

pub(crate) fn check(cx: &Ctxt, model: &Model) {
    check_no_generics(cx, model);
    check_shape(cx, model);
    check_name(cx, model);
    check_raw(cx, model);
}

/// A raw channel's messages are `Raw` frames both ways, delivered verbatim: there is no typed
/// server message, nothing for serde to validate, no typed error to reply with.
fn check_raw(cx: &Ctxt, model: &Model) {
    let Some(codec) = model.codec.filter(|_| model.is_raw()) else {
        return;
    };
    let conflicts = [
        (model.server.is_some(), "`server = …`"),
        (model.validate.is_some(), "`validate`"),
        (
            model
                .on_invalid
                .is_some_and(|p| p.value == crate::attr::OnInvalid::Reply),
            "`on_invalid = reply`",
        ),
    ];
    for (_, what) in conflicts.iter().filter(|(present, _)| *present) {
        cx.error_spanned(
            codec.span,
            format!("{what} does not apply to a `codec = raw` channel: its messages are `ws_channels::Raw` frames both ways, delivered verbatim"),
        );
    }
}

/// A channel's wire format must be one concrete type, known to the router and the exports.
fn check_no_generics(cx: &Ctxt, model: &Model) {
    if model.is_generic() {
        cx.error_spanned_by(
            &model.generics,
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
    if let Some(name) = &model.name
        && name.value().trim().is_empty()
    {
        cx.error_spanned_by(name, "`name` must not be empty");
    }
}
