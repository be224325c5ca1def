//! CUDA launchers for the data-movement kernels (`cuda/layout.cu`): `Cast` and `Concat`, `Narrow`,
//! `NarrowBackward` from `src/ops/layout.rs`, and `StridedCopy` from `src/ops/reduce.rs`; plus `cast`,
//! which `run` uses to convert outputs to the dtype an op asked for.
//!
//! Invariants: copies move bits through the size-matched `copy2d_u*`/`strided_copy_u*` kernels; every
//! launch is preceded by a bounds check of the largest source offset it reads and the largest
//! destination offset it writes; nothing is launched for zero elements.

use super::{
    bits_suffix, collapse, gpu, suffix, CuResultExt, CudaKernel, CudaStorage, Gpu, StridedArgs,
};
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

/// Block copy: for r < rows, c < cols: `dst[r·dst_rs + dst_off + c] = src[r·src_rs + src_off + c]`.
#[allow(clippy::too_many_arguments)]
fn copy2d(
    g: &Gpu,
    op: &'static str,
    src: &CudaStorage,
    dst: &mut CudaStorage,
    rows: usize,
    cols: usize,
    (src_rs, src_off): (usize, usize),
    (dst_rs, dst_off): (usize, usize),
) -> Result<()> {
    let n = rows * cols;
    if n == 0 {
        return Ok(());
    }
    let src_end = (rows - 1) * src_rs + src_off + cols;
    let dst_end = (rows - 1) * dst_rs + dst_off + cols;
    if src_end > src.len() || dst_end > dst.len() || (rows > 1 && cols > dst_rs) {
        return Err(Error::bad(
            op,
            format!(
                "block copy out of bounds (reads to {src_end} of {}, writes to {dst_end} of {})",
                src.len(),
                dst.len()
            ),
        ));
    }
    if src.dtype() != dst.dtype() {
        return Err(Error::DType {
            op,
            msg: format!("copy from {} to {}", src.dtype(), dst.dtype()),
        });
    }
    let f = g.func("layout", &format!("copy2d_{}", bits_suffix(src.dtype())))?;
    let v: [i64; 6] = [
        n as i64,
        cols as i64,
        src_rs as i64,
        src_off as i64,
        dst_rs as i64,
        dst_off as i64,
    ];
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
        let mut at = 0;
        for (x, &b) in inputs.iter().zip(&self.blocks) {
            copy2d(g, "concat", x, &mut out, self.outer, b, (b, 0), (row, at))?;
            at += b;
        }
        Ok(vec![out])
    }
}

impl CudaKernel for Narrow {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let x = inputs[0];
        let g = gpu(x.ordinal())?;
        let (b, fb, s) = (
            self.len * self.inner,
            self.full * self.inner,
            self.start * self.inner,
        );
        let mut out = g.alloc(x.dtype(), self.outer * b)?;
        copy2d(g, "narrow", x, &mut out, self.outer, b, (fb, s), (b, 0))?;
        Ok(vec![out])
    }
}

impl CudaKernel for NarrowBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let gr = inputs[0];
        let n = &self.0;
        let g = gpu(gr.ordinal())?;
        let (b, fb, s) = (n.len * n.inner, n.full * n.inner, n.start * n.inner);
        let mut out = g.zeros(gr.dtype(), n.outer * fb)?;
        copy2d(
            g,
            "narrow_backward",
            gr,
            &mut out,
            n.outer,
            b,
            (b, 0),
            (fb, s),
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
        let (cd, cs) = collapse(dims, &[self.map.strides()]);
        let max: usize = cd.iter().zip(&cs[0]).map(|(&d, &s)| (d - 1) * s).sum();
        if max >= x.len() {
            return Err(Error::bad(
                "strided_copy",
                format!("map reads offset {max} of an input of {} elements", x.len()),
            ));
        }
        if cd.len() <= 1 && cs[0].first().is_none_or(|&s| s == 1) {
            // Dense in order: a plain copy (e.g. a permutation that moves only extent-1 dims).
            let src = x.buf().slice(0..n * x.dtype().size_in_bytes());
            g.stream.memcpy_dtod(&src, y.buf_mut()).cu("strided_copy")?;
            return Ok(vec![y]);
        }
        let a = StridedArgs::new("strided_copy", &cd, &cs[0])?;
        let f = g.func(
            "layout",
            &format!("strided_copy_{}", bits_suffix(x.dtype())),
        )?;
        let n64 = n as i64;
        let mut b = g.stream.launch_builder(&f);
        b.arg(&n64).arg(&a).arg(x.buf()).arg(y.buf_mut());
        // SAFETY: matches `strided_copy_u<bits>(i64, StridedArgs, const U*, U*)`; y holds n
        // elements and every read offset is ≤ max < x.len() (checked above).
        unsafe { b.launch(g.grid(n)) }.cu("strided_copy")?;
        Ok(vec![y])
    }
}
