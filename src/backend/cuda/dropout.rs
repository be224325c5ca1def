//! CUDA launcher for dropout's `MaskScale` (`src/ops/dropout.rs`, kernel in `cuda/dropout.cu`):
//! `y = x · mask · scale` elementwise. The mask is drawn on the host (same mask on every device).
//!
//! Invariants: x and mask hold the same number of elements (checked); the output is returned in the
//! inputs' dtype; nothing is launched for empty inputs.

use super::batch_norm::check_len;
use super::{gpu, suffix, CuResultExt, CudaKernel, CudaStorage};
use crate::ops::dropout::MaskScale;
use crate::{DType, Result};
use cudarc::driver::PushKernelArg;

impl CudaKernel for MaskScale {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "dropout";
        let (x, m) = (inputs[0], inputs[1]);
        let n = x.len();
        check_len(OP, "mask", m, n)?;
        let g = gpu(x.ordinal())?;
        let mut y = g.alloc(x.dtype(), n)?;
        if n > 0 {
            let f = g.func("dropout", &format!("mask_scale_{}", suffix(x.dtype())))?;
            let n64 = n as i64;
            let mut b = g.stream.launch_builder(&f);
            b.arg(&n64)
                .arg(&self.scale)
                .arg(x.buf())
                .arg(m.buf())
                .arg(y.buf_mut());
            // SAFETY: matches `mask_scale_<T>(i64, double, const T*, const T*, T*)`; x, mask and y
            // hold n elements.
            unsafe { b.launch(g.grid(n)) }.cu(OP)?;
        }
        Ok(vec![y])
    }
}
