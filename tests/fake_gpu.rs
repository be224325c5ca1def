#![cfg(feature = "cuda")]
//! The fake GPU's own guarantees (cuda/fakegpu/, `scripts/test.sh`'s third stage): the device-aware
//! tests only prove the CUDA backend's stream ordering while the fake GPU stays adversarial, so these
//! pin that down through cudarc directly. Runs only where cudarc finds the fake GPU (its device name
//! says so); elsewhere (no driver, or a real GPU) it prints why and passes.
//!
//! Invariants checked:
//! - a stream's queued work runs late: a copy on stream B that does not wait for stream A's upload
//!   reads the destination's NaN poison, and the same copy after `B.wait(event recorded on A)` reads
//!   the upload (so a missing wait in the backend shows up as wrong data, not as luck);
//! - with `FAKEGPU_EAGER_STREAM` unset, stream A's upload has not run when the host reads B's result;
//! - a fresh device buffer is NaN-poisoned (0xFF bytes).

use cudarc::driver::CudaContext;
use std::sync::Arc;

/// The fake GPU's context, or None (with the reason printed) anywhere else. Under
/// `ENGINE_REQUIRE_CUDA=1` (the fake-GPU stage of `scripts/test.sh`) a missing or unusable driver
/// library fails the test instead; a real GPU is skipped either way.
fn fake_gpu() -> Option<Arc<CudaContext>> {
    let required = std::env::var("ENGINE_REQUIRE_CUDA").as_deref() == Ok("1");
    let unavailable = |why: String| {
        assert!(!required, "ENGINE_REQUIRE_CUDA=1 but {why}");
        eprintln!("skipped: {why}");
        None
    };
    // SAFETY: only tries to dlopen the driver library.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return unavailable(
            "no CUDA driver library on the loader path (the fake GPU runs in scripts/test.sh)"
                .into(),
        );
    }
    let ctx = match CudaContext::new(0) {
        Ok(ctx) => ctx,
        Err(e) => return unavailable(format!("cannot open CUDA device 0: {e}")),
    };
    let name = ctx.name().unwrap_or_default();
    if !name.contains("fake GPU") {
        eprintln!("skipped: {name} is not the fake GPU");
        return None;
    }
    Some(ctx)
}

#[test]
fn a_copy_that_does_not_wait_for_another_stream_reads_stale_bytes() {
    let Some(ctx) = fake_gpu() else { return };
    if std::env::var_os("FAKEGPU_EAGER").is_some()
        || std::env::var_os("FAKEGPU_EAGER_STREAM").is_some()
    {
        eprintln!("skipped: streams run eagerly in this run");
        return;
    }
    // SAFETY: every buffer below is used on its own stream or after an explicit wait, except the
    // deliberate race, which only reads bytes (the fake GPU's memory is host memory).
    unsafe { ctx.disable_event_tracking() };
    let a = ctx.new_stream().unwrap();
    let b = ctx.new_stream().unwrap();
    let want: Vec<f32> = (0..4096).map(|i| (i as f32).sin()).collect();
    // SAFETY: filled by the copy below before it is read in stream order (or not, on purpose).
    let mut staged = unsafe { a.alloc::<f32>(want.len()) }.unwrap();
    let mut raced = unsafe { b.alloc::<f32>(want.len()) }.unwrap();
    let mut waited = unsafe { b.alloc::<f32>(want.len()) }.unwrap();
    let fresh: Vec<f32> = b.clone_dtoh(&raced).unwrap();
    assert!(
        fresh.iter().all(|x| x.to_bits() == u32::MAX),
        "a fresh buffer is not NaN-poisoned"
    );

    a.memcpy_htod(&want, &mut staged).unwrap();
    let uploaded = ctx.new_event(None).unwrap();
    uploaded.record(&a).unwrap();
    b.memcpy_dtod(&staged, &mut raced).unwrap(); // no wait: a race on a GPU
    let got: Vec<f32> = b.clone_dtoh(&raced).unwrap();
    assert!(
        got.iter().all(|x| x.to_bits() == u32::MAX),
        "stream B's copy saw stream A's upload without waiting for it: the fake GPU ran A early, so \
         a missing wait would go unnoticed"
    );

    b.wait(&uploaded).unwrap();
    b.memcpy_dtod(&staged, &mut waited).unwrap();
    let got: Vec<f32> = b.clone_dtoh(&waited).unwrap();
    assert_eq!(
        got, want,
        "after waiting for A's event, B's copy must see the upload"
    );
    a.synchronize().unwrap();
}
