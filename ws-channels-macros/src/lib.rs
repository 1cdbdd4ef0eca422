//! The `#[channel]` attribute of [ws-channels](https://docs.rs/ws-channels).
//!
//! An implementation detail: depend on `ws-channels`, which re-exports the macro and documents
//! it. The stages are one file each: `attr` (arguments) → `ast` (model) → `check` (rules)
//! → `expand` (render), with `pattern` holding the template grammar.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod pattern;
#[cfg(test)]
mod snapshots;

use proc_macro::TokenStream;

/// Declares a typed WebSocket channel. Documented on `ws_channels::channel`.
#[proc_macro_attribute]
pub fn channel(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::channel(args.into(), item.into()).into()
}
