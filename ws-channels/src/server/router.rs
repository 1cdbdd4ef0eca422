//! Matching request paths against channel templates: a radix router (matchit, the one axum
//! uses) that hands back what it matched and the raw parameter values it extracted. It knows
//! nothing of handlers or handshakes.

use crate::pattern::Template;

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
    /// When the template overlaps one already registered.
    pub(crate) fn insert(&mut self, template: Template, channel: &'static str, route: R) {
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
        // matchit yields parameters in the order they appear in the route: template order.
        let values = matched.params.iter().map(|(_, value)| value).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::Segment;

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
    }

    #[test]
    #[should_panic(expected = "cannot register channel `Other` at `chat/{room}/{user}`: it conflicts with `Room`")]
    fn overlapping_templates_are_refused() {
        let mut router = Router::new();
        router.insert(ROOM, "Room", 1);
        router.insert(ROOM, "Other", 2);
    }
}
