//! The slave's dispatch pipeline: a placed replicated chunk is dispatched (consume queues,
//! index, long-poll wake-ups: `Store::dispatch_replicated`) while the session places the next
//! chunk, writes its Ack and reads the next frame. Everything runs on the shard's one task, so
//! the overlap is of waits (consume-queue block writes, ring room, the socket), not of CPU.
//!
//! Owns at most one dispatch in flight ([`Pipeline`]); a chunk is handed over only after the
//! previous one's dispatch finished, so dispatches run in log order and the slave holds at most
//! three Data frames (one dispatching, one being placed, one read ahead).
//!
//! The slave acknowledges a chunk once it is placed, before its dispatch (`slave::ack`): a
//! SYNC_MASTER's round trip does not include the slave's consume-queue and index work.
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
}

impl<'a> Pipeline<'a> {
    pub(super) fn new(store: &'a Store) -> Self {
        Self {
            store,
            in_flight: None,
            failed: None,
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

    /// Resolves when the dispatch in flight finishes (never, if none is in flight): the
    /// session awaits it beside its socket and timers so that the dispatch progresses while
    /// the session waits. Cancel-safe: dropped before that, the dispatch stays in flight.
    ///
    /// # Errors
    /// The dispatch's error.
    pub(super) async fn settled(&mut self) -> Result<(), StorageError> {
        poll_fn(|cx| {
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
