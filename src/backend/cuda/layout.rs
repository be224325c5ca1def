//! CUDA launchers for the data-movement kernels (`cuda/layout.cu`): `Cast` and `Concat`, `Narrow`,
//! `NarrowBackward` from `src/ops/layout.rs`, and `StridedCopy` from `src/ops/reduce.rs`; plus `cast`,
//! which `run` uses to convert outputs to the dtype an op asked for.
//!
//! Invariants: the calls (kernel names, argument order) come from `src/backend/kernel_abi/layout.rs`,
//! which the emulator tests run too; copies move bits through the size-matched
//! `copy2d_u*`/`strided_copy_u*` kernels; every
//! launch is preceded by a bounds check of the largest source offset it reads and the largest
//! destination offset it writes; nothing is launched for zero elements.

use super::{gpu, CudaKernel, CudaStorage, Gpu};
use crate::backend::kernel_abi::layout::{self, Copy2d, StridedCopyPlan};
use crate::ops::layout::{Cast, Concat, Narrow, NarrowBackward};
use crate::ops::reduce::StridedCopy;
use crate::{DType, Error, Result};

/// A copy of `x` converted to `dtype` (a plain device copy when the dtype already matches).
pub(crate) fn cast(x: &CudaStorage, dtype: DType) -> Result<CudaStorage> {
    if x.dtype() == dtype {
        return x.try_clone();
    }
    let g = gpu(x.ordinal())?;
    let n = x.len();
    let mut y = g.alloc(dtype, n)?;
    if n > 0 {
        let call = layout::cast(x.dtype(), dtype, n, x.dptr(g), y.dptr_mut(g));
        // SAFETY: x and y hold n elements of their dtypes.
        unsafe { g.launch(&call, g.grid(n)) }?;
    }
    Ok(y)
}

/// Runs a block copy plan (`Copy2d` of kernel_abi) from `src` into `dst`, after checking it against
/// both buffers.
fn copy2d(
    g: &Gpu,
    op: &'static str,
    src: &CudaStorage,
    dst: &mut CudaStorage,
    plan: Copy2d,
) -> Result<()> {
    let n = plan.n();
    if n == 0 {
        return Ok(());
    }
    plan.check(op, src.len(), dst.len())?;
    if src.dtype() != dst.dtype() {
        return Err(Error::DType {
            op,
            msg: format!("copy from {} to {}", src.dtype(), dst.dtype()),
        });
    }
    let call = plan.call(src.dtype(), src.dptr(g), dst.dptr_mut(g));
    // SAFETY: the plan's reads and writes lie within src and dst (checked above).
    unsafe { g.launch(&call, g.grid(n)) }?;
    Ok(())
}

impl CudaKernel for Cast {
    fn launch(&self, inputs: &[&CudaStorage], out: &[DType]) -> Result<Vec<CudaStorage>> {
        let dtype = out.first().copied().unwrap_or(inputs[0].dtype());
        Ok(vec![cast(inputs[0], dtype)?])
    }
}

impl CudaKernel for Concat {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        if inputs.len() != self.blocks.len() {
            return Err(Error::bad(
                "concat",
                format!("{} inputs for {} blocks", inputs.len(), self.blocks.len()),
            ));
        }
        let g = gpu(inputs[0].ordinal())?;
        let row: usize = self.blocks.iter().sum();
        let mut out = g.alloc(inputs[0].dtype(), self.outer * row)?;
        for (x, plan) in inputs.iter().zip(Copy2d::concat(self)) {
            copy2d(g, "concat", x, &mut out, plan)?;
        }
        Ok(vec![out])
    }
}

impl CudaKernel for Narrow {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let x = inputs[0];
        let g = gpu(x.ordinal())?;
        let plan = Copy2d::narrow(self);
        let mut out = g.alloc(x.dtype(), plan.n())?;
        copy2d(g, "narrow", x, &mut out, plan)?;
        Ok(vec![out])
    }
}

impl CudaKernel for NarrowBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let gr = inputs[0];
        let n = &self.0;
        let g = gpu(gr.ordinal())?;
        let mut out = g.zeros(gr.dtype(), n.outer * n.full * n.inner)?;
        copy2d(
            g,
            "narrow_backward",
            gr,
            &mut out,
            Copy2d::narrow_backward(n),
        )?;
        Ok(vec![out])
    }
}

impl CudaKernel for StridedCopy {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let x = inputs[0];
        let g = gpu(x.ordinal())?;
        let dims = self.map.dims();
        let n = self.numel;
        if dims.iter().product::<usize>() != n {
            return Err(Error::bad(
                "strided_copy",
                format!("map over {dims:?} does not produce {n} elements"),
            ));
        }
        let mut y = g.alloc(x.dtype(), n)?;
        if n == 0 {
            return Ok(vec![y]);
        }
        let plan = StridedCopyPlan::new(dims, self.map.strides(), x.len())?;
        if plan.dense {
            // Dense in order: a plain copy (e.g. a permutation that moves only extent-1 dims).
            g.copy_prefix(x, &mut y, n * x.dtype().size_in_bytes())?;
            return Ok(vec![y]);
        }
        let call = plan.call(x.dtype(), x.dptr(g), y.dptr_mut(g));
        // SAFETY: y holds n elements and every read offset is < x.len() (checked by the plan).
        unsafe { g.launch(&call, g.grid(n)) }?;
        Ok(vec![y])
    }
}
