//! Host → device uploads through pinned (page-locked) staging slots and, for a step's inputs
//! (`CudaStorage::from_cpu_input`: batches, targets), a copy stream, so that uploading a training
//! batch neither blocks the host thread nor holds up the compute stream. Other uploads
//! (parameters, one-off tensors) take the pinned slot but transfer on the compute stream, so they
//! hold no device memory in the cache.
//!
//! A copy from pageable memory is synchronous for the host: the driver stages it through its own
//! pinned buffer and, everything else being on the compute stream, the host waits until the GPU has
//! finished every kernel queued before the copy. Here the host copies the bytes into a pinned slot
//! (a `memcpy` at host speed), and the transfer runs as a DMA on a stream of its own, concurrently
//! with the kernels already queued on the compute stream (the trainers upload batch k+1 while step k
//! runs: `data::ahead`). Per upload, with events (all enqueued under the cache's lock):
//!
//! ```text
//!   copy stream:     wait(slot.consumed) → slot.host ⇒ slot.dev → record(slot.arrived)
//!   compute stream:  wait(slot.arrived)  → slot.dev ⇒ dst (device-to-device) → record(slot.consumed)
//! ```
//!
//! The destination is allocated on the compute stream, like every other tensor; the copy stream
//! writes only the cache's own device slot `slot.dev` (allocated on the copy stream from the same
//! pool, so that pool blocks may pass between the streams, which the driver orders itself). The
//! extra device-to-device copy moves the batch at device bandwidth (~30 µs for a ResNet-50 batch of
//! 256 in f16 on an H100), where the transfer it takes off the compute stream runs at PCIe rates
//! (~3 ms). What the compute stream still waits for: its `wait(slot.arrived)` sits where the upload
//! was enqueued, so kernels queued before it run alongside the transfer and those queued after it
//! (by another thread, say) wait only if the transfer is still running when the GPU reaches that
//! point. `ENGINE_COPY_STREAM=0` enqueues the transfer from the pinned slot on the compute stream
//! instead (no device slot), for A/B runs; so does a slot whose device buffer could not be
//! allocated.
//!
//! Slots are kept per exact byte length (a training run uploads batches of one size, plus a smaller
//! last batch), [`SLOTS`] per length used round-robin, at most [`MAX_BYTES`] pinned in all (beyond it
//! the cache is emptied and refilled), and device buffers only for the lengths of step inputs
//! (2 × 154 MB for `engine train`'s f32 ResNet-50 batch of 256 on the mixup path). Uploads below
//! [`MIN_BYTES`] ([`MIN_INPUT_BYTES`] for step inputs: label-smoothed targets are 1 MB at
//! ResNet-50's batch of 256; most parameters at start-up, scalars) stay on the plain path, as do
//! uploads whose slots alone would exceed [`MAX_BYTES`] and all uploads with
//! `ENGINE_PINNED_UPLOADS=0` (for A/B runs).
//!
//! Invariants:
//! - The host writes `slot.host` only after `slot.arrived` (recorded behind the slot's previous
//!   transfer out of it) has completed; the copy stream writes `slot.dev` only after the compute
//!   stream's previous copy out of it (`slot.consumed`). An event never recorded is no wait at all.
//! - Every kernel that reads `dst` is enqueued on the compute stream after the upload returns, so
//!   it comes after the compute stream's copy into `dst` (the single-stream rule of `mod.rs`).
//! - A slot is freed only after both events have completed, or after both streams were
//!   synchronised when an upload failed midway (its events may then not cover a queued copy). The
//!   cache lives as long as its device (a static), so it has no `Drop`. (The context runs without
//!   cudarc's event tracking, see `mod.rs`, so `PinnedHostSlice`'s own event is never recorded;
//!   each slot carries its own.)

use cudarc::driver::{CudaContext, CudaEvent, CudaSlice, CudaStream, DriverError, PinnedHostSlice};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Smallest upload that is staged (smaller ones gain nothing from a DMA of their own).
const MIN_BYTES: usize = 1 << 20;
/// Smallest step input (`from_cpu_input`: batches, targets) that is staged: above the size the
/// driver copies inline, below it a pageable copy may wait for the queue to drain.
const MIN_INPUT_BYTES: usize = 64 << 10;
/// Slots per byte length: the batch being copied and the next one being filled.
const SLOTS: usize = 2;
/// Pinned memory this cache may hold, all lengths together.
const MAX_BYTES: usize = 1 << 30;

struct Slot {
    host: PinnedHostSlice<u8>,
    /// The device-side copy target of the copy stream: allocated by the first step input of this
    /// length (`None` before, without a copy stream, or when the device had no room).
    dev: Option<CudaSlice<u8>>,
    /// Recorded behind the transfer out of `host`: on the copy stream (into `dev`), or on the
    /// compute stream (straight into the destination) without a copy stream.
    arrived: CudaEvent,
    /// Recorded on the compute stream behind the copy out of `dev`.
    consumed: CudaEvent,
}

impl Slot {
    /// Blocks until nothing on the device reads or writes this slot any more.
    fn idle(&self) -> Result<(), DriverError> {
        self.arrived.synchronize()?;
        self.consumed.synchronize()
    }
}

#[derive(Default)]
pub(super) struct Staging {
    by_len: HashMap<usize, (Vec<Slot>, usize)>,
    bytes: usize,
    /// The copy stream, created on the first staged upload unless `ENGINE_COPY_STREAM=0`.
    copy: Option<Arc<CudaStream>>,
}

/// Whether an upload of `len` bytes goes through a slot: at least [`MIN_BYTES`] ([`MIN_INPUT_BYTES`]
/// for a step's input), small enough that its slots fit in [`MAX_BYTES`], and staging on
/// (`ENGINE_PINNED_UPLOADS`, on unless set to `0`).
pub(super) fn stages(len: usize, input: bool) -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    let on = *ON.get_or_init(|| std::env::var("ENGINE_PINNED_UPLOADS").map_or(true, |v| v != "0"));
    let min = if input { MIN_INPUT_BYTES } else { MIN_BYTES };
    on && len >= min && SLOTS * len <= MAX_BYTES
}

/// Whether staged transfers run on a copy stream (`ENGINE_COPY_STREAM`, on unless set to `0`).
fn copy_stream_on() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("ENGINE_COPY_STREAM").map_or(true, |v| v != "0"))
}

impl Staging {
    /// Enqueues the copy of `src` into the first `src.len()` bytes of `dst` (allocated on `stream`,
    /// the compute stream) through a pinned slot, and returns without waiting for it. `input`: a
    /// step's input, transferred on the copy stream (through the slot's device buffer, allocated
    /// on the first such upload of this length); other uploads (parameters, one-off tensors)
    /// transfer on the compute stream and hold no device buffer.
    pub(super) fn upload(
        &mut self,
        ctx: &Arc<CudaContext>,
        stream: &Arc<CudaStream>,
        src: &[u8],
        dst: &mut CudaSlice<u8>,
        input: bool,
    ) -> Result<(), DriverError> {
        let len = src.len();
        if !self.by_len.contains_key(&len) && self.bytes + SLOTS * len > MAX_BYTES {
            // Free the cache; its memory may be freed only once no transfer uses it (a
            // PinnedHostSlice's drop waits on its own event, which is never recorded here).
            for (slots, _) in self.by_len.values() {
                for s in slots {
                    s.idle()?;
                }
            }
            self.by_len.clear();
            self.bytes = 0;
        }
        if input && self.copy.is_none() && copy_stream_on() {
            self.copy = Some(ctx.new_stream()?);
        }
        if self
            .by_len
            .get(&len)
            .is_none_or(|(slots, _)| slots.len() < SLOTS)
        {
            let slot = new_slot(ctx, len)?;
            self.by_len.entry(len).or_default().0.push(slot);
            self.bytes += len;
        }
        let (slots, next) = self.by_len.get_mut(&len).expect("a slot of this length");
        let i = *next % slots.len();
        *next = (i + 1) % SLOTS;
        let slot = &mut slots[i];
        if let (true, Some(copy), None) = (input, &self.copy, &slot.dev) {
            // Without room for it, the slot transfers on the compute stream.
            // SAFETY: written by the copy stream's transfer before the compute stream copies it out.
            slot.dev = unsafe { copy.alloc::<u8>(len) }.ok();
        }
        // The slot's previous transfer must have read `host` before we overwrite it.
        slot.arrived.synchronize()?;
        slot.host.as_mut_slice()?.copy_from_slice(src);
        let copy = if input { self.copy.as_ref() } else { None };
        let queued = match (copy, &mut slot.dev) {
            (Some(copy), Some(dev)) => (|| {
                copy.wait(&slot.consumed)?;
                copy.memcpy_htod(&slot.host, dev)?;
                slot.arrived.record(copy)?;
                stream.wait(&slot.arrived)?;
                stream.memcpy_dtod(dev, dst)?;
                slot.consumed.record(stream)
            })(),
            _ => stream
                .memcpy_htod(&slot.host, dst)
                .and_then(|()| slot.arrived.record(stream)),
        };
        if queued.is_err() {
            // A copy may be in flight that the slot's events do not cover (a failed record, say,
            // after its copy was queued): wait for both streams, then drop this length's slots so
            // no later upload trusts those events.
            if let Some(copy) = &self.copy {
                let _ = copy.synchronize();
            }
            let _ = stream.synchronize();
            if let Some((slots, _)) = self.by_len.remove(&len) {
                self.bytes -= slots.len() * len;
            }
        }
        queued
    }

    /// Waits for the copy stream's queued transfers (the compute stream's own work is the
    /// caller's to wait for).
    pub(super) fn synchronize(&self) -> Result<(), DriverError> {
        match &self.copy {
            Some(copy) => copy.synchronize(),
            None => Ok(()),
        }
    }
}

/// A slot for uploads of `len` bytes: pinned host memory (its device buffer comes with the first
/// step input of this length).
fn new_slot(ctx: &Arc<CudaContext>, len: usize) -> Result<Slot, DriverError> {
    // SAFETY: the bytes are uninitialised until `upload` writes them, before any transfer reads them.
    let host = unsafe { ctx.alloc_pinned::<u8>(len) }?;
    Ok(Slot {
        host,
        dev: None,
        arrived: ctx.new_event(None)?,
        consumed: ctx.new_event(None)?,
    })
}
