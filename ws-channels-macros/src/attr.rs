//! The `#[channel(…)]` arguments, parsed through one allow-list (`symbol::ARGUMENTS`) into
//! typed values that keep the span of what the user wrote.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Ident, LitStr, Token, Type};

use crate::ctxt::Ctxt;
use crate::symbol::{ARGUMENTS, Arg};

/// A value and the span of the tokens it was parsed from, for diagnostics.
#[derive(Clone, Copy)]
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// What to do with a client frame that does not decode or validate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnInvalid {
    Close,
    Reply,
}

/// What a slow reader loses; mirrors the runtime's `LagPolicy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnLag {
    Disconnect,
    DropOldest,
    DropNew,
}

/// How messages travel; mirrors the runtime's codecs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodecArg {
    Json,
    MsgPack,
    Raw,
}

/// A policy argument: a closed set of values, each written as one identifier.
trait Policy: Copy + 'static {
    /// Every value as written, in the order the documentation lists them; the last one is
    /// the example in "expects" messages.
    const CHOICES: &'static [(&'static str, Self)];
}

impl Policy for OnInvalid {
    const CHOICES: &'static [(&'static str, Self)] = &[("close", Self::Close), ("reply", Self::Reply)];
}

impl Policy for CodecArg {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("json", Self::Json), ("msgpack", Self::MsgPack), ("raw", Self::Raw)];
}

impl Policy for OnLag {
    const CHOICES: &'static [(&'static str, Self)] = &[
        ("disconnect", Self::Disconnect),
        ("drop_oldest", Self::DropOldest),
        ("drop_new", Self::DropNew),
    ];
}

/// The parsed arguments. Flags are the span of the flag; everything is `None` when absent or
/// when its value was reported as wrong.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) template: Option<LitStr>,
    pub(crate) server: Option<Type>,
    pub(crate) server_only: Option<Span>,
    pub(crate) validate: Option<Span>,
    pub(crate) on_invalid: Option<Spanned<OnInvalid>>,
    pub(crate) on_lag: Option<Spanned<OnLag>>,
    pub(crate) codec: Option<Spanned<CodecArg>>,
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
            Span::call_site(),
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
        let Some(arg) = Arg::from_name(&name) else {
            cx.error_spanned_by(
                &key,
                format!(
                    "unknown `channel` argument `{name}`, expected one of: {}",
                    ARGUMENTS
                        .iter()
                        .map(|(known, _)| format!("`{known}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            skip_value(input, has_value)?;
            continue;
        };
        match arg {
            Arg::Server => {
                let ty = expect_value(input, &key, has_value, "a type: `server = ChatEvent`", |i| i.parse())?;
                set(cx, &key, &mut args.server, ty);
            }
            Arg::ServerOnly => set(cx, &key, &mut args.server_only, flag(cx, input, &key, has_value)?),
            Arg::Validate => set(cx, &key, &mut args.validate, flag(cx, input, &key, has_value)?),
            Arg::OnInvalid => set(cx, &key, &mut args.on_invalid, policy(cx, input, &key, has_value)?),
            Arg::OnLag => set(cx, &key, &mut args.on_lag, policy(cx, input, &key, has_value)?),
            Arg::Codec => set(cx, &key, &mut args.codec, policy(cx, input, &key, has_value)?),
            Arg::Name => {
                let lit = expect_value(input, &key, has_value, "a string: `name = \"userEvents\"`", |i| {
                    i.parse()
                })?;
                set(cx, &key, &mut args.name, lit);
            }
            Arg::Crate => {
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
        }
    }
    Ok(())
}

/// A policy argument (`on_invalid = reply`): one of `P::CHOICES`; anything else is reported
/// on the value.
fn policy<P: Policy>(
    cx: &Ctxt,
    input: ParseStream<'_>,
    key: &Ident,
    has_value: bool,
) -> syn::Result<Option<Spanned<P>>> {
    let names: Vec<String> = P::CHOICES.iter().map(|(name, _)| format!("`{name}`")).collect();
    let choices = match names.split_last() {
        Some((last, init)) if !init.is_empty() => format!("{} or {last}", init.join(", ")),
        _ => names.concat(),
    };
    let example = P::CHOICES.last().map_or("", |(name, _)| name);
    let expected = format!("{choices}: `{key} = {example}`");
    let value: Option<Ident> = expect_value(input, key, has_value, &expected, |i| i.parse())?;
    Ok(value.and_then(|ident| {
        let found = P::CHOICES.iter().find(|(name, _)| ident == name);
        if found.is_none() {
            cx.error_spanned_by(&ident, format!("unknown `{key}` policy `{ident}`, expected {choices}"));
        }
        found.map(|&(_, value)| Spanned {
            value,
            span: ident.span(),
        })
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

/// A flag takes no value; one given anyway is reported and skipped. Yields the flag's span.
fn flag(cx: &Ctxt, input: ParseStream<'_>, key: &Ident, has_value: bool) -> syn::Result<Option<Span>> {
    if has_value {
        cx.error_spanned_by(key, format!("`{key}` takes no value: write `{key}` alone"));
        skip_value(input, true)?;
    }
    Ok(Some(key.span()))
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
