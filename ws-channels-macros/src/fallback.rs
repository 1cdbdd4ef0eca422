//! What the macro emits beside its errors (thiserror's `fallback.rs`).
//!
//! Code elsewhere names the params struct and calls the channel's functions; if a broken
//! declaration generated nothing, every such use would add an error ("cannot find type
//! `UserEventsParams`", "no function named `register`") to the one mistake. So the fallback
//! renders the same items as a valid declaration, from the model's best guess (the template's
//! good segments, the arguments that parsed). Their bodies are the same one-line calls into the
//! runtime that stubs would have, and they cannot drift from the real signatures.

use proc_macro2::TokenStream;

use crate::ast::Model;
use crate::expand;

pub(crate) fn render(model: &Model) -> TokenStream {
    // Impls for a generic type would need generic parameters the macro does not support: they
    // would only add errors about what the user was already told.
    if model.is_generic() {
        return TokenStream::new();
    }
    expand::render(model)
}
