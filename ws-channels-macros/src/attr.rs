//! The `#[channel(…)]` arguments, parsed through one allow-list.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Ident, LitStr, Token, Type};

use crate::ctxt::Ctxt;

/// Every argument after the template, in the order the documentation lists them.
const KNOWN: &[&str] = &[
    "server",
    "server_only",
    "validate",
    "on_invalid",
    "on_lag",
    "name",
    "crate",
];

/// The `on_invalid` policies, as written.
const INVALID_POLICIES: &[&str] = &["close", "reply"];

/// The `on_lag` policies, as written.
const LAG_POLICIES: &[&str] = &["disconnect", "drop_oldest", "drop_new"];

/// What to do with a client frame that does not decode or validate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnInvalid {
    Close,
    Reply,
}

#[derive(Default)]
pub(crate) struct Args {
    pub(crate) template: Option<LitStr>,
    pub(crate) server: Option<Type>,
    pub(crate) server_only: Option<Ident>,
    pub(crate) validate: Option<Ident>,
    pub(crate) on_invalid: Option<(OnInvalid, Ident)>,
    /// One of [`LAG_POLICIES`].
    pub(crate) on_lag: Option<Ident>,
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<syn::Path>,
}

/// Parses the arguments; every problem goes to `cx` and parsing goes on where it can.
pub(crate) fn parse(tokens: TokenStream, cx: &Ctxt) -> Args {
    let mut args = Args::default();
    let parser = |input: ParseStream<'_>| parse_args(input, &mut args, cx);
    if let Err(error) = parser.parse2(tokens) {
        cx.syn_error(error);
    }
    args
}

fn parse_args(input: ParseStream<'_>, args: &mut Args, cx: &Ctxt) -> syn::Result<()> {
    if input.is_empty() {
        return Err(syn::Error::new(
            proc_macro2::Span::call_site(),
            "expected the channel address template, e.g. `#[channel(\"user/events/<userId>\")]`",
        ));
    }
    args.template = Some(input.parse::<LitStr>().map_err(|e| {
        syn::Error::new(
            e.span(),
            "the first argument of `channel` must be the address template as a string literal, e.g. `#[channel(\"user/events/<userId>\")]`",
        )
    })?);
    while !input.is_empty() {
        input.parse::<Token![,]>()?;
        if input.is_empty() {
            break;
        }
        let key = Ident::parse_any(input)?;
        let has_value = input.peek(Token![=]);
        if has_value {
            input.parse::<Token![=]>()?;
        }
        let name = key.to_string();
        match name.as_str() {
            "server" => {
                let ty = expect_value(input, &key, has_value, "a type: `server = ChatEvent`", |i| i.parse())?;
                set(cx, &key, &mut args.server, ty);
            }
            "server_only" => set(cx, &key, &mut args.server_only, flag(cx, input, &key, has_value)?),
            "validate" => set(cx, &key, &mut args.validate, flag(cx, input, &key, has_value)?),
            "on_invalid" => {
                let policy = policy(cx, input, &key, has_value, INVALID_POLICIES)?;
                let policy = policy.map(|v| match v.to_string().as_str() {
                    "reply" => (OnInvalid::Reply, v),
                    _ => (OnInvalid::Close, v),
                });
                set(cx, &key, &mut args.on_invalid, policy);
            }
            "on_lag" => {
                let policy = policy(cx, input, &key, has_value, LAG_POLICIES)?;
                set(cx, &key, &mut args.on_lag, policy);
            }
            "name" => {
                let lit = expect_value(input, &key, has_value, "a string: `name = \"userEvents\"`", |i| {
                    i.parse()
                })?;
                set(cx, &key, &mut args.name, lit);
            }
            "crate" => {
                let lit: Option<LitStr> = expect_value(
                    input,
                    &key,
                    has_value,
                    "a path string: `crate = \"ws_channels\"`",
                    |i| i.parse(),
                )?;
                let path = lit.and_then(|lit| match lit.parse::<syn::Path>() {
                    Ok(path) => Some(path),
                    Err(_) => {
                        cx.error_spanned_by(
                            &lit,
                            format!(
                                "`crate` expects a path such as `\"ws_channels\"`, found `{}`",
                                lit.value()
                            ),
                        );
                        None
                    }
                });
                set(cx, &key, &mut args.krate, path);
            }
            _ => {
                cx.error_spanned_by(
                    &key,
                    format!(
                        "unknown `channel` argument `{name}`, expected one of: {}",
                        KNOWN.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    ),
                );
                skip_value(input, has_value)?;
            }
        }
    }
    Ok(())
}

/// A policy argument (`on_invalid = reply`): one of `known`; anything else is reported.
fn policy(
    cx: &Ctxt,
    input: ParseStream<'_>,
    key: &Ident,
    has_value: bool,
    known: &[&str],
) -> syn::Result<Option<Ident>> {
    let choices = match known {
        [first, .., last] => {
            let middle: Vec<String> = known[1..known.len() - 1].iter().map(|k| format!("`{k}`")).collect();
            let head = std::iter::once(format!("`{first}`"))
                .chain(middle)
                .collect::<Vec<_>>()
                .join(", ");
            format!("{head} or `{last}`")
        }
        _ => known.iter().map(|k| format!("`{k}`")).collect(),
    };
    let expected = format!("{choices}: `{key} = {}`", known.last().copied().unwrap_or_default());
    let value: Option<Ident> = expect_value(input, key, has_value, &expected, |i| i.parse())?;
    Ok(value.filter(|v| {
        let valid = known.contains(&v.to_string().as_str());
        if !valid {
            cx.error_spanned_by(v, format!("unknown `{key}` policy `{v}`, expected {choices}"));
        }
        valid
    }))
}

/// Records an argument, or reports it as a duplicate spanned on its second use.
fn set<T>(cx: &Ctxt, key: &Ident, slot: &mut Option<T>, value: Option<T>) {
    let Some(value) = value else { return };
    if slot.is_some() {
        cx.error_spanned_by(key, format!("duplicate `channel` argument `{key}`"));
    } else {
        *slot = Some(value);
    }
}

/// A flag takes no value; one given anyway is reported and skipped.
fn flag(cx: &Ctxt, input: ParseStream<'_>, key: &Ident, has_value: bool) -> syn::Result<Option<Ident>> {
    if has_value {
        cx.error_spanned_by(key, format!("`{key}` takes no value: write `{key}` alone"));
        skip_value(input, true)?;
    }
    Ok(Some(key.clone()))
}

fn expect_value<T>(
    input: ParseStream<'_>,
    key: &Ident,
    has_value: bool,
    expected: &str,
    parse: impl FnOnce(ParseStream<'_>) -> syn::Result<T>,
) -> syn::Result<Option<T>> {
    if !has_value {
        return Err(syn::Error::new(key.span(), format!("`{key}` expects {expected}")));
    }
    parse(input)
        .map(Some)
        .map_err(|e| syn::Error::new(e.span(), format!("`{key}` expects {expected}")))
}

/// Skips an unknown argument's value, up to the next comma.
fn skip_value(input: ParseStream<'_>, has_value: bool) -> syn::Result<()> {
    if has_value {
        while !input.is_empty() && !input.peek(Token![,]) {
            input.parse::<proc_macro2::TokenTree>()?;
        }
    }
    Ok(())
}
