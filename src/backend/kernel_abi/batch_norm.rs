//! Launch plans of cuda/batch_norm.cu: how many blocks share one channel's reduction, the vector
//! width of the `_v` kernels, the reduction grid, and the dtype the big outputs are written in.
//!
//! Invariants: a channel is split over several blocks only while each block keeps at least
//! [`MIN_ITEMS_PER_BLOCK`] items; 16-byte vector kernels (`_v`) are picked only when a plane's length
//! is a multiple of the vector width and every big buffer is 16-byte aligned (the caller says which).

use super::Launch1d;
use crate::DType;

/// Threads per block of the per-channel reductions (`BN_THREADS` in cuda/batch_norm.cu).
pub const BN_THREADS: u32 = 256;
/// A channel is split over several blocks only while each block keeps at least this many items.
pub const MIN_ITEMS_PER_BLOCK: usize = 4096;
/// The reductions aim for this many blocks per SM in total.
pub const REDUCE_BLOCKS_PER_SM: usize = 8;

/// Blocks per channel for a reduction over `items` items per channel on a GPU of `sm_count` SMs:
/// enough blocks in total to fill the GPU, but no block with fewer than [`MIN_ITEMS_PER_BLOCK`].
pub fn splits(sm_count: usize, c: usize, items: usize) -> usize {
    let target = sm_count * REDUCE_BLOCKS_PER_SM;
    let want = target.div_ceil(c.max(1));
    want.min(items.div_ceil(MIN_ITEMS_PER_BLOCK)).max(1)
}

/// The grid of `bn_stats_*` / `bn_bwd_reduce_*`: exactly `blocks` (= channels × splits) blocks.
pub fn reduce_launch(blocks: usize) -> Launch1d {
    Launch1d {
        blocks: blocks.clamp(1, i32::MAX as usize) as u32,
        threads: BN_THREADS,
    }
}

/// Elements per 16-byte vector of `dtype`.
pub fn vec_width(dtype: DType) -> usize {
    16 / dtype.size_in_bytes()
}

/// `(V, "v" | "s")`: the vector width and kernel-name suffix for planes of `hw` elements of `dtype`,
/// when `all_aligned` says every big buffer starts on a 16-byte boundary.
pub fn pick_vec(hw: usize, dtype: DType, all_aligned: bool) -> (usize, &'static str) {
    let vw = vec_width(dtype);
    if hw % vw == 0 && all_aligned {
        (vw, "v")
    } else {
        (1, "s")
    }
}

/// The big outputs' dtype (y, dx, dresidual): f16 when the op asked for f16 and the inputs were
/// widened to f32 (written straight in f16: one rounding, like the CPU runner), else the inputs'.
pub fn big_out_dtype(input: DType, requested: DType) -> DType {
    if input == DType::F32 && requested == DType::F16 {
        DType::F16
    } else {
        input
    }
}
