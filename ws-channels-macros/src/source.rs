//! Generated code written as Rust source text and lexed by the compiler, with the tokens that
//! must keep their own span spliced in between.
//!
//! Why not `quote!` throughout: in a user's debug build this crate runs unoptimized, and
//! `quote!` crosses the proc-macro bridge for nearly every token and every nested stream; that
//! was most of the macro's own time per channel. A stretch of text is one crossing, lexed by
//! the (optimized) compiler. The tokens are the same: lexed text gets `Span::call_site()`,
//! `quote!`'s default span, so hygiene and diagnostics do not change.
//!
//! Spliced in, by contrast: what diagnostics point at (the user's type names, parameter types
//! spanned at the template, flags), which text would re-span to the whole attribute.

use std::{fmt, iter};

use proc_macro2::{Delimiter, Group, TokenStream};
use quote::ToTokens;

pub(crate) struct Source {
    /// What is finished outside every group.
    output: TokenStream,
    /// Each open group, innermost last, with what is finished inside it.
    groups: Vec<(Delimiter, TokenStream)>,
    /// Text written since the last splice, not lexed yet. Complete tokens: string literals
    /// are written with `{:?}` (a valid, escaped literal), delimiters balance within it.
    text: String,
}

impl Source {
    pub(crate) fn new() -> Self {
        Self {
            output: TokenStream::new(),
            groups: Vec::new(),
            text: String::new(),
        }
    }

    /// Appends source text.
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends formatted source text: `out.write(format_args!("const N: &str = {name:?};"))`.
    ///
    /// Formatted by `fmt::format` into a string of its own, then appended once: `write!` into
    /// `self.text` would append each piece (and each run of a `{:?}` string) through `String`'s
    /// `fmt::Write`, which is compiled into this crate, unoptimized in a debug build, while
    /// `fmt::format` runs the standard library's optimized copy.
    pub(crate) fn write(&mut self, text: fmt::Arguments<'_>) -> &mut Self {
        self.text.push_str(&fmt::format(text));
        self
    }

    /// Appends tokens as they are, spans included.
    pub(crate) fn tokens(&mut self, tokens: &impl ToTokens) -> &mut Self {
        self.lex();
        tokens.to_tokens(self.current());
        self
    }

    /// Appends a group whose contents `write` writes: how text and splices nest (a splice
    /// inside braces cannot be part of a stretch of text that opens the braces).
    pub(crate) fn group(&mut self, delimiter: Delimiter, write: impl FnOnce(&mut Self)) -> &mut Self {
        self.lex();
        self.groups.push((delimiter, TokenStream::new()));
        write(self);
        self.lex();
        // The group pushed above: `write` closes only the groups it opens.
        if let Some((delimiter, stream)) = self.groups.pop() {
            Group::new(delimiter, stream).to_tokens(self.current());
        }
        self
    }

    pub(crate) fn finish(mut self) -> TokenStream {
        self.lex();
        self.output
    }

    fn current(&mut self) -> &mut TokenStream {
        match self.groups.last_mut() {
            Some((_, stream)) => stream,
            None => &mut self.output,
        }
    }

    fn lex(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let tokens = lex(&self.text);
        self.text.clear();
        // As one stream: `extend(tokens)` would move it over token by token.
        self.current().extend(iter::once(tokens));
    }
}

/// Lexes source text. Inside the compiler, straight through `proc_macro`: proc-macro2's
/// `FromStr` first re-lexes the text with its own lexer (to turn a malformed string into an
/// `Err` rather than a compiler error), which, unoptimized, costs more than all the rest.
/// Generated text is well-formed by construction; the unit tests, which run outside the
/// compiler, take proc-macro2's checking path over the same text.
fn lex(text: &str) -> TokenStream {
    if proc_macro::is_available() {
        let tokens: proc_macro::TokenStream = text
            .parse()
            .unwrap_or_else(|error| panic!("generated source does not lex ({error:?}): {text}"));
        return tokens.into();
    }
    text.parse()
        .unwrap_or_else(|error| panic!("generated source does not lex ({error}): {text}"))
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    #[test]
    fn text_and_splices_nest_as_written() {
        let mut out = Source::new();
        out.push("impl Trait for ")
            .tokens(&quote!(Type))
            .group(Delimiter::Brace, |out| {
                out.push("type A = ")
                    .tokens(&quote!(Vec<u8>))
                    .push("; const N: &str = \"{}\";");
            });
        assert_eq!(
            out.finish().to_string(),
            quote!(impl Trait for Type { type A = Vec<u8>; const N: &str = "{}"; }).to_string()
        );
    }

    #[test]
    fn debug_formatting_writes_valid_string_literals() {
        let text = "quote \" backslash \\ brace { newline \n tab \t nul \0 é";
        let mut out = Source::new();
        out.write(format_args!("const S: &str = {text:?};"));
        let item: syn::ItemConst = syn::parse2(out.finish()).unwrap();
        let syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) = *item.expr
        else {
            panic!("a string literal");
        };
        assert_eq!(lit.value(), text);
    }
}
