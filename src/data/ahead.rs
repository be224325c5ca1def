//! One item ahead: runs a per-item preparation on a thread of its own, so that it overlaps the
//! consumer's work on the item before. The trainers use it to turn a loader's host batch into the
//! step's device tensors (the host-side dtype cast, the copy into a pinned staging slot, the
//! transfer it enqueues, the mixup blend) while the previous step runs: without it, the host
//! prepared batch k+1 only after step k's last synchronisation, and the GPU sat idle meanwhile.
//!
//! Invariants:
//! - Items come out in source order, each prepared exactly once; the first error is yielded and
//!   ends the iteration (nothing after it is prepared).
//! - At most one prepared item waits beyond the one the consumer holds (a rendezvous channel: the
//!   thread prepares item k+1, then blocks until the consumer asks for it), so device memory holds
//!   at most one batch more than without the thread.
//! - Ordering on the device needs no event here: everything the preparation enqueues for an item
//!   on the compute stream (kernels, and for a copy-stream upload the wait on its transfer and the
//!   copy out of its slot) is enqueued before the item crosses the channel, so it precedes every
//!   kernel the consumer launches on that stream.
//! - Dropping the iterator ends the thread (its next send fails) and joins it, so the prepared
//!   tensors are freed before the drop returns. A panic in the preparation resurfaces in the
//!   consumer's `next`.
//! - `ENGINE_PREPARE_AHEAD=0` runs the preparation inline, on the consumer's thread, for A/B runs.

use crate::Result;
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;

/// `source` mapped by `prepare`, one item ahead on a background thread (see the module docs).
pub fn prepare_ahead<I, T, F>(source: I, prepare: F) -> Ahead<T>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
    T: Send + 'static,
    F: FnMut(I::Item) -> Result<T> + Send + 'static,
{
    if !ahead_enabled() {
        return Ahead::inline(source, prepare);
    }
    Ahead::threaded(source, prepare)
}

/// Whether `prepare_ahead` uses a thread: on unless `ENGINE_PREPARE_AHEAD=0`.
pub fn ahead_enabled() -> bool {
    std::env::var("ENGINE_PREPARE_AHEAD").map_or(true, |v| v != "0")
}

/// The iterator `prepare_ahead` returns: prepared items, or the error that ended the preparation.
pub struct Ahead<T> {
    kind: Kind<T>,
}

enum Kind<T> {
    Thread {
        rx: Option<Receiver<Result<T>>>,
        handle: Option<JoinHandle<()>>,
    },
    Inline(Box<dyn Iterator<Item = Result<T>> + Send>),
}

impl<T: Send + 'static> Ahead<T> {
    /// The preparation on a background thread.
    pub fn threaded<I, F>(source: I, mut prepare: F) -> Ahead<T>
    where
        I: Iterator + Send + 'static,
        I::Item: Send + 'static,
        F: FnMut(I::Item) -> Result<T> + Send + 'static,
    {
        // Capacity 0: a prepared item waits in `send` until the consumer takes it.
        let (tx, rx) = mpsc::sync_channel(0);
        let handle = std::thread::Builder::new()
            .name("prepare-ahead".into())
            .spawn(move || {
                for item in source {
                    let prepared = prepare(item);
                    let failed = prepared.is_err();
                    if tx.send(prepared).is_err() || failed {
                        break; // consumer gone, or the error was the last item
                    }
                }
            })
            .expect("spawning the prepare-ahead thread");
        Ahead {
            kind: Kind::Thread {
                rx: Some(rx),
                handle: Some(handle),
            },
        }
    }

    /// The preparation on the consumer's thread, item by item as asked for.
    pub fn inline<I, F>(source: I, mut prepare: F) -> Ahead<T>
    where
        I: Iterator + Send + 'static,
        I::Item: Send + 'static,
        F: FnMut(I::Item) -> Result<T> + Send + 'static,
    {
        let mut failed = false;
        let it = source.map_while(move |item| {
            if failed {
                return None;
            }
            let prepared = prepare(item);
            failed = prepared.is_err();
            Some(prepared)
        });
        Ahead {
            kind: Kind::Inline(Box::new(it)),
        }
    }
}

impl<T> Iterator for Ahead<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        match &mut self.kind {
            Kind::Inline(it) => it.next(),
            Kind::Thread { rx, handle } => {
                let received = rx.as_ref()?.recv();
                match received {
                    Ok(item) => Some(item),
                    Err(_) => {
                        // The thread has ended: the source ran out, an error was sent, or it panicked.
                        *rx = None;
                        if let Some(h) = handle.take() {
                            if let Err(panic) = h.join() {
                                std::panic::resume_unwind(panic);
                            }
                        }
                        None
                    }
                }
            }
        }
    }
}

impl<T> Drop for Ahead<T> {
    fn drop(&mut self) {
        if let Kind::Thread { rx, handle } = &mut self.kind {
            // Dropping the receiver first makes the thread's pending or next send fail.
            *rx = None;
            if let Some(h) = handle.take() {
                // A panic after the consumer stopped listening has nowhere useful to go.
                let _ = h.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    fn both<T: Send + 'static>(
        make: impl Fn() -> (Vec<u32>, Box<dyn FnMut(u32) -> Result<T> + Send>),
    ) -> [Vec<Result<T>>; 2] {
        let (src, f) = make();
        let threaded: Vec<_> = Ahead::threaded(src.into_iter(), f).collect();
        let (src, f) = make();
        let inline: Vec<_> = Ahead::inline(src.into_iter(), f).collect();
        [threaded, inline]
    }

    #[test]
    fn keeps_order_and_prepares_each_item_once() {
        for out in both(|| ((0..50).collect(), Box::new(|x: u32| Ok(x * 3 + 1)))) {
            let got: Vec<u32> = out.into_iter().map(|r| r.unwrap()).collect();
            assert_eq!(got, (0..50).map(|x| x * 3 + 1).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_first_error_ends_the_iteration() {
        for out in both(|| {
            (
                (0..10).collect(),
                Box::new(|x: u32| match x {
                    4 => Err(Error::Msg("bad batch 4".into())),
                    _ => Ok(x),
                }),
            )
        }) {
            assert_eq!(out.len(), 5, "items 0..=4, nothing after the error");
            assert!(out[..4].iter().all(|r| r.is_ok()));
            assert!(out[4]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("bad batch 4"));
        }
    }

    #[test]
    fn prepares_the_next_item_while_the_consumer_holds_one() {
        let prepared = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&prepared);
        let mut it = Ahead::threaded(0u32.., move |x| {
            count.fetch_add(1, Ordering::SeqCst);
            Ok(x)
        });
        assert_eq!(it.next().unwrap().unwrap(), 0);
        // Without asking again, item 1 gets prepared (and then the thread waits to hand it over).
        let deadline = Instant::now() + Duration::from_secs(20);
        while prepared.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "item 1 was never prepared ahead");
            std::thread::sleep(Duration::from_millis(1));
        }
        // At most one item waits: item 2 is not prepared before item 1 is taken.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(prepared.load(Ordering::SeqCst), 2);
        assert_eq!(it.next().unwrap().unwrap(), 1);
    }

    #[test]
    fn dropping_early_ends_the_thread() {
        let prepared = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&prepared);
        let mut it = Ahead::threaded(0u32.., move |x| {
            count.fetch_add(1, Ordering::SeqCst);
            Ok(x)
        });
        it.next();
        it.next();
        drop(it); // joins: an endless source must not keep it alive
        let after = prepared.load(Ordering::SeqCst);
        assert!(after <= 3, "{after} items prepared for 2 taken");
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            prepared.load(Ordering::SeqCst),
            after,
            "the thread kept going"
        );
    }

    #[test]
    fn a_panic_in_the_preparation_reaches_the_consumer() {
        let mut it = Ahead::threaded(0u32..5, |x| {
            if x == 2 {
                panic!("preparation failed on item 2");
            }
            Ok(x)
        });
        assert_eq!(it.next().unwrap().unwrap(), 0);
        assert_eq!(it.next().unwrap().unwrap(), 1);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| it.next()));
        let msg = caught.unwrap_err();
        let text = msg
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| msg.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(text.contains("item 2"), "{text}");
    }
}
