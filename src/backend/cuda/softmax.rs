//! CUDA launchers for `Softmax` and `SoftmaxBackward` (`src/ops/softmax.rs`, kernels in
//! `cuda/softmax.cu`), plus the length check that the loss and AdaIN launchers share.
//!
//! Strategy: `RowGroup::for_softmax` in `src/backend/kernel_abi/rows.rs` (grid mappings in
//! `cuda/softmax.cu`); the calls (kernel names, argument order) from `kernel_abi/softmax.rs`.
//!
//! Invariants: inputs hold `outer·len·inner` elements (checked); outputs are returned in the inputs'
//! dtype; nothing is launched when the output is empty.

use super::{gpu, CudaKernel, CudaStorage};
use crate::backend::kernel_abi::rows::RowGroup;
use crate::backend::kernel_abi::softmax;
use crate::ops::softmax::{Softmax, SoftmaxBackward};
use crate::{DType, Error, Result};

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
        let call = softmax::forward(
            grp,
            x.dtype(),
            rows,
            self.len,
            self.inner,
            self.log,
            x.dptr(g),
            y.dptr_mut(g),
        );
        // SAFETY: x and y hold outer·len·inner elements (checked above), every row the plan visits.
        unsafe { g.launch(&call, g.launch_cfg(grp.launch(rows, g.sms()))) }?;
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
        let call = softmax::backward(
            grp,
            y.dtype(),
            rows,
            self.len,
            self.inner,
            self.log,
            y.dptr(g),
            dy.dptr(g),
            dx.dptr_mut(g),
        );
        // SAFETY: all three buffers hold outer·len·inner elements (checked above).
        unsafe { g.launch(&call, g.launch_cfg(grp.launch(rows, g.sms()))) }?;
        Ok(vec![dx])
    }
}
