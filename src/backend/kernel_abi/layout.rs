//! Launch plans and calls of cuda/layout.cu: the dtype casts `cast_*_*`, the block copy `copy2d_*`
//! behind narrow, its backward and concat, and the strided gather `strided_copy_*` behind permute,
//! transpose, memory formats and broadcasts (or a plain memcpy when the map is dense in order).
//!
//! Invariants: a plan is checked against the buffer lengths before anything is launched: every read
//! offset is below the source's length, every write offset below the destination's, and block-copy
//! rows never overlap in the destination.

use super::call::KernelCall;
use super::{bits_suffix, collapse, extent, suffix, StridedArgs};
use crate::ops::layout::{Concat, Narrow};
use crate::{DType, Error, Result};

/// `cast_<S>_<D>(i64 n, const S* x, D* y)`: n elements converted from `from` to `to` (distinct
/// dtypes; a same-dtype "cast" is a plain copy and has no kernel).
pub fn cast<P>(from: DType, to: DType, n: usize, x: P, y: P) -> KernelCall<P> {
    KernelCall::new("layout", format!("cast_{}_{}", suffix(from), suffix(to)))
        .i64(n)
        .ptr(x)
        .ptr(y)
}

/// `dst[r·dst.0 + dst.1 + c] = src[r·src.0 + src.1 + c]` for r < rows, c < cols: `copy2d_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copy2d {
    pub rows: usize,
    pub cols: usize,
    /// (row stride, offset) of the source.
    pub src: (usize, usize),
    /// (row stride, offset) of the destination.
    pub dst: (usize, usize),
}

impl Copy2d {
    /// `Narrow`'s forward: `outer` rows of `len·inner` elements out of rows of `full·inner`.
    pub fn narrow(k: &Narrow) -> Copy2d {
        let (b, fb, s) = (k.len * k.inner, k.full * k.inner, k.start * k.inner);
        Copy2d {
            rows: k.outer,
            cols: b,
            src: (fb, s),
            dst: (b, 0),
        }
    }

    /// `Narrow`'s backward: the gradient rows back into a zeroed tensor of the full extent.
    pub fn narrow_backward(k: &Narrow) -> Copy2d {
        let (b, fb, s) = (k.len * k.inner, k.full * k.inner, k.start * k.inner);
        Copy2d {
            rows: k.outer,
            cols: b,
            src: (b, 0),
            dst: (fb, s),
        }
    }

    /// `Concat`: one block copy per input, into its column range of the output rows.
    pub fn concat(k: &Concat) -> Vec<Copy2d> {
        let row: usize = k.blocks.iter().sum();
        let mut at = 0;
        k.blocks
            .iter()
            .map(|&b| {
                let c = Copy2d {
                    rows: k.outer,
                    cols: b,
                    src: (b, 0),
                    dst: (row, at),
                };
                at += b;
                c
            })
            .collect()
    }

    /// Elements copied.
    pub fn n(&self) -> usize {
        self.rows * self.cols
    }

    /// Checks the copy against the buffers' lengths (errors name `op`).
    pub fn check(&self, op: &'static str, src_len: usize, dst_len: usize) -> Result<()> {
        if self.n() == 0 {
            return Ok(());
        }
        let src_end = (self.rows - 1) * self.src.0 + self.src.1 + self.cols;
        let dst_end = (self.rows - 1) * self.dst.0 + self.dst.1 + self.cols;
        if src_end > src_len || dst_end > dst_len || (self.rows > 1 && self.cols > self.dst.0) {
            return Err(Error::bad(
                op,
                format!(
                    "block copy out of bounds (reads to {src_end} of {src_len}, writes to {dst_end} of {dst_len})"
                ),
            ));
        }
        Ok(())
    }

    /// `copy2d_u<bits>(i64 n, i64 cols, i64 src_rs, i64 src_off, i64 dst_rs, i64 dst_off,
    /// const U* src, U* dst)` with U of `dtype`'s width (bits are moved, not converted).
    pub fn call<P>(&self, dtype: DType, src: P, dst: P) -> KernelCall<P> {
        KernelCall::new("layout", format!("copy2d_{}", bits_suffix(dtype)))
            .i64(self.n())
            .i64(self.cols)
            .i64(self.src.0)
            .i64(self.src.1)
            .i64(self.dst.0)
            .i64(self.dst.1)
            .ptr(src)
            .ptr(dst)
    }
}

/// A gather `y[i] = x[offset(i)]` over a dense output of `dims` with the input's `strides`.
#[derive(Clone, Copy, Debug)]
pub struct StridedCopyPlan {
    pub n: usize,
    /// The map reads the input densely in order: a plain copy of `n` elements, no kernel.
    pub dense: bool,
    /// The descriptor of `strided_copy_*` (collapsed dims and strides).
    pub src: StridedArgs,
}

impl StridedCopyPlan {
    /// Collapses the map and checks it against an input of `src_len` elements.
    pub fn new(dims: &[usize], strides: &[usize], src_len: usize) -> Result<StridedCopyPlan> {
        const OP: &str = "strided_copy";
        let n: usize = dims.iter().product();
        let (cd, cs) = collapse(dims, &[strides]);
        let end = extent(&cd, &cs[0]);
        if n > 0 && end > src_len {
            return Err(Error::bad(
                OP,
                format!(
                    "map reads offset {} of an input of {src_len} elements",
                    end - 1
                ),
            ));
        }
        Ok(StridedCopyPlan {
            n,
            dense: cd.len() <= 1 && cs[0].first().is_none_or(|&s| s == 1),
            src: StridedArgs::new(OP, &cd, &cs[0])?,
        })
    }

    /// `strided_copy_u<bits>(i64 n, StridedArgs a, const U* x, U* y)` with U of `dtype`'s width: the
    /// gather, for a plan that is not `dense`.
    pub fn call<P>(&self, dtype: DType, x: P, y: P) -> KernelCall<P> {
        KernelCall::new("layout", format!("strided_copy_{}", bits_suffix(dtype)))
            .i64(self.n)
            .pod(&self.src)
            .ptr(x)
            .ptr(y)
    }
}
