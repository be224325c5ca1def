//! Row-group launch plans shared by the row kernels (cuda/softmax.cu, cuda/loss.cu, cuda/adain.cu and
//! the plane statistics): how `rows` rows of `len` elements map onto threads, and softmax's choice.
//!
//! With `rows = outer·inner` rows, inner == 1 (contiguous rows) uses one warp per row up to
//! [`WARP_ROW_MAX`] elements and one block per row above; inner > 1 uses one thread per row
//! (coalesced over `inner`) unless there are few, long rows, then one block per row.
//!
//! Invariants: every variant is correct for any shape (the kernels grid-stride over rows), so the
//! choice is only about speed; the name is the kernels' name infix.

use super::{Launch1d, THREADS};

/// Rows of at most this many elements get one warp each.
pub const WARP_ROW_MAX: usize = 1024;
/// With inner > 1, one thread per row when there are at least this many rows…
pub const LANE_MIN_ROWS: usize = 2048;
/// …or rows at most this long.
pub const LANE_MAX_LEN: usize = 32;

/// How a row kernel is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowGroup {
    /// One warp per row, 8 rows per 256-thread block.
    Warp,
    /// One 256-thread block per row.
    Block,
    /// One thread per row.
    Lane,
}

impl RowGroup {
    /// Warp for rows of up to [`WARP_ROW_MAX`] elements, else Block.
    pub fn for_contiguous(len: usize) -> RowGroup {
        if len <= WARP_ROW_MAX {
            RowGroup::Warp
        } else {
            RowGroup::Block
        }
    }

    /// Softmax's choice for `rows` rows of `len` elements `inner` apart.
    pub fn for_softmax(rows: usize, len: usize, inner: usize) -> RowGroup {
        if inner == 1 {
            RowGroup::for_contiguous(len)
        } else if rows >= LANE_MIN_ROWS || len <= LANE_MAX_LEN {
            RowGroup::Lane
        } else {
            RowGroup::Block
        }
    }

    /// The kernel-name infix (`warp`, `block`, `lane`).
    pub fn name(self) -> &'static str {
        match self {
            RowGroup::Warp => "warp",
            RowGroup::Block => "block",
            RowGroup::Lane => "lane",
        }
    }

    /// The grid for `rows` rows on a GPU of `sm_count` SMs (capped; the kernels grid-stride).
    pub fn launch(self, rows: usize, sm_count: usize) -> Launch1d {
        let blocks = match self {
            RowGroup::Warp => rows.div_ceil(THREADS as usize / 32),
            RowGroup::Block => rows,
            RowGroup::Lane => rows.div_ceil(THREADS as usize),
        };
        Launch1d::capped(blocks, sm_count)
    }
}
