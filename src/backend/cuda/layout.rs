//! CUDA launchers for the data-movement kernels (`cuda/layout.cu`): `Cast` and `Concat`, `Narrow`,
//! `NarrowBackward` from `src/ops/layout.rs`, and `StridedCopy` from `src/ops/reduce.rs`; plus `cast`,
//! which `run` uses to convert outputs to the dtype an op asked for.
//!
//! Invariants: copies move bits through the size-matched `copy2d_u*`/`strided_copy_u*` kernels; every
//! launch is preceded by a bounds check of the largest source offset it reads and the largest
//! destination offset it writes; nothing is launched for zero elements.

use super::{bits_suffix, gpu, suffix, CuResultExt, CudaKernel, CudaStorage, Gpu};
use crate::backend::kernel_abi::layout::{Copy2d, StridedCopyPlan};
use crate::ops::layout::{Cast, Concat, Narrow, NarrowBackward};
use crate::ops::reduce::StridedCopy;
use crate::{DType, Error, Result};
use cudarc::driver::PushKernelArg;

/// A copy of `x` converted to `dtype` (a plain device copy when the dtype already matches).
pub(crate) fn cast(x: &CudaStorage, dtype: DType) -> Result<CudaStorage> {
    if x.dtype() == dtype {
        return x.try_clone();
    }
    let g = gpu(x.ordinal())?;
    let n = x.len();
    let mut y = g.alloc(dtype, n)?;
    if n > 0 {
        let name = format!("cast_{}_{}", suffix(x.dtype()), suffix(dtype));
        let f = g.func("layout", &name)?;
        let n64 = n as i64;
        let mut b = g.stream.launch_builder(&f);
        b.arg(&n64).arg(x.buf()).arg(y.buf_mut());
        // SAFETY: matches `cast_<S>_<D>(i64, const S*, D*)`; x holds n S, y holds n D.
        unsafe { b.launch(g.grid(n)) }.cu("to_dtype")?;
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
    let f = g.func("layout", &format!("copy2d_{}", bits_suffix(src.dtype())))?;
    let v = plan.args();
    let mut b = g.stream.launch_builder(&f);
    b.arg(&v[0])
        .arg(&v[1])
        .arg(&v[2])
        .arg(&v[3])
        .arg(&v[4])
        .arg(&v[5])
        .arg(src.buf())
        .arg(dst.buf_mut());
    // SAFETY: matches `copy2d_u<bits>(i64 ×6, const U*, U*)` for the dtype's width; bounds checked.
    unsafe { b.launch(g.grid(n)) }.cu(op)?;
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
            let src = x.buf().slice(0..n * x.dtype().size_in_bytes());
            g.stream.memcpy_dtod(&src, y.buf_mut()).cu("strided_copy")?;
            return Ok(vec![y]);
        }
        let f = g.func(
            "layout",
            &format!("strided_copy_{}", bits_suffix(x.dtype())),
        )?;
        let n64 = n as i64;
        let mut b = g.stream.launch_builder(&f);
        b.arg(&n64).arg(&plan.src).arg(x.buf()).arg(y.buf_mut());
        // SAFETY: matches `strided_copy_u<bits>(i64, StridedArgs, const U*, U*)`; y holds n
        // elements and every read offset is < x.len() (checked by the plan).
        unsafe { b.launch(g.grid(n)) }.cu("strided_copy")?;
        Ok(vec![y])
    }
}
