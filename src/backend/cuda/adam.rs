//! CUDA launcher for `AdamStep` (`src/optim/adam.rs`, kernel in `cuda/adam.cu`): one elementwise
//! launch per parameter tensor, inputs `[p, g, m, v]`, new outputs `[p', m', v']` like the CPU. The
//! call (kernel name, argument order) comes from `kernel_abi/adam.rs`.

use super::softmax::check_len;
use super::{gpu, CudaKernel, CudaStorage};
use crate::backend::kernel_abi::adam;
use crate::optim::adam::AdamStep;
use crate::{DType, Result};

impl CudaKernel for AdamStep {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "adam_step";
        let (p, gr, m, v) = (inputs[0], inputs[1], inputs[2], inputs[3]);
        let n = p.len();
        check_len(OP, "gradient", gr, n)?;
        check_len(OP, "first moment", m, n)?;
        check_len(OP, "second moment", v, n)?;
        let g = gpu(p.ordinal())?;
        let dt = p.dtype();
        let mut p_out = g.alloc(dt, n)?;
        let mut m_out = g.alloc(dt, n)?;
        let mut v_out = g.alloc(dt, n)?;
        if n > 0 {
            let call = adam::adam_step(
                dt,
                n,
                self,
                p.dptr(g),
                gr.dptr(g),
                m.dptr(g),
                v.dptr(g),
                p_out.dptr_mut(g),
                m_out.dptr_mut(g),
                v_out.dptr_mut(g),
            );
            // SAFETY: all seven buffers hold n T (inputs checked above, outputs allocated with n).
            unsafe { g.launch(&call, g.grid(n)) }?;
        }
        Ok(vec![p_out, m_out, v_out])
    }
}
