//! CUDA launcher for `AdamStep` (`src/optim/adam.rs`, kernel in `cuda/adam.cu`): one elementwise
//! launch per parameter tensor, inputs `[p, g, m, v]`, new outputs `[p', m', v']` like the CPU.

use super::softmax::check_len;
use super::{gpu, suffix, CuResultExt, CudaKernel, CudaStorage};
use crate::optim::adam::AdamStep;
use crate::{DType, Result};
use cudarc::driver::PushKernelArg;

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
            let f = g.func("adam", &format!("adam_step_{}", suffix(dt)))?;
            let n64 = n as i64;
            let mut b = g.stream.launch_builder(&f);
            b.arg(&n64)
                .arg(&self.lr)
                .arg(&self.beta1)
                .arg(&self.beta2)
                .arg(&self.eps)
                .arg(&self.weight_decay)
                .arg(&self.inv_scale)
                .arg(&self.bias1)
                .arg(&self.bias2)
                .arg(p.buf())
                .arg(gr.buf())
                .arg(m.buf())
                .arg(v.buf())
                .arg(p_out.buf_mut())
                .arg(m_out.buf_mut())
                .arg(v_out.buf_mut());
            // SAFETY: matches `adam_step_<T>(i64, 8 × double, 4 × const T*, 3 × T*)`; all seven
            // buffers hold n T (checked above, outputs allocated with n).
            unsafe { b.launch(g.grid(n)) }.cu(OP)?;
        }
        Ok(vec![p_out, m_out, v_out])
    }
}
