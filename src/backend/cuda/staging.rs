//! Pinned (page-locked) staging buffers for host → device uploads, so that uploading a training batch
//! does not block the host thread.
//!
//! A copy from pageable memory is synchronous for the host: the driver stages it through its own
//! pinned buffer, and because everything on a device runs on one stream, the host waits until the
//! GPU has finished every kernel queued before the copy. From page-locked memory the copy is a true
//! asynchronous DMA: the host copies the bytes into a staging slot (a `memcpy` at host speed), enqueues
//! the transfer and goes on queueing the step's kernels while the GPU is still busy. The transfer
//! itself stays ordered on the device's one stream, after the kernels queued before it: overlapping
//! the DMA with those kernels too would need a copy stream, and the destination is allocated
//! stream-ordered on the compute stream, so the copy stream would first have to wait for it (about
//! 3 % of a ResNet-50 batch-256 step is at stake: ~77 MB of f16 at PCIe rates against a ~90 ms step).
//!
//! Slots are kept per exact byte length (a training run uploads batches of one size, plus a smaller
//! last batch), [`SLOTS`] per length used round-robin, at most [`MAX_BYTES`] pinned in all (beyond it
//! the cache is emptied and refilled). Uploads below [`MIN_BYTES`] (most parameters at start-up,
//! scalars) stay on the plain path, as do uploads whose slots alone would exceed [`MAX_BYTES`] and all
//! uploads with `ENGINE_PINNED_UPLOADS=0` (for A/B runs).
//!
//! Invariant: a slot is written by the host only after the event recorded behind its previous
//! transfer has completed. (The context runs without cudarc's event tracking, see `mod.rs`, so
//! `PinnedHostSlice`'s own event is never recorded; each slot carries its own.)

use cudarc::driver::{CudaContext, CudaEvent, CudaSlice, CudaStream, DriverError, PinnedHostSlice};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Smallest upload that is staged (smaller ones gain nothing from a DMA of their own).
const MIN_BYTES: usize = 1 << 20;
/// Slots per byte length: the batch being copied and the next one being filled.
const SLOTS: usize = 2;
/// Pinned memory this cache may hold, all lengths together.
const MAX_BYTES: usize = 1 << 30;

struct Slot {
    host: PinnedHostSlice<u8>,
    /// Recorded on the stream right after the transfer out of `host` was enqueued.
    done: CudaEvent,
}

#[derive(Default)]
pub(super) struct Staging {
    by_len: HashMap<usize, (Vec<Slot>, usize)>,
    bytes: usize,
}

/// Whether an upload of `len` bytes goes through a slot: at least [`MIN_BYTES`], small enough that
/// its slots fit in [`MAX_BYTES`], and staging on (`ENGINE_PINNED_UPLOADS`, on unless set to `0`).
pub(super) fn stages(len: usize) -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    let on = *ON.get_or_init(|| std::env::var("ENGINE_PINNED_UPLOADS").map_or(true, |v| v != "0"));
    on && len >= MIN_BYTES && SLOTS * len <= MAX_BYTES
}

impl Staging {
    /// Enqueues the copy of `src` into the first `src.len()` bytes of `dst` on `stream` through a
    /// pinned slot and returns without waiting for it.
    pub(super) fn upload(
        &mut self,
        ctx: &Arc<CudaContext>,
        stream: &Arc<CudaStream>,
        src: &[u8],
        dst: &mut CudaSlice<u8>,
    ) -> Result<(), DriverError> {
        let len = src.len();
        if !self.by_len.contains_key(&len) && self.bytes + SLOTS * len > MAX_BYTES {
            // Free the cache; its pinned memory may be freed only once no transfer reads it (a
            // PinnedHostSlice's drop waits on its own event, which is never recorded here).
            for (slots, _) in self.by_len.values() {
                for s in slots {
                    s.done.synchronize()?;
                }
            }
            self.by_len.clear();
            self.bytes = 0;
        }
        let (slots, next) = self.by_len.entry(len).or_default();
        if slots.len() < SLOTS {
            // SAFETY: the bytes are uninitialised until written below, before any transfer reads them.
            let host = unsafe { ctx.alloc_pinned::<u8>(len) }?;
            let done = ctx.new_event(None)?;
            slots.push(Slot { host, done });
            self.bytes += len;
        }
        let i = *next % slots.len();
        *next = (i + 1) % SLOTS;
        let slot = &mut slots[i];
        // The slot's previous transfer must have read it before we overwrite it.
        slot.done.synchronize()?;
        slot.host.as_mut_slice()?.copy_from_slice(src);
        stream.memcpy_htod(&slot.host, dst)?;
        slot.done.record(stream)
    }
}
