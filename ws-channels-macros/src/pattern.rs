//! The address template grammar, checked at compile time.
//!
//! ```text
//! template  = ["/"] segment *("/" segment)
//! segment   = static / param
//! static    = 1*( unreserved / sub-delims / ":" / "@" )      ; RFC 3986 pchar without "%"
//! param     = "<" spec ">" / "{" spec "}"                     ; fills the whole segment
//! spec      = name [":" type]                                 ; type defaults to String
//! name      = (ALPHA / "_") *(ALPHA / DIGIT / "_")
//! ```
//!
//! Every problem is reported, one message per bad segment. The runtime never parses a
//! template: it gets the checked segments as data.

/// One checked segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Static(String),
    Param { name: String, ty: Option<String> },
}

/// Parses a template into segments, or returns every problem found.
#[cfg(test)]
pub(crate) fn parse(template: &str) -> Result<Vec<Segment>, Vec<String>> {
    let (segments, errors) = parse_partial(template);
    if errors.is_empty() { Ok(segments) } else { Err(errors) }
}

/// Parses a template into the segments that make sense, and every problem found.
///
/// The segments are a best guess even when there are problems: a bad segment is left out, an
/// unclosed parameter (`<userId`) is read as if closed, a second parameter with the same field
/// is left out. That guess is what the macro generates on error, so code using the channel
/// compiles against the parameters the user meant and shows no second error.
pub(crate) fn parse_partial(template: &str) -> (Vec<Segment>, Vec<String>) {
    if template.is_empty() || template == "/" {
        return (Vec::new(), vec!["the channel address template is empty".to_owned()]);
    }
    let body = template.strip_prefix('/').unwrap_or(template);
    let mut segments = Vec::new();
    let mut errors = Vec::new();
    for raw in body.split('/') {
        match parse_segment(raw, template) {
            Ok(segment) => segments.push(segment),
            Err((error, guess)) => {
                errors.push(error);
                segments.extend(guess);
            }
        }
    }
    remove_duplicates(&mut segments, template, &mut errors);
    (segments, errors)
}

/// A segment, or why it is wrong and the segment the user probably meant.
fn parse_segment(raw: &str, template: &str) -> Result<Segment, (String, Option<Segment>)> {
    if raw.is_empty() {
        return Err((
            format!("empty segment in `{template}`: remove the doubled or trailing `/`"),
            None,
        ));
    }
    let close = match raw.as_bytes()[0] {
        b'<' => '>',
        b'{' => '}',
        _ => return parse_static(raw, template).map_err(|error| (error, None)),
    };
    let open = &raw[..1];
    let Some(inner) = raw[1..].strip_suffix(close) else {
        if raw.contains(close) {
            return Err((
                format!("a parameter must fill its whole segment: `{raw}` in `{template}`"),
                None,
            ));
        }
        let error = format!("unclosed `{open}` in segment `{raw}` of `{template}`: add `{close}`");
        return Err((error, parse_param(&raw[1..], raw, template).ok()));
    };
    parse_param(inner, raw, template).map_err(|error| (error, None))
}

/// The inside of `<…>`: `name` or `name: Type`.
fn parse_param(inner: &str, raw: &str, template: &str) -> Result<Segment, String> {
    let (name, ty) = match inner.split_once(':') {
        Some((name, ty)) => (name.trim(), Some(ty.trim())),
        None => (inner.trim(), None),
    };
    if name.is_empty() {
        return Err(format!("empty parameter name in segment `{raw}` of `{template}`"));
    }
    if !is_identifier(name) {
        return Err(format!(
            "invalid parameter name `{name}` in `{template}`: use letters, digits and `_`, not starting with a digit"
        ));
    }
    if ty == Some("") {
        return Err(format!("missing type after `:` in segment `{raw}` of `{template}`"));
    }
    Ok(Segment::Param {
        name: name.to_owned(),
        ty: ty.map(str::to_owned),
    })
}

fn parse_static(raw: &str, template: &str) -> Result<Segment, String> {
    if raw.contains(['<', '>', '{', '}']) {
        return Err(format!(
            "a parameter must fill its whole segment: `{raw}` in `{template}`"
        ));
    }
    if let Some(bad) = raw.chars().find(|c| !is_path_char(*c)) {
        return Err(format!(
            "character `{}` is not allowed in segment `{raw}` of `{template}`: static segments use letters, digits and `-._~!$&'()*+,;=:@`",
            bad.escape_default()
        ));
    }
    Ok(Segment::Static(raw.to_owned()))
}

/// Two parameters with one name, or two names with one field name, cannot both be fields:
/// each one after the first is reported and left out.
fn remove_duplicates(segments: &mut Vec<Segment>, template: &str, errors: &mut Vec<String>) {
    let mut seen: Vec<(String, String)> = Vec::new();
    segments.retain(|segment| {
        let Segment::Param { name, .. } = segment else {
            return true;
        };
        let field = to_snake_case(name);
        match seen.iter().find(|(_, f)| *f == field) {
            Some((first, _)) if first == name => {
                errors.push(format!("parameter `{name}` appears twice in `{template}`"));
                false
            }
            Some((first, _)) => {
                errors.push(format!(
                    "parameters `{first}` and `{name}` of `{template}` would both become the field `{field}`"
                ));
                false
            }
            None => {
                seen.push((name.clone(), field));
                true
            }
        }
    });
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "_"
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c)
}

/// `userId` → `user_id`, `HTTPCode` → `http_code`, `event_type` unchanged.
pub(crate) fn to_snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = prev.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(|p| p.is_ascii_uppercase()) && next.is_some_and(|n| n.is_ascii_lowercase()));
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The address in AsyncAPI's `{name}` form, which the runtime and exported documents use.
pub(crate) fn canonical(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            Segment::Static(s) => s.clone(),
            Segment::Param { name, .. } => format!("{{{name}}}"),
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn param(name: &str, ty: Option<&str>) -> Segment {
        Segment::Param {
            name: name.into(),
            ty: ty.map(Into::into),
        }
    }

    #[test]
    fn parses_both_bracket_forms_and_types() {
        assert_eq!(
            parse("/user/events/<userId>/{eventType}/<n: u64>").unwrap(),
            vec![
                Segment::Static("user".into()),
                Segment::Static("events".into()),
                param("userId", None),
                param("eventType", None),
                param("n", Some("u64")),
            ]
        );
    }

    #[test]
    fn reports_every_bad_segment() {
        let errors = parse("a//<x/<>/<1a>/b?c/<x: >").unwrap_err();
        assert_eq!(errors.len(), 6, "{errors:#?}");
        assert!(errors[0].starts_with("empty segment"));
        assert!(errors[1].starts_with("unclosed `<`"));
        assert!(errors[2].starts_with("empty parameter name"));
        assert!(errors[3].starts_with("invalid parameter name `1a`"));
        assert!(errors[4].starts_with("character `?`"));
        assert!(errors[5].starts_with("missing type"));
    }

    #[test]
    fn duplicates_by_name_and_by_field() {
        assert_eq!(
            parse("<a>/<a>").unwrap_err(),
            ["parameter `a` appears twice in `<a>/<a>`"]
        );
        assert!(parse("<userId>/<user_id>").unwrap_err()[0].contains("both become the field `user_id`"));
    }

    #[test]
    fn a_broken_template_still_yields_the_parameters_meant() {
        let (segments, errors) = parse_partial("user//<userId/<room>/<room>/<x y>");
        assert_eq!(errors.len(), 4, "{errors:#?}");
        assert_eq!(
            segments,
            [
                Segment::Static("user".into()),
                param("userId", None),
                param("room", None)
            ]
        );
    }

    #[test]
    fn partial_segments_are_rejected() {
        assert!(parse("user<id>").unwrap_err()[0].contains("whole segment"));
        assert!(parse("<id>.json").unwrap_err()[0].contains("whole segment"));
    }

    #[test]
    fn snake_case() {
        for (from, to) in [
            ("userId", "user_id"),
            ("HTTPCode", "http_code"),
            ("event_type", "event_type"),
            ("a1B", "a1_b"),
        ] {
            assert_eq!(to_snake_case(from), to);
        }
    }

    fn segment() -> impl Strategy<Value = Segment> {
        prop_oneof![
            "[a-zA-Z0-9._~!$&'()*+,;=:@-]{1,8}".prop_map(Segment::Static),
            (
                "[a-z][a-z0-9]{0,6}",
                prop::option::of(prop_oneof![Just("u64"), Just("String")])
            )
                .prop_map(|(name, ty)| Segment::Param {
                    name,
                    ty: ty.map(str::to_owned)
                }),
        ]
    }

    fn render(segments: &[Segment], angle: bool) -> String {
        segments
            .iter()
            .map(|s| match s {
                Segment::Static(s) => s.clone(),
                Segment::Param { name, ty } => {
                    let spec = ty.as_ref().map_or(name.clone(), |t| format!("{name}: {t}"));
                    if angle {
                        format!("<{spec}>")
                    } else {
                        format!("{{{spec}}}")
                    }
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    proptest! {
        /// render → parse gives back the same segments, in either bracket form.
        #[test]
        fn render_then_parse_round_trips(segments in prop::collection::vec(segment(), 1..6), angle in any::<bool>()) {
            let mut names = std::collections::HashSet::new();
            prop_assume!(segments.iter().all(|s| match s {
                Segment::Param { name, .. } => names.insert(name.clone()),
                Segment::Static(_) => true,
            }));
            prop_assert_eq!(parse(&render(&segments, angle)).unwrap(), segments);
        }

        /// Any input either parses or yields messages; it never panics.
        #[test]
        fn arbitrary_templates_never_panic(template in ".{0,40}") {
            let _ = parse(&template);
        }
    }
}
