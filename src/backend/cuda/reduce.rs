//! CUDA launcher for `SumKeep` (`src/ops/reduce.rs`, kernels in `cuda/reduce.cu`).
//!
//! The kernel choice and grid are `SumPlan`'s (src/backend/kernel_abi/reduce.rs).
//!
//! Invariants: the output has `out_keep.numel()` elements in row-major order of `out_keep`; an output
//! whose reduced set is empty (a zero extent) is 0; nothing is launched for zero outputs.

use super::{gpu, suffix, CuResultExt, CudaKernel, CudaStorage};
use crate::backend::kernel_abi::reduce::SumPlan;
use crate::ops::reduce::SumKeep;
use crate::{DType, Error, Result};
use cudarc::driver::PushKernelArg;

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
        let f = g.func("reduce", &plan.kernel(suffix(x.dtype())))?;
        let (n_out64, n_red64) = (n_out as i64, plan.n_red as i64);
        let mut b = g.stream.launch_builder(&f);
        b.arg(&n_out64)
            .arg(&n_red64)
            .arg(&plan.kept)
            .arg(&plan.reduced)
            .arg(x.buf())
            .arg(y.buf_mut());
        // SAFETY: matches `sum_{thread,block}_<T>(i64, i64, StridedArgs, StridedArgs, const T*, T*)`;
        // kept and reduced offsets decompose the dense input shape, so every read is < x.len(), and y
        // holds n_out elements. `sum_block` gets 256 threads (a multiple of 32, ≤ 1024).
        unsafe { b.launch(g.launch_cfg(plan.launch(g.sms()))) }.cu("sum")?;
        Ok(vec![y])
    }
}
