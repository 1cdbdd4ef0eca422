//! Collects every error so a user sees all their mistakes in one build (serde's `Ctxt`).

use std::cell::RefCell;
use std::fmt::Display;
use std::thread;

use proc_macro2::Span;
use quote::ToTokens;

/// The errors of one macro call. It must end in `check`: dropping it unchecked panics, since
/// its errors would be lost and the macro would emit code for a declaration it knows is wrong.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
    /// Set by `check`, which hands the errors over; the drop guard reads it.
    checked: bool,
}

impl Ctxt {
    /// An error spanning `tokens` (from its first to its last token).
    pub(crate) fn error_spanned_by<T: ToTokens, M: Display>(&self, tokens: T, message: M) {
        self.errors.borrow_mut().push(syn::Error::new_spanned(tokens, message));
    }

    /// An error at one span (a flag, a policy value).
    pub(crate) fn error_spanned<M: Display>(&self, span: Span, message: M) {
        self.errors.borrow_mut().push(syn::Error::new(span, message));
    }

    pub(crate) fn syn_error(&self, error: syn::Error) {
        self.errors.borrow_mut().push(error);
    }

    /// All errors combined into one, or `Ok` when there were none.
    pub(crate) fn check(mut self) -> syn::Result<()> {
        self.checked = true;
        let mut errors = self.errors.take().into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            combined.combine(error);
        }
        Err(combined)
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        // Not while unwinding: a second panic would abort and hide the first.
        if !self.checked && !thread::panicking() {
            panic!("forgot to check for errors");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "forgot to check for errors")]
    fn an_unchecked_context_panics() {
        let cx = Ctxt::default();
        cx.error_spanned(Span::call_site(), "lost");
        drop(cx);
    }

    #[test]
    #[should_panic(expected = "forgot to check for errors")]
    fn an_unchecked_context_panics_without_errors_too() {
        // Whether there were errors is only known by checking.
        drop(Ctxt::default());
    }

    #[test]
    fn check_combines_every_error() {
        let cx = Ctxt::default();
        cx.error_spanned(Span::call_site(), "first");
        cx.syn_error(syn::Error::new(Span::call_site(), "second"));
        let messages: Vec<String> = match cx.check() {
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
            Ok(()) => Vec::new(),
        };
        assert_eq!(messages, ["first", "second"]);
        assert!(Ctxt::default().check().is_ok());
    }
}
