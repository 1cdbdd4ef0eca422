//! The handler a connection is running, and the place its message handler's futures live.
//!
//! A handler's future must live somewhere the reader can poll it again if it waits, and its
//! type is the user's: a box. Boxing every message's future anew would cost every message an
//! allocation and a free, though most handlers finish in their first poll. So a connection's
//! message handler gets a [`Runner`] at the first message of a burst: one box holding the
//! handler and room for one of its futures, where each message's future is made in place,
//! let go once the connection has read all it was sent.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::error::{Error, HandlerResult};

/// Decodes a connection's messages and calls its message handler with each, running the
/// handler's future in place, one at a time, again and again.
///
/// Not generic: the connection task that keeps one is compiled once for every channel; the
/// message's type is the runner's own.
pub(crate) trait Runner: Send {
    /// Decodes and validates a data frame (text or binary), then calls the handler with the
    /// message and puts its future in place of the previous one (dropped if it had not
    /// finished). A frame that does not decode or validate starts nothing.
    fn start(self: Pin<&mut Self>, frame: WsMessage) -> Result<(), Error>;

    /// Polls the future; once it is ready the place is empty again (`Pending` if empty).
    fn poll_run(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<HandlerResult>;

    /// Drops the future, if any.
    fn clear(self: Pin<&mut Self>);

    fn is_running(&self) -> bool;
}

/// A boxed [`Runner`], as a connection keeps one.
pub(crate) type BoxRunner = Pin<Box<dyn Runner>>;

pin_project_lite::pin_project! {
    /// The [`Runner`] of a handler `G` (shared by every connection of the channel) for one
    /// connection `K`, decoding with `Dec` (the channel's decoding, a zero-sized function:
    /// called statically, inside the one indirect call per message).
    struct InPlace<K, M, Dec, G, Fut> {
        handler: Arc<G>,
        conn: K,
        decode: Dec,
        #[pin]
        future: Option<Fut>,
        message: PhantomData<fn(M)>,
    }
}

impl<K, M, Dec, G, Fut> Runner for InPlace<K, M, Dec, G, Fut>
where
    K: Clone + Send,
    Dec: Fn(WsMessage) -> Result<M, Error> + Send,
    G: Fn(K, M) -> Fut + Send + Sync,
    Fut: Future<Output = HandlerResult> + Send,
{
    fn start(self: Pin<&mut Self>, frame: WsMessage) -> Result<(), Error> {
        let mut this = self.project();
        let message = (this.decode)(frame)?;
        this.future.set(Some((this.handler)(this.conn.clone(), message)));
        Ok(())
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

/// Makes a runner of `handler` for the connection `conn`, decoding with `decode`: called once
/// per burst of a connection's messages.
pub(crate) fn runner<K, M, Dec, G, Fut>(handler: Arc<G>, conn: K, decode: Dec) -> BoxRunner
where
    K: Clone + Send + 'static,
    M: 'static,
    Dec: Fn(WsMessage) -> Result<M, Error> + Send + 'static,
    G: Fn(K, M) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    Box::pin(InPlace {
        handler,
        conn,
        decode,
        future: None,
        message: PhantomData,
    })
}

/// How a handler ended: its result, or the payload of its panic.
pub(crate) type Outcome = Result<HandlerResult, Box<dyn std::any::Any + Send>>;

/// The handler a connection runs (at most one at a time, in order): its message handler in
/// its runner, or one of the rarer ones (`on_open`, `on_binary`) boxed.
#[derive(Default)]
pub(crate) struct Running {
    /// The message handler's runner, made at the first message of a burst.
    message: Option<BoxRunner>,
    /// A handler of another kind, running now.
    other: Option<BoxFuture<'static, HandlerResult>>,
}

impl Running {
    /// Starts the message handler on a data frame (`make` makes its runner, the first time):
    /// `Err` if the frame does not decode or validate.
    pub(crate) fn start_message(&mut self, make: impl FnOnce() -> BoxRunner, frame: WsMessage) -> Result<(), Error> {
        self.message.get_or_insert_with(make).as_mut().start(frame)
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

    fn poll(running: &mut Running) -> Poll<Outcome> {
        running.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// A text frame holding a number.
    fn frame(n: u32) -> WsMessage {
        WsMessage::text(n.to_string())
    }

    /// Decodes a number, as a channel's decoding would its message.
    fn number(frame: WsMessage) -> Result<u32, Error> {
        let text = frame.into_text().map_err(|_| Error::closed(None))?;
        text.parse().map_err(|_| Error::closed(None))
    }

    /// A runner adding each message to `runs`, for the connection `conn` (added too).
    fn counting(runs: &Arc<AtomicUsize>, conn: u32) -> BoxRunner {
        let runs = runs.clone();
        let handler = Arc::new(move |conn: u32, n: u32| {
            let runs = runs.clone();
            async move {
                runs.fetch_add((conn + n) as usize, Ordering::Relaxed);
                match n {
                    0 => Err("zero".into()),
                    _ => Ok(()),
                }
            }
        });
        runner(handler, conn, number)
    }

    #[test]
    fn the_message_runner_is_made_once_and_reused() {
        let runs = Arc::new(AtomicUsize::new(0));
        let made = AtomicUsize::new(0);
        let mut running = Running::default();
        let make = || {
            made.fetch_add(1, Ordering::Relaxed);
            counting(&runs, 0)
        };
        assert!(!running.is_running());
        for n in [1, 2, 0] {
            running.start_message(make, frame(n)).expect("decodes");
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
        running.start_message(make, frame(1)).expect("decodes");
        assert!(matches!(poll(&mut running), Poll::Ready(Ok(Ok(())))));
        assert_eq!(made.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn the_runner_passes_its_connection_and_starts_nothing_on_a_bad_frame() {
        let runs = Arc::new(AtomicUsize::new(0));
        let mut running = Running::default();
        running
            .start_message(|| counting(&runs, 10), frame(3))
            .expect("decodes");
        assert!(matches!(poll(&mut running), Poll::Ready(Ok(Ok(())))));
        assert_eq!(
            runs.load(Ordering::Relaxed),
            13,
            "the handler saw the connection and the message"
        );
        let bad = running.start_message(|| unreachable!("kept"), WsMessage::text("x"));
        assert!(bad.is_err());
        assert!(!running.is_running(), "a bad frame starts nothing");
        assert_eq!(runs.load(Ordering::Relaxed), 13);
    }

    #[test]
    fn a_waiting_handler_is_polled_again_and_a_panic_ends_it() {
        let mut running = Running::default();
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

        let boom = runner(
            Arc::new(|(), n: u32| async move {
                assert!(n > 1, "boom");
                Ok(())
            }),
            (),
            number,
        );
        running.start_message(|| boom, frame(1)).expect("decodes");
        let Poll::Ready(Err(panic)) = poll(&mut running) else {
            panic!("the panic is caught")
        };
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom"));
        assert!(!running.is_running());
        running
            .start_message(|| unreachable!("kept"), frame(2))
            .expect("decodes");
        assert!(matches!(poll(&mut running), Poll::Ready(Ok(Ok(())))));
    }
}
