//! Matching request paths against channel templates: a radix router (matchit, the one axum
//! uses) that hands back what it matched and the raw parameter values it extracted. It knows
//! nothing of handlers or handshakes.

use crate::pattern::{Segment, Template};

/// Routes by template to values of type `R`.
pub(crate) struct Router<R> {
    matcher: matchit::Router<usize>,
    routes: Vec<Entry<R>>,
}

struct Entry<R> {
    template: Template,
    channel: &'static str,
    route: R,
}

/// A matched path: the route, and its parameter values in template order, still
/// percent-encoded (as they appear in the path).
pub(crate) struct Matched<'r, 'p, R> {
    pub(crate) route: &'r R,
    pub(crate) values: Vec<&'p str>,
}

impl<R> Router<R> {
    pub(crate) fn new() -> Self {
        Self {
            matcher: matchit::Router::new(),
            routes: Vec::new(),
        }
    }

    /// # Panics
    ///
    /// When the template overlaps one already registered: some path would match both (`files/list`
    /// and `files/<name>`). The router would pick the static one, so a typed client of the other
    /// sending that value would silently land on a channel it does not speak.
    pub(crate) fn insert(&mut self, template: Template, channel: &'static str, route: R) {
        if let Some(other) = self.routes.iter().find(|entry| overlap(&entry.template, &template)) {
            panic!(
                "cannot register channel `{channel}` at `{}`: it overlaps channel `{}` at `{}` (a path \
                 can match both, and a client of one could land on the other); give them distinct \
                 static segments",
                template.address(),
                other.channel,
                other.template.address(),
            );
        }
        if let Err(error) = self.matcher.insert(template.route(), self.routes.len()) {
            let other = match &error {
                matchit::InsertError::Conflict { with } => self
                    .routes
                    .iter()
                    .find(|entry| entry.template.route() == *with)
                    .map_or("another channel", |entry| entry.channel),
                _ => "the router",
            };
            panic!(
                "cannot register channel `{channel}` at `{}`: it conflicts with `{other}` ({error})",
                template.address(),
            );
        }
        self.routes.push(Entry {
            template,
            channel,
            route,
        });
    }

    pub(crate) fn at<'r, 'p>(&'r self, path: &'p str) -> Option<Matched<'r, 'p, R>> {
        let matched = self.matcher.at(path).ok()?;
        let entry = self.routes.get(*matched.value)?;
        // matchit yields parameters in the order they appear in the route: template order. It
        // matches an empty segment before the last one (`/pair//x`), which no template does.
        let values: Vec<&str> = matched.params.iter().map(|(_, value)| value).collect();
        if values.iter().any(|value| value.is_empty()) {
            return None;
        }
        Some(Matched {
            route: &entry.route,
            values,
        })
    }

    /// Every template, in the router's syntax (`/chat/{room}`).
    #[cfg(feature = "axum")]
    pub(crate) fn routes(&self) -> impl Iterator<Item = String> + '_ {
        self.routes.iter().map(|entry| entry.template.route())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// Whether some path matches both templates: as many segments, and no position where both are
/// static and differ.
fn overlap(a: &Template, b: &Template) -> bool {
    a.segments().len() == b.segments().len()
        && a.segments().iter().zip(b.segments()).all(|pair| match pair {
            (Segment::Static(x), Segment::Static(y)) => x == y,
            _ => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: Template = Template::__new(
        "chat/{room}/{user}",
        &[Segment::Static("chat"), Segment::Param("room"), Segment::Param("user")],
    );

    #[test]
    fn hands_over_the_raw_values_in_template_order() {
        let mut router = Router::new();
        router.insert(ROOM, "Room", 7);
        let matched = router.at("/chat/a%20b/z").unwrap();
        assert_eq!((*matched.route, matched.values), (7, vec!["a%20b", "z"]));
        assert!(router.at("/chat/a").is_none());
        assert!(router.at("/chat/a/b/").is_none());
        assert!(router.at("/chat//b").is_none(), "an empty parameter is no match");
    }

    #[test]
    #[should_panic(expected = "cannot register channel `Other` at `chat/{room}/{user}`: it overlaps channel `Room`")]
    fn the_same_shape_is_refused() {
        let mut router = Router::new();
        router.insert(ROOM, "Room", 1);
        router.insert(ROOM, "Other", 2);
    }

    const FILE: Template = Template::__new("files/{name}", &[Segment::Static("files"), Segment::Param("name")]);
    const LIST: Template = Template::__new("files/list", &[Segment::Static("files"), Segment::Static("list")]);
    const USER: Template = Template::__new("users/{id}", &[Segment::Static("users"), Segment::Param("id")]);

    #[test]
    #[should_panic(
        expected = "cannot register channel `FileList` at `files/list`: it overlaps channel `FileEvent` at `files/{name}`"
    )]
    fn a_static_template_inside_a_parameter_is_refused() {
        let mut router = Router::new();
        router.insert(FILE, "FileEvent", 1);
        router.insert(LIST, "FileList", 2);
    }

    #[test]
    fn distinct_shapes_coexist() {
        let mut router = Router::new();
        router.insert(FILE, "FileEvent", 1);
        router.insert(USER, "User", 2);
        router.insert(ROOM, "Room", 3);
        assert_eq!(router.at("/files/list").map(|m| *m.route), Some(1));
        assert_eq!(router.at("/users/list").map(|m| *m.route), Some(2));
    }
}
