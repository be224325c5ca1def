//! Launch plan and call of cuda/reduce.cu's `sum_thread_*` / `sum_block_*` (the op `SumKeep`).
//!
//! The input dims split into kept dims (extent equal in the output) and reduced dims; each list is
//! collapsed separately (extent-1 dims dropped, contiguous neighbours merged). One thread per output
//! when each output sums at most [`SERIAL_MAX`] elements, or when there are many outputs and the
//! innermost input dim is kept (neighbouring threads then read neighbouring addresses, e.g. a bias
//! gradient `[N, C] → [1, C]`); otherwise one block per output, grid-striding over outputs.
//!
//! Invariants: kept and reduced offsets decompose the dense input shape, so every read is below the
//! input's element count; outputs are in row-major order of the output dims.

use super::call::KernelCall;
use super::{collapse, suffix, Launch1d, StridedArgs};
use crate::{DType, Result};

/// At most this many reduced elements per output are summed by one thread.
pub const SERIAL_MAX: usize = 64;
/// With at least this many outputs, a kept innermost dim selects one thread per output.
pub const MANY_OUTPUTS: usize = 4096;

/// How a keep-dims sum of a dense input is launched.
#[derive(Clone, Copy, Debug)]
pub struct SumPlan {
    pub n_out: usize,
    /// Elements summed into each output.
    pub n_red: usize,
    pub kept: StridedArgs,
    pub reduced: StridedArgs,
    /// `sum_thread_*` (one thread per output) rather than `sum_block_*`.
    pub per_thread: bool,
}

impl SumPlan {
    /// The plan for summing a dense row-major input of `input` dims into `out` dims (each equal to
    /// the input's or 1; the caller checks that); fails when more than `MAX_DIMS` collapsed dims
    /// remain on either side.
    pub fn new(input: &[usize], out: &[usize]) -> Result<SumPlan> {
        let mut strides = vec![1usize; input.len()];
        for d in (0..input.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * input[d + 1];
        }
        let kept: Vec<usize> = (0..input.len()).filter(|&d| out[d] == input[d]).collect();
        let reduced: Vec<usize> = (0..input.len()).filter(|&d| out[d] != input[d]).collect();
        let pick = |ds: &[usize]| -> (Vec<usize>, Vec<usize>) {
            (
                ds.iter().map(|&d| input[d]).collect(),
                ds.iter().map(|&d| strides[d]).collect(),
            )
        };
        let (kd, ks) = pick(&kept);
        let (rd, rs) = pick(&reduced);
        let (kd, ks) = collapse(&kd, &[&ks]);
        let (rd, rs) = collapse(&rd, &[&rs]);
        let n_out: usize = out.iter().product();
        let n_red: usize = rd.iter().product();
        let inner_kept = kept.last().is_some_and(|&d| d + 1 == input.len());
        Ok(SumPlan {
            n_out,
            n_red,
            kept: StridedArgs::new("sum", &kd, &ks[0])?,
            reduced: StridedArgs::new("sum", &rd, &rs[0])?,
            per_thread: n_red <= SERIAL_MAX || (n_out >= MANY_OUTPUTS && inner_kept),
        })
    }

    /// The kernel's name for storage suffix `sfx`.
    pub fn kernel(&self, sfx: &str) -> String {
        let kind = if self.per_thread { "thread" } else { "block" };
        format!("sum_{kind}_{sfx}")
    }

    /// The grid: a thread per output, or a block per output, capped for `sm_count` SMs.
    pub fn launch(&self, sm_count: usize) -> Launch1d {
        if self.per_thread {
            Launch1d::per_item(self.n_out, sm_count)
        } else {
            Launch1d::capped(self.n_out, sm_count)
        }
    }

    /// The plan's call: `sum_{thread,block}_<T>(i64 n_out, i64 n_red, StridedArgs kept,
    /// StridedArgs red, const T *x, T *y)` (the kernel as [`SumPlan::kernel`] names it); x is the
    /// dense input, y holds `n_out` elements.
    pub fn call<P>(&self, dtype: DType, x: P, y: P) -> KernelCall<P> {
        KernelCall::new("reduce", self.kernel(suffix(dtype)))
            .i64(self.n_out)
            .i64(self.n_red)
            .pod(&self.kept)
            .pod(&self.reduced)
            .ptr(x)
            .ptr(y)
    }
}
