//! Routing a request path to the registered channel it addresses, type-erased over channels.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;

use super::conn::{self, ConnEnv};
use super::handler::Handler;
use super::handshake::{Handshake, Reject};
use super::limits::ConnectionLimits;
use crate::channel::{Channel, Params};
use crate::pattern::Template;

/// The transport of an upgraded connection, boxed so one router serves every I/O type.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

pub(crate) type BoxedIo = Box<dyn Io>;

/// What runs an accepted connection once the upgrade is done.
pub(crate) type Session<S> = Box<dyn FnOnce(WebSocketStream<BoxedIo>, ConnEnv<S>) -> BoxFuture<'static, ()> + Send>;

/// One registered channel, with its types erased.
pub(crate) trait Route<S>: Send + Sync + 'static {
    fn template(&self) -> Template;
    fn channel(&self) -> &'static str;
    /// Parses the params and runs `on_connect`; on success returns what runs the connection.
    fn accept(
        &self,
        request: Arc<http::request::Parts>,
        remote_addr: Option<SocketAddr>,
        state: Arc<S>,
        limits: &Arc<ConnectionLimits>,
    ) -> BoxFuture<'static, Result<Session<S>, Reject>>;
}

impl<C, S, D> Route<S> for Arc<Handler<C, S, D>>
where
    C: Channel,
    S: Send + Sync + 'static,
    D: Send + Sync + 'static,
{
    fn template(&self) -> Template {
        C::Params::TEMPLATE
    }

    fn channel(&self) -> &'static str {
        C::NAME
    }

    fn accept(
        &self,
        request: Arc<http::request::Parts>,
        remote_addr: Option<SocketAddr>,
        state: Arc<S>,
        limits: &Arc<ConnectionLimits>,
    ) -> BoxFuture<'static, Result<Session<S>, Reject>> {
        let handler = self.clone();
        let limits = limits.clone();
        Box::pin(async move {
            let params =
                C::Params::from_path(request.uri.path()).map_err(|error| Reject::bad_request(error.to_string()))?;
            // Counted from before `on_connect`, so concurrent handshakes cannot overshoot.
            let address = params.to_string();
            let slot = limits.acquire(&address).map_err(super::full)?;
            let handshake = Handshake::new(params.clone(), request, remote_addr, state);
            // The callbacks are called inside the caught future, so a panic in their synchronous
            // part is caught too: the handshake gets a 500, the server goes on.
            let decided = AssertUnwindSafe(async {
                let data = (handler.on_connect)(handshake).await?;
                if let Some(authorize) = &handler.authorize {
                    authorize(&data, &params)?;
                }
                Ok(data)
            })
            .catch_unwind()
            .await;
            let data = match decided {
                Ok(decision) => decision?,
                Err(_) => {
                    tracing::warn!(channel = C::NAME, "on_connect or authorize panicked");
                    return Err(Reject::new(http::StatusCode::INTERNAL_SERVER_ERROR, "internal error"));
                }
            };
            let session: Session<S> = Box::new(move |socket, mut env| {
                env.slot = Some(slot);
                Box::pin(conn::run(socket, handler, params, address, data, env))
            });
            Ok(session)
        })
    }
}

/// Every registered channel, behind a radix router on their templates.
pub(crate) struct Router<S> {
    matcher: matchit::Router<usize>,
    routes: Vec<Box<dyn Route<S>>>,
}

impl<S: 'static> Router<S> {
    pub(crate) fn new() -> Self {
        Self {
            matcher: matchit::Router::new(),
            routes: Vec::new(),
        }
    }

    /// # Panics
    ///
    /// When the template overlaps one already registered.
    pub(crate) fn insert(&mut self, route: Box<dyn Route<S>>) {
        let template = route.template();
        if let Err(error) = self.matcher.insert(template.route(), self.routes.len()) {
            let other = match &error {
                matchit::InsertError::Conflict { with } => self
                    .routes
                    .iter()
                    .find(|r| r.template().route() == *with)
                    .map_or("another channel", |r| r.channel()),
                _ => "the router",
            };
            panic!(
                "cannot register channel `{}` at `{}`: it conflicts with `{other}` ({error})",
                route.channel(),
                template.address(),
            );
        }
        self.routes.push(route);
    }

    pub(crate) fn at(&self, path: &str) -> Option<&dyn Route<S>> {
        let matched = self.matcher.at(path).ok()?;
        self.routes.get(*matched.value).map(|r| r.as_ref())
    }

    /// Every template, in the router's syntax (`/chat/{room}`).
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn routes(&self) -> Vec<String> {
        self.routes.iter().map(|r| r.template().route()).collect()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
