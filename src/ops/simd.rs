//! Run-time choice of an instruction set for the CPU kernels that have an AVX2 twin.
//!
//! The crate is compiled for baseline x86-64 (SSE2: 4 f32 or 2 f64 lanes) so that the binary runs on
//! any x86-64 machine. Hot loops that are written as flat, bounds-check-free loops are compiled a
//! second time inside a `#[target_feature(enable = "avx2")]` function (the same source, so the same
//! arithmetic in the same order: results are bit-identical) and called when `avx2()` says the CPU
//! has it. `ENGINE_NO_AVX2=1` forces the baseline code, for A/B timing.

use std::sync::OnceLock;

/// Whether the CPU has AVX2 and it has not been switched off with `ENGINE_NO_AVX2=1`.
#[inline]
pub(crate) fn avx2() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        if std::env::var("ENGINE_NO_AVX2").is_ok_and(|v| v == "1") {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}
