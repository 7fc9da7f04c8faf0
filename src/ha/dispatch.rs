//! The slave's dispatch pipeline: a placed replicated chunk is dispatched (consume queues,
//! index, long-poll wake-ups: `Store::dispatch_replicated`) while the session places the next
//! chunk, writes its Ack and reads the next frame. Everything runs on the shard's one task, so
//! the overlap is of waits (consume-queue block writes, ring room, the socket), not of CPU.
//!
//! Owns at most one dispatch in flight ([`Pipeline`]); a chunk is handed over only after the
//! previous one's dispatch finished, so dispatches run in log order and the slave holds at most
//! three Data frames (one dispatching, one being placed, one read ahead).
//!
//! The slave acknowledges only dispatched bytes (`slave::ack`), so a SYNC_MASTER send that got
//! its slave's Ack finds its record pullable on the slave, as before the split; the session
//! acknowledges again as soon as a dispatch finishes.
//!
//! Must never: drop a dispatch in flight on a normal return or an error (the session drains it
//! before it returns, so a truncation or the next session starts from a quiesced reput), or
//! let a chunk be dispatched before the one placed ahead of it.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;

use rmq_net::ha::Data;
use rmq_storage::error::StorageError;
use rmq_storage::store::{PlacedChunk, Store};

type Dispatching<'a> = Pin<Box<dyn Future<Output = Result<(), StorageError>> + 'a>>;

/// The one chunk dispatch in flight, if any.
pub(super) struct Pipeline<'a> {
    store: &'a Store,
    in_flight: Option<Dispatching<'a>>,
    /// The error of a dispatch that finished while something else was awaited.
    failed: Option<StorageError>,
    /// A dispatch finished inside [`Self::alongside`] and [`Self::settled`] has not reported it
    /// yet. Without it, a dispatch that finished while the session wrote an Ack computed
    /// before it would never be acknowledged until the next frame or heartbeat: a SYNC_MASTER
    /// whose sends all waited on that Ack stalled for seconds (measured: 256-1,280 send
    /// timeouts in 15 s runs of SYNC_MASTER + SYNC_FLUSH at 128 B).
    finished_unreported: bool,
}

impl<'a> Pipeline<'a> {
    pub(super) fn new(store: &'a Store) -> Self {
        Self {
            store,
            in_flight: None,
            failed: None,
            finished_unreported: false,
        }
    }

    /// Runs `main` to completion while the dispatch in flight makes progress.
    ///
    /// # Errors
    /// The dispatch's error, if it failed (after `main` completed; its output is dropped).
    pub(super) async fn alongside<T>(
        &mut self,
        main: impl Future<Output = T>,
    ) -> Result<T, StorageError> {
        let mut main = pin!(main);
        let output = poll_fn(|cx| {
            if let Some(in_flight) = self.in_flight.as_mut() {
                if let Poll::Ready(result) = in_flight.as_mut().poll(cx) {
                    self.in_flight = None;
                    self.finished_unreported = true;
                    if let Err(error) = result {
                        self.failed.get_or_insert(error);
                    }
                }
            }
            main.as_mut().poll(cx)
        })
        .await;
        match self.failed.take() {
            Some(error) => Err(error),
            None => Ok(output),
        }
    }

    /// Finishes the dispatch in flight, then starts dispatching `placed` (from `data`'s bytes,
    /// which the dispatch keeps until it is done).
    ///
    /// # Errors
    /// The previous dispatch's error (`placed` is then left to the next reput).
    pub(super) async fn hand_over(
        &mut self,
        data: Data,
        placed: PlacedChunk,
    ) -> Result<(), StorageError> {
        self.drain().await?;
        assert!(self.in_flight.is_none(), "one dispatch in flight");
        let store = self.store;
        self.in_flight = Some(Box::pin(async move {
            store.dispatch_replicated(&data.bytes, placed).await
        }));
        Ok(())
    }

    /// Resolves when the dispatch in flight finishes, or at once if one finished inside
    /// [`Self::alongside`] since the last call (never, if neither). Cancel-safe: dropped
    /// before that, the dispatch stays in flight.
    ///
    /// # Errors
    /// The dispatch's error.
    pub(super) async fn settled(&mut self) -> Result<(), StorageError> {
        poll_fn(|cx| {
            if std::mem::take(&mut self.finished_unreported) {
                return Poll::Ready(self.failed.take().map_or(Ok(()), Err));
            }
            let Some(in_flight) = self.in_flight.as_mut() else {
                return Poll::Pending;
            };
            let result = std::task::ready!(in_flight.as_mut().poll(cx));
            self.in_flight = None;
            Poll::Ready(result)
        })
        .await
    }

    /// Waits for the dispatch in flight (if any) to finish.
    ///
    /// # Errors
    /// Its error, or that of one which finished earlier and was not reported yet.
    pub(super) async fn drain(&mut self) -> Result<(), StorageError> {
        if let Some(in_flight) = self.in_flight.take() {
            let result = in_flight.await;
            if let Err(error) = result {
                self.failed.get_or_insert(error);
            }
        }
        match self.failed.take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::Context;

    use rmq_storage::file::{scratch_dir_on_real_disk, Disk};
    use rmq_storage::store::StoreConfig;

    use super::*;

    /// Pending at its first `polls` polls (waking its task each time), then done.
    fn after_polls(mut polls: u32) -> impl Future<Output = ()> {
        poll_fn(move |cx: &mut Context<'_>| {
            if polls == 0 {
                return Poll::Ready(());
            }
            polls -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        })
    }

    #[test]
    fn a_dispatch_that_finishes_alongside_is_reported_by_settled() {
        let root = scratch_dir_on_real_disk("ha-pipeline").expect("scratch");
        compio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(async {
                let (store, _) = Store::open(StoreConfig::new(&root), Disk::real())
                    .await
                    .expect("store");
                let mut pipeline = Pipeline::new(&store);
                // The dispatch finishes on its second poll, while `main` (the Ack being
                // written) still has three to go.
                pipeline.in_flight = Some(Box::pin(async {
                    after_polls(1).await;
                    Ok(())
                }));
                pipeline.alongside(after_polls(3)).await.expect("no error");
                assert!(pipeline.in_flight.is_none(), "finished alongside");
                {
                    let mut settled = pin!(pipeline.settled());
                    let once = poll_fn(|cx| Poll::Ready(settled.as_mut().poll(cx))).await;
                    assert!(
                        matches!(once, Poll::Ready(Ok(()))),
                        "the finish is reported, so the session acknowledges it"
                    );
                }
                {
                    let mut idle = pin!(pipeline.settled());
                    let again = poll_fn(|cx| Poll::Ready(idle.as_mut().poll(cx))).await;
                    assert!(again.is_pending(), "reported once; nothing in flight now");
                }
                store.close().await.expect("close");
            });
        std::fs::remove_dir_all(&root).ok();
    }
}
