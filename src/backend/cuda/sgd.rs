//! CUDA launchers for `SgdStep` and `AllFinite` (`src/optim/sgd.rs`, kernels in `cuda/sgd.cu`).
//!
//! `SgdStep` is one elementwise launch per parameter tensor (inputs `[p, g, buf]`, outputs
//! `[p', buf']`, new buffers like the CPU). `AllFinite` is a flag kernel (integer atomicOr per block)
//! followed by a one-thread kernel that writes the f32 answer, so no host synchronisation happens until
//! the caller reads the result.
//!
//! `cuda/sgd.cu` also holds `multi_tensor_all_finite_*` and `multi_tensor_sgd_*`, the one-launch-for-all-
//! parameters variants (unscale, inf/NaN check, momentum/Nesterov, per-tensor weight decay, f32 master
//! → f16 copy, in place); their argument layout is documented there. They have no launcher yet: the
//! optimiser calls `SgdStep` per tensor today.

use super::softmax::check_len;
use super::{gpu, suffix, CuResultExt, CudaKernel, CudaStorage};
use crate::optim::sgd::{AllFinite, SgdStep};
use crate::{DType, Result};
use cudarc::driver::{LaunchConfig, PushKernelArg};

impl CudaKernel for SgdStep {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "sgd_step";
        let (p, gr, buf) = (inputs[0], inputs[1], inputs[2]);
        let n = p.len();
        check_len(OP, "gradient", gr, n)?;
        check_len(OP, "momentum buffer", buf, n)?;
        let g = gpu(p.ordinal())?;
        let dt = p.dtype();
        let mut p_out = g.alloc(dt, n)?;
        let mut b_out = g.alloc(dt, n)?;
        if n > 0 {
            let f = g.func("sgd", &format!("sgd_step_{}", suffix(dt)))?;
            let n64 = n as i64;
            let (first, nesterov) = (self.first_step as i32, self.nesterov as i32);
            let mut b = g.stream.launch_builder(&f);
            b.arg(&n64)
                .arg(&self.lr)
                .arg(&self.momentum)
                .arg(&self.weight_decay)
                .arg(&self.inv_scale)
                .arg(&first)
                .arg(&nesterov)
                .arg(p.buf())
                .arg(gr.buf())
                .arg(buf.buf())
                .arg(p_out.buf_mut())
                .arg(b_out.buf_mut());
            // SAFETY: matches `sgd_step_<T>(i64, double, double, double, double, int, int, const T*,
            // const T*, const T*, T*, T*)`; all five buffers hold n T (checked).
            unsafe { b.launch(g.grid(n)) }.cu(OP)?;
        }
        Ok(vec![p_out, b_out])
    }
}

impl CudaKernel for AllFinite {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "all_finite";
        let x = inputs[0];
        let n = x.len();
        let g = gpu(x.ordinal())?;
        // A zeroed 4-byte buffer used as the u32 flag.
        let mut flag = g.zeros(DType::F32, 1)?;
        if n > 0 {
            let f = g.func("sgd", &format!("all_finite_{}", suffix(x.dtype())))?;
            let n64 = n as i64;
            let mut b = g.stream.launch_builder(&f);
            b.arg(&n64).arg(x.buf()).arg(flag.buf_mut());
            // SAFETY: matches `all_finite_<T>(i64, const T*, unsigned*)`; x holds n T, flag 4 bytes.
            unsafe { b.launch(g.grid(n)) }.cu(OP)?;
        }
        let mut out = g.alloc(DType::F32, 1)?;
        let f = g.func("sgd", "all_finite_finish")?;
        let mut b = g.stream.launch_builder(&f);
        b.arg(flag.buf()).arg(out.buf_mut());
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (32, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: matches `all_finite_finish(const unsigned*, float*)`; both buffers hold 4 bytes.
        unsafe { b.launch(one) }.cu(OP)?;
        Ok(vec![out])
    }
}
