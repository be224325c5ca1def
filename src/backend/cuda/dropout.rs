//! CUDA launcher for dropout's `MaskScale` (`src/ops/dropout.rs`, kernel in `cuda/dropout.cu`, its
//! call in `kernel_abi/dropout.rs`): `y = x · mask · scale` elementwise. The mask is drawn on the
//! host (same mask on every device).
//!
//! Invariants: x and mask hold the same number of elements (checked); the output is returned in the
//! inputs' dtype; nothing is launched for empty inputs.

use super::batch_norm::check_len;
use super::{gpu, CudaKernel, CudaStorage};
use crate::backend::kernel_abi::dropout;
use crate::ops::dropout::MaskScale;
use crate::{DType, Result};

impl CudaKernel for MaskScale {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "dropout";
        let (x, m) = (inputs[0], inputs[1]);
        let n = x.len();
        check_len(OP, "mask", m, n)?;
        let g = gpu(x.ordinal())?;
        let mut y = g.alloc(x.dtype(), n)?;
        if n > 0 {
            let call = dropout::mask_scale(
                x.dtype(),
                n,
                self.scale,
                x.dptr(g),
                m.dptr(g),
                y.dptr_mut(g),
            );
            // SAFETY: x, mask (checked) and y hold n elements.
            unsafe { g.launch(&call, g.grid(n)) }?;
        }
        Ok(vec![y])
    }
}
