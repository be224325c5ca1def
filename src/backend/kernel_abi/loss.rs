//! Launch plans of cuda/loss.cu: the pair-loss codes and chunking, and `mean_finish`'s single block.
//!
//! Invariants: `pair_code` ↔ the `switch` of `pair_partial_*`/`pair_bwd_*`; the number of pair-loss
//! chunks depends on the element count only (never on the GPU), so a loss sums in the same order on
//! every device and is bit-for-bit reproducible.

use super::Launch1d;
use crate::ops::loss::PairLossKind;

/// Elements per chunk of a pair-loss partial sum (`PAIR_CHUNK` in cuda/loss.cu).
pub const PAIR_CHUNK: usize = 8192;
/// The most chunks (partials) of a pair loss.
pub const PAIR_MAX_PARTS: usize = 1024;

/// The loss code of `pair_partial_*` and `pair_bwd_*`.
pub fn pair_code(kind: PairLossKind) -> i32 {
    match kind {
        PairLossKind::Mse => 0,
        PairLossKind::L1 => 1,
        PairLossKind::BceWithLogits => 2,
    }
}

/// Partial sums of a pair loss over `n` elements: one block each (0 for an empty input).
pub fn pair_parts(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.div_ceil(PAIR_CHUNK).clamp(1, PAIR_MAX_PARTS)
    }
}

/// `pair_partial_*`'s grid: exactly one block per partial (each writes `partial[blockIdx.x]`).
pub fn pair_partial_launch(parts: usize) -> Launch1d {
    Launch1d::exact(parts)
}

/// `mean_finish_*`'s grid: one block reduces every partial in a fixed order.
pub fn mean_finish_launch() -> Launch1d {
    Launch1d::one_block()
}
