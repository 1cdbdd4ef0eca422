//! The handler a connection is running, and the place its message handler's futures live.
//!
//! A handler's future must live somewhere the reader can poll it again if it waits, and its
//! type is the user's: a box. Boxing every message's future anew would cost every message an
//! allocation and a free, though most handlers finish in their first poll. So a connection's
//! message handler gets a [`Runner`] at the first message of a burst: one box holding the
//! handler and room for one of its futures, where each message's future is made in place,
//! let go once the connection has read all it was sent.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;

use crate::error::HandlerResult;

/// Calls a handler with `A` and runs its future in place, one at a time, again and again.
pub(crate) trait Runner<A>: Send {
    /// Calls the handler and puts its future in place of the previous one (dropped if it had
    /// not finished).
    fn start(self: Pin<&mut Self>, args: A);

    /// Polls the future; once it is ready the place is empty again (`Pending` if empty).
    fn poll_run(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<HandlerResult>;

    /// Drops the future, if any.
    fn clear(self: Pin<&mut Self>);

    fn is_running(&self) -> bool;
}

/// A boxed [`Runner`], as a connection keeps one.
pub(crate) type BoxRunner<A> = Pin<Box<dyn Runner<A>>>;

pin_project_lite::pin_project! {
    /// The [`Runner`] of a handler `G` (shared by every connection of the channel).
    struct InPlace<G, Fut> {
        handler: Arc<G>,
        #[pin]
        future: Option<Fut>,
    }
}

impl<A, G, Fut> Runner<A> for InPlace<G, Fut>
where
    G: Fn(A) -> Fut + Send + Sync,
    Fut: Future<Output = HandlerResult> + Send,
{
    fn start(self: Pin<&mut Self>, args: A) {
        let mut this = self.project();
        this.future.set(Some((this.handler)(args)));
    }

    fn poll_run(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<HandlerResult> {
        let mut future = self.project().future;
        let Some(running) = future.as_mut().as_pin_mut() else {
            return Poll::Pending;
        };
        let outcome = std::task::ready!(running.poll(cx));
        future.set(None);
        Poll::Ready(outcome)
    }

    fn clear(self: Pin<&mut Self>) {
        self.project().future.set(None);
    }

    fn is_running(&self) -> bool {
        self.future.is_some()
    }
}

/// Makes a runner for `handler`: called once per connection, at its first message.
pub(crate) fn runner<A, G, Fut>(handler: Arc<G>) -> BoxRunner<A>
where
    A: 'static,
    G: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    Box::pin(InPlace { handler, future: None })
}

/// A runner whose handler takes other arguments: `map` turns this runner's into the inner's
/// (a handler written before `on_connect` sees the connection without its data).
pub(crate) struct Mapped<A, B> {
    inner: BoxRunner<B>,
    map: fn(A) -> B,
}

impl<A, B> Mapped<A, B> {
    pub(crate) fn new(inner: BoxRunner<B>, map: fn(A) -> B) -> Self {
        Self { inner, map }
    }
}

impl<A: 'static, B: 'static> Runner<A> for Mapped<A, B> {
    fn start(self: Pin<&mut Self>, args: A) {
        let this = self.get_mut();
        this.inner.as_mut().start((this.map)(args));
    }

    fn poll_run(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<HandlerResult> {
        self.get_mut().inner.as_mut().poll_run(cx)
    }

    fn clear(self: Pin<&mut Self>) {
        self.get_mut().inner.as_mut().clear();
    }

    fn is_running(&self) -> bool {
        self.inner.is_running()
    }
}

/// How a handler ended: its result, or the payload of its panic.
pub(crate) type Outcome = Result<HandlerResult, Box<dyn std::any::Any + Send>>;

/// The handler a connection runs (at most one at a time, in order): its message handler in
/// its runner, or one of the rarer ones (`on_open`, `on_binary`) boxed.
pub(crate) struct Running<A> {
    /// The message handler's runner, made at the first message of a burst.
    message: Option<BoxRunner<A>>,
    /// A handler of another kind, running now.
    other: Option<BoxFuture<'static, HandlerResult>>,
}

impl<A> Default for Running<A> {
    fn default() -> Self {
        Self {
            message: None,
            other: None,
        }
    }
}

impl<A> Running<A> {
    /// Starts the message handler (`make` makes its runner, the first time).
    pub(crate) fn start_message(&mut self, make: impl FnOnce() -> BoxRunner<A>, args: A) {
        self.message.get_or_insert_with(make).as_mut().start(args);
    }

    /// Starts a handler of another kind.
    pub(crate) fn start_other(&mut self, future: BoxFuture<'static, HandlerResult>) {
        self.other = Some(future);
    }

    /// Lets the message handler's runner go, unless it runs: an idle connection keeps none,
    /// and a busy one makes it once per burst of messages.
    pub(crate) fn release(&mut self) {
        if self.message.as_ref().is_some_and(|runner| !runner.is_running()) {
            self.message = None;
        }
    }

    /// Whether a handler is running.
    pub(crate) fn is_running(&self) -> bool {
        self.other.is_some() || self.message.as_ref().is_some_and(|runner| runner.is_running())
    }

    /// Polls the running handler (`Pending` if none runs). A panic in the poll is caught and
    /// ends the handler.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| match (&mut self.other, &mut self.message) {
            (Some(other), _) => other.as_mut().poll(cx),
            (None, Some(message)) => message.as_mut().poll_run(cx),
            (None, None) => Poll::Pending,
        }));
        let outcome = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => Ok(result),
            Err(panic) => {
                // What is left of a future that panicked is not polled again. Its drop may
                // panic too: then the runner goes with it.
                if let Some(message) = &mut self.message
                    && std::panic::catch_unwind(AssertUnwindSafe(|| message.as_mut().clear())).is_err()
                {
                    self.message = None;
                }
                Err(panic)
            }
        };
        // Dropped in place, so a panic in a boxed future's drop is caught as well.
        if let Some(other) = self.other.take()
            && let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(move || drop(other)))
        {
            return Poll::Ready(outcome.and(Err(panic)));
        }
        Poll::Ready(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Waker;

    use super::*;

    fn poll<A>(running: &mut Running<A>) -> Poll<Outcome> {
        running.poll(&mut Context::from_waker(Waker::noop()))
    }

    fn counting(runs: &Arc<AtomicUsize>) -> BoxRunner<u32> {
        let runs = runs.clone();
        runner(Arc::new(move |n: u32| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(n as usize, Ordering::Relaxed);
                match n {
                    0 => Err("zero".into()),
                    _ => Ok(()),
                }
            }
        }))
    }

    #[test]
    fn the_message_runner_is_made_once_and_reused() {
        let runs = Arc::new(AtomicUsize::new(0));
        let made = AtomicUsize::new(0);
        let mut running = Running::default();
        let make = || {
            made.fetch_add(1, Ordering::Relaxed);
            counting(&runs)
        };
        assert!(!running.is_running());
        for n in [1, 2, 0] {
            running.start_message(make, n);
            assert!(running.is_running());
            let outcome = poll(&mut running);
            assert!(matches!(outcome, Poll::Ready(Ok(ref result)) if result.is_ok() == (n != 0)));
            assert!(!running.is_running());
        }
        assert_eq!(runs.load(Ordering::Relaxed), 3);
        assert_eq!(made.load(Ordering::Relaxed), 1, "one runner for the burst");
        assert!(poll(&mut running).is_pending(), "nothing runs");
        running.release();
        assert!(running.message.is_none(), "let go when idle");
        running.start_message(make, 1);
        assert!(matches!(poll(&mut running), Poll::Ready(Ok(Ok(())))));
        assert_eq!(made.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_waiting_handler_is_polled_again_and_a_panic_ends_it() {
        let mut running = Running::<u32>::default();
        let mut polls = 0;
        running.start_other(Box::pin(std::future::poll_fn(move |_| {
            polls += 1;
            match polls {
                1 => Poll::Pending,
                _ => Poll::Ready(Ok(())),
            }
        })));
        assert!(poll(&mut running).is_pending());
        assert!(running.is_running());
        running.release();
        assert!(matches!(poll(&mut running), Poll::Ready(Ok(Ok(())))));
        assert!(!running.is_running());

        let boom = runner(Arc::new(|n: u32| async move {
            assert!(n > 1, "boom");
            Ok(())
        }));
        running.start_message(|| boom, 1);
        let Poll::Ready(Err(panic)) = poll(&mut running) else {
            panic!("the panic is caught")
        };
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom"));
        assert!(!running.is_running());
        running.start_message(|| unreachable!("kept"), 2);
        assert!(matches!(poll(&mut running), Poll::Ready(Ok(Ok(())))));
    }

    #[test]
    fn mapped_runners_take_other_arguments() {
        let runs = Arc::new(AtomicUsize::new(0));
        let mut running = Running::default();
        running.start_message(|| Box::pin(Mapped::new(counting(&runs), |n: u64| n as u32 * 2)), 3);
        assert!(matches!(poll(&mut running), Poll::Ready(Ok(Ok(())))));
        assert_eq!(runs.load(Ordering::Relaxed), 6);
    }
}
