//! CUDA launcher for `SumKeep` (`src/ops/reduce.rs`, kernels in `cuda/reduce.cu`).
//!
//! The kernel choice, grid and call (kernel name, argument list) are `SumPlan`'s
//! (src/backend/kernel_abi/reduce.rs).
//!
//! Invariants: the output has `out_keep.numel()` elements in row-major order of `out_keep`; an output
//! whose reduced set is empty (a zero extent) is 0; nothing is launched for zero outputs.

use super::{gpu, CudaKernel, CudaStorage};
use crate::backend::kernel_abi::reduce::SumPlan;
use crate::ops::reduce::SumKeep;
use crate::{DType, Error, Result};

impl CudaKernel for SumKeep {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let x = inputs[0];
        let ind = self.input.dims();
        let outd = self.out_keep.dims();
        if ind.len() != outd.len()
            || ind.iter().zip(outd).any(|(&i, &o)| o != i && o != 1)
            || x.len() != self.input.numel()
        {
            return Err(Error::shape(
                "sum",
                &self.input,
                &self.out_keep,
                "output must keep or reduce (to 1) every input dim",
            ));
        }
        let g = gpu(x.ordinal())?;
        let n_out = self.out_keep.numel();
        let mut y = g.alloc(x.dtype(), n_out)?;
        if n_out == 0 {
            return Ok(vec![y]);
        }
        let plan = SumPlan::new(ind, outd)?;
        debug_assert_eq!(plan.n_out, n_out);
        let call = plan.call(x.dtype(), x.dptr(g), y.dptr_mut(g));
        // SAFETY: kept and reduced offsets decompose the dense input shape, so every read is
        // < x.len(), and y holds n_out = plan.n_out elements. `sum_block` gets 256 threads (a
        // multiple of 32, ≤ 1024).
        unsafe { g.launch(&call, g.launch_cfg(plan.launch(g.sms()))) }?;
        Ok(vec![y])
    }
}
