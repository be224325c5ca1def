//! CUDA launchers for `Softmax` and `SoftmaxBackward` (`src/ops/softmax.rs`, kernels in
//! `cuda/softmax.cu`), plus the row-group launch helper that the loss and AdaIN launchers share.
//!
//! Strategy (see the grid mappings in `cuda/softmax.cu`): with `rows = outer·inner` lanes of `len`
//! elements, inner == 1 uses one warp per row up to 1024 elements and one block per row above; inner > 1
//! uses one thread per row (coalesced over `inner`) unless there are few, long rows, then one block per
//! row (strided reads, but the work is spread over the block).
//!
//! Invariants: inputs hold `outer·len·inner` elements (checked); outputs are returned in the inputs'
//! dtype; nothing is launched when the output is empty.

use super::{gpu, suffix, CuResultExt, CudaKernel, CudaStorage, Gpu, THREADS};
use crate::ops::softmax::{Softmax, SoftmaxBackward};
use crate::{DType, Error, Result};
use cudarc::driver::{LaunchConfig, PushKernelArg};

/// Rows of at most this many elements get one warp each.
pub(super) const WARP_ROW_MAX: usize = 1024;
/// With inner > 1, one thread per row when there are at least this many rows or rows this short.
const LANE_MIN_ROWS: usize = 2048;
const LANE_MAX_LEN: usize = 32;

/// How a row kernel is launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RowGroup {
    /// One warp per row, 8 rows per 256-thread block.
    Warp,
    /// One 256-thread block per row.
    Block,
    /// One thread per row.
    Lane,
}

impl RowGroup {
    /// Warp for rows up to `WARP_ROW_MAX` elements, else Block.
    pub(super) fn for_contiguous(len: usize) -> RowGroup {
        if len <= WARP_ROW_MAX {
            RowGroup::Warp
        } else {
            RowGroup::Block
        }
    }
    /// The kernel-name infix (`warp`, `block`, `lane`).
    pub(super) fn name(self) -> &'static str {
        match self {
            RowGroup::Warp => "warp",
            RowGroup::Block => "block",
            RowGroup::Lane => "lane",
        }
    }
    /// Grid for `rows` rows (grid-stride in the kernels, so any cap is correct).
    pub(super) fn config(self, g: &Gpu, rows: usize) -> LaunchConfig {
        let cap = g.sm_count() as usize * 32;
        let blocks = match self {
            RowGroup::Warp => rows.div_ceil(THREADS as usize / 32),
            RowGroup::Block => rows,
            RowGroup::Lane => rows.div_ceil(THREADS as usize),
        }
        .clamp(1, cap) as u32;
        LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

fn pick(rows: usize, len: usize, inner: usize) -> RowGroup {
    if inner == 1 {
        RowGroup::for_contiguous(len)
    } else if rows >= LANE_MIN_ROWS || len <= LANE_MAX_LEN {
        RowGroup::Lane
    } else {
        RowGroup::Block
    }
}

/// Checks `s` holds exactly `n` elements.
pub(super) fn check_len(op: &'static str, what: &str, s: &CudaStorage, n: usize) -> Result<()> {
    if s.len() != n {
        return Err(Error::bad(
            op,
            format!("{what} holds {} elements, kernel needs {n}", s.len()),
        ));
    }
    Ok(())
}

fn geometry(op: &'static str, outer: usize, len: usize, inner: usize) -> Result<usize> {
    outer
        .checked_mul(len)
        .and_then(|v| v.checked_mul(inner))
        .ok_or_else(|| Error::bad(op, "outer·len·inner overflows"))
}

impl CudaKernel for Softmax {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let x = inputs[0];
        let n = geometry("softmax", self.outer, self.len, self.inner)?;
        check_len("softmax", "x", x, n)?;
        let g = gpu(x.ordinal())?;
        let mut y = g.alloc(x.dtype(), n)?;
        if n == 0 {
            return Ok(vec![y]);
        }
        let rows = self.outer * self.inner;
        let grp = pick(rows, self.len, self.inner);
        let f = g.func(
            "softmax",
            &format!("softmax_{}_{}", grp.name(), suffix(x.dtype())),
        )?;
        let (rows64, len64, inner64) = (rows as i64, self.len as i64, self.inner as i64);
        let log = self.log as i32;
        let mut b = g.stream.launch_builder(&f);
        b.arg(&rows64)
            .arg(&len64)
            .arg(&inner64)
            .arg(&log)
            .arg(x.buf())
            .arg(y.buf_mut());
        // SAFETY: matches `softmax_{warp,block,lane}_<T>(i64, i64, i64, int, const T*, T*)`; every row
        // index decomposes into offsets < outer·len·inner = x.len() = y.len(); 256 threads per block.
        unsafe { b.launch(grp.config(g, rows)) }.cu("softmax")?;
        Ok(vec![y])
    }
}

impl CudaKernel for SoftmaxBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let (y, dy) = (inputs[0], inputs[1]);
        let n = geometry("softmax_backward", self.outer, self.len, self.inner)?;
        check_len("softmax_backward", "y", y, n)?;
        check_len("softmax_backward", "dy", dy, n)?;
        let g = gpu(y.ordinal())?;
        let mut dx = g.alloc(y.dtype(), n)?;
        if n == 0 {
            return Ok(vec![dx]);
        }
        let rows = self.outer * self.inner;
        let grp = pick(rows, self.len, self.inner);
        let f = g.func(
            "softmax",
            &format!("softmax_bwd_{}_{}", grp.name(), suffix(y.dtype())),
        )?;
        let (rows64, len64, inner64) = (rows as i64, self.len as i64, self.inner as i64);
        let log = self.log as i32;
        let mut b = g.stream.launch_builder(&f);
        b.arg(&rows64)
            .arg(&len64)
            .arg(&inner64)
            .arg(&log)
            .arg(y.buf())
            .arg(dy.buf())
            .arg(dx.buf_mut());
        // SAFETY: matches `softmax_bwd_{warp,block,lane}_<T>(i64, i64, i64, int, const T*, const T*,
        // T*)`; all three buffers hold outer·len·inner elements (checked above).
        unsafe { b.launch(grp.config(g, rows)) }.cu("softmax_backward")?;
        Ok(vec![dx])
    }
}
