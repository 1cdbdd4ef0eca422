//! The `#[channel]` attribute of [ws-channels](https://docs.rs/ws-channels).
//!
//! An implementation detail: depend on `ws-channels`, which re-exports the macro and documents
//! it. The stages are one file each: `attr` (typed arguments) → `ast` (model) → `check`
//! (rules across arguments) → `expand` (entry point and everything a channel generates), which
//! on error hands over to `fallback`; both write through `source` (source text, lexed once).
//! `pattern` holds the template grammar, `symbol` the words the macro reads or avoids, `ctxt`
//! collects errors.

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod fallback;
mod pattern;
#[cfg(test)]
mod snapshots;
mod source;
mod symbol;

use proc_macro::TokenStream;

/// Declares a typed WebSocket channel. Documented on `ws_channels::channel`.
#[proc_macro_attribute]
pub fn channel(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::channel(args.into(), item.into()).into()
}
