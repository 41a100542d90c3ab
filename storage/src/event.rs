//! A single-shard notification: waiters re-check their condition after each notify.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub(crate) struct Event {
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    generation: u64,
    wakers: Vec<Waker>,
}

impl Event {
    /// Wakes every current listener.
    pub fn notify(&self) {
        let wakers = {
            let mut inner = self.inner.borrow_mut();
            inner.generation += 1;
            std::mem::take(&mut inner.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    /// A future that resolves at the next `notify` after this call.
    pub fn listen(&self) -> Listener<'_> {
        Listener {
            event: self,
            generation: self.inner.borrow().generation,
        }
    }
}

pub(crate) struct Listener<'a> {
    event: &'a Event,
    generation: u64,
}

impl Future for Listener<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.event.inner.borrow_mut();
        if inner.generation != self.generation {
            return Poll::Ready(());
        }
        if !inner.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            inner.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
