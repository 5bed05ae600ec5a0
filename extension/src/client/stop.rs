//! What stops a session from outside (pgwarm's shutdown, or the admin console's `KILL`), as a
//! future that is polled only once it has woken the session itself.
//!
//! A session's task wakes for every message in either direction, and a select polls all of its
//! futures at each wake-up; a `CancellationToken`'s future takes a lock every time. [`Stop`]
//! hands the token a waker of its own, which marks it woken before waking the task, so the
//! session's other wake-ups cost it one atomic load.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Resolves when the token is cancelled.
pub(crate) struct Stop {
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    flag: Arc<WokenFlag>,
    /// The waker the token's future is polled with: `flag`'s.
    waker: Waker,
    /// The task's waker `flag` passes wake-ups on to; kept here to see, without the lock,
    /// whether the task's waker changed.
    task: Option<Waker>,
}

/// Set when the token's future asks to be polled again.
struct WokenFlag {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for WokenFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            task.wake_by_ref();
        }
    }
}

impl Stop {
    pub(crate) fn new(token: CancellationToken) -> Stop {
        let flag = Arc::new(WokenFlag {
            woken: AtomicBool::new(false),
            task: Mutex::new(None),
        });
        Stop {
            cancelled: Box::pin(token.cancelled_owned()),
            waker: Waker::from(Arc::clone(&flag)),
            flag,
            task: None,
        }
    }
}

impl Future for Stop {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let new_task = !this.task.as_ref().is_some_and(|t| t.will_wake(cx.waker()));
        if new_task {
            // First poll, or the session moved to another task's waker: the token's future is
            // polled now, and its next wake-up reaches this waker.
            *this.flag.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
            this.task = Some(cx.waker().clone());
        }
        // Read before it is cleared, as it is rarely set: a plain load costs less than a swap.
        // Cleared before the poll: a cancel that lands after it sets it again.
        let woken = this.flag.woken.load(Ordering::Acquire)
            && this.flag.woken.swap(false, Ordering::AcqRel);
        if !woken && !new_task {
            return Poll::Pending;
        }
        this.cancelled
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::sync::atomic::AtomicUsize;

    /// Counts its wake-ups.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_cancel_wakes_the_task_and_resolves_at_the_next_poll() {
        let token = CancellationToken::new();
        let mut stop = Box::pin(Stop::new(token.clone()));
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        assert!(stop.as_mut().poll(&mut cx).is_pending());
        assert!(stop.as_mut().poll(&mut cx).is_pending(), "nothing fired");
        token.cancel();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the task was woken");
        assert!(stop.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_token_cancelled_before_the_first_poll_resolves_at_once() {
        let token = CancellationToken::new();
        token.cancel();
        let mut stop = Box::pin(Stop::new(token));
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        assert!(stop
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready());
    }

    #[tokio::test]
    async fn a_child_token_cancelled_from_another_task_ends_the_wait() {
        let parent = CancellationToken::new();
        let stop = Stop::new(parent.child_token());
        let cancel = tokio::spawn(async move {
            tokio::task::yield_now().await;
            parent.cancel();
        });
        // Polled through a select with a future that never ends, as the session does.
        let never = std::future::pending::<()>();
        let mut never = std::pin::pin!(never);
        let mut stop = std::pin::pin!(stop);
        poll_fn(|cx| match stop.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(()),
            Poll::Pending => never.as_mut().poll(cx),
        })
        .await;
        cancel.await.unwrap();
    }
}
