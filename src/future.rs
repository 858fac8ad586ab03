//! [`MaybeReady`]: the future the per-login trait methods return, so that an
//! answer at hand costs no allocation.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// An answer already at hand, or a boxed future of it.
///
/// What the trait methods a login calls every time return
/// ([`UserStore::find_by_link_shared`](crate::account::UserStore::find_by_link_shared),
/// [`UserStore::record_last_login`](crate::account::UserStore::record_last_login)): an
/// implementation that answers from memory returns [`ready`](MaybeReady::ready)
/// and puts nothing on the heap; one that waits returns
/// [`boxed`](MaybeReady::boxed) with an `async` block.
///
/// ```
/// use authchain::future::MaybeReady;
///
/// # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # runtime.block_on(async {
/// let now: MaybeReady<'_, u32> = MaybeReady::ready(7);
/// let later: MaybeReady<'_, u32> = MaybeReady::boxed(async { 7 });
/// assert_eq!(now.await, later.await);
/// # });
/// ```
#[must_use = "a future does nothing unless awaited"]
pub enum MaybeReady<'a, T> {
    /// The answer, at hand.
    Ready(std::future::Ready<T>),
    /// The answer, once it comes.
    Boxed(Pin<Box<dyn Future<Output = T> + Send + 'a>>),
}

impl<'a, T> MaybeReady<'a, T> {
    /// An answer already at hand.
    pub fn ready(answer: T) -> Self {
        MaybeReady::Ready(std::future::ready(answer))
    }

    /// An answer still to come (an `async` block).
    pub fn boxed(future: impl Future<Output = T> + Send + 'a) -> Self {
        MaybeReady::Boxed(Box::pin(future))
    }
}

impl<T> Future for MaybeReady<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.get_mut() {
            MaybeReady::Ready(answer) => Pin::new(answer).poll(cx),
            MaybeReady::Boxed(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for MaybeReady<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MaybeReady::Ready(_) => "MaybeReady::Ready",
            MaybeReady::Boxed(_) => "MaybeReady::Boxed",
        })
    }
}
