//! CUDA launchers for `Softmax` and `SoftmaxBackward` (`src/ops/softmax.rs`, kernels in
//! `cuda/softmax.cu`), plus the length check that the loss and AdaIN launchers share.
//!
//! Strategy: `RowGroup::for_softmax` in `src/backend/kernel_abi/rows.rs` (grid mappings in
//! `cuda/softmax.cu`).
//!
//! Invariants: inputs hold `outer·len·inner` elements (checked); outputs are returned in the inputs'
//! dtype; nothing is launched when the output is empty.

use super::{gpu, suffix, CuResultExt, CudaKernel, CudaStorage};
use crate::backend::kernel_abi::rows::RowGroup;
use crate::ops::softmax::{Softmax, SoftmaxBackward};
use crate::{DType, Error, Result};
use cudarc::driver::PushKernelArg;

/// Checks `s` holds exactly `n` elements (the loss and AdaIN launchers share it).
pub(super) use super::batch_norm::check_len;

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
        let grp = RowGroup::for_softmax(rows, self.len, self.inner);
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
        unsafe { b.launch(g.launch_cfg(grp.launch(rows, g.sms()))) }.cu("softmax")?;
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
        let grp = RowGroup::for_softmax(rows, self.len, self.inner);
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
        unsafe { b.launch(g.launch_cfg(grp.launch(rows, g.sms()))) }.cu("softmax_backward")?;
        Ok(vec![dx])
    }
}
