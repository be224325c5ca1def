//! CUDA launchers for the pooling kernels of `src/ops/pool.rs` (`cuda/pool.cu`): `MaxPool2d`,
//! `MaxPool2dBackward`, `AvgPool2d`, `AvgPool2dBackward`, `GlobalAvgPool`, `GlobalAvgPoolBackward`.
//!
//! The backward kernels gather (one thread per input element, summing the outputs whose window holds
//! it, in the CPU's order) instead of scattering, so they are deterministic and atomic-free. The
//! max-pool backward relies on each argmax lying inside its own window, which holds for the argmax the
//! forward kernel saves (the only one the op ever passes).
//!
//! Invariants: buffer lengths are checked against the geometry; kernel and stride are positive
//! (the kernels divide by the stride); the argmax output is written in the compute type (f32, or f64
//! for f64: exact indices), the others in the inputs' dtype; nothing is launched for empty outputs.

use super::batch_norm::{acc_dtype, check_len, product};
use super::{gpu, suffix, CuResultExt, CudaKernel, CudaStorage};
use crate::backend::kernel_abi::pool::{global_avg_pool_launch, PoolArgs};
use crate::ops::pool::{
    AvgPool2d, AvgPool2dBackward, GlobalAvgPool, GlobalAvgPoolBackward, MaxPool2d,
    MaxPool2dBackward, PoolGeom,
};
use crate::{DType, Result};
use cudarc::driver::{DeviceRepr, PushKernelArg};

// SAFETY: `PoolArgs` is plain `#[repr(C)]` integers laid out exactly like the C struct (96 bytes,
// 8-aligned; the size is asserted in kernel_abi).
unsafe impl DeviceRepr for PoolArgs {}

/// (input elements, output elements) of a pooling geometry.
fn sizes(op: &'static str, g: &PoolGeom) -> Result<(usize, usize)> {
    Ok((
        product(op, &[g.planes, g.h, g.w])?,
        product(op, &[g.planes, g.oh, g.ow])?,
    ))
}

impl CudaKernel for MaxPool2d {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "max_pool2d";
        let x = inputs[0];
        let (n_in, n_out) = sizes(OP, &self.0)?;
        check_len(OP, "x", x, n_in)?;
        let args = PoolArgs::new(OP, &self.0, false)?;
        let g = gpu(x.ordinal())?;
        let mut y = g.alloc(x.dtype(), n_out)?;
        let mut idx = g.alloc(acc_dtype(x.dtype()), n_out)?;
        if n_out > 0 {
            let f = g.func("pool", &format!("max_pool2d_{}", suffix(x.dtype())))?;
            let mut b = g.stream.launch_builder(&f);
            b.arg(&args)
                .arg(x.buf())
                .arg(y.buf_mut())
                .arg(idx.buf_mut());
            // SAFETY: matches `max_pool2d_<T>(PoolArgs, const T*, T*, A*)`; x holds planes·h·w T, y
            // and idx planes·oh·ow; windows are clipped to the plane.
            unsafe { b.launch(g.grid(n_out)) }.cu(OP)?;
        }
        Ok(vec![y, idx])
    }
}

impl CudaKernel for MaxPool2dBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "max_pool2d_backward";
        let (idx, dy) = (inputs[0], inputs[1]);
        let (n_in, n_out) = sizes(OP, &self.0)?;
        check_len(OP, "argmax", idx, n_out)?;
        check_len(OP, "dy", dy, n_out)?;
        let args = PoolArgs::new(OP, &self.0, false)?;
        let g = gpu(dy.ordinal())?;
        let mut dx = g.alloc(dy.dtype(), n_in)?;
        if n_in > 0 {
            let f = g.func("pool", &format!("max_pool2d_bwd_{}", suffix(dy.dtype())))?;
            let mut b = g.stream.launch_builder(&f);
            b.arg(&args).arg(idx.buf()).arg(dy.buf()).arg(dx.buf_mut());
            // SAFETY: matches `max_pool2d_bwd_<T>(PoolArgs, const T*, const T*, T*)`; idx and dy hold
            // planes·oh·ow T, dx planes·h·w; only outputs in [0, oh) × [0, ow) are read.
            unsafe { b.launch(g.grid(n_in)) }.cu(OP)?;
        }
        Ok(vec![dx])
    }
}

impl CudaKernel for AvgPool2d {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "avg_pool2d";
        let x = inputs[0];
        let (n_in, n_out) = sizes(OP, &self.geom)?;
        check_len(OP, "x", x, n_in)?;
        let args = PoolArgs::new(OP, &self.geom, self.count_include_pad)?;
        let g = gpu(x.ordinal())?;
        let mut y = g.alloc(x.dtype(), n_out)?;
        if n_out > 0 {
            let f = g.func("pool", &format!("avg_pool2d_{}", suffix(x.dtype())))?;
            let mut b = g.stream.launch_builder(&f);
            b.arg(&args).arg(x.buf()).arg(y.buf_mut());
            // SAFETY: matches `avg_pool2d_<T>(PoolArgs, const T*, T*)`; x holds planes·h·w T, y
            // planes·oh·ow; windows are clipped to the plane.
            unsafe { b.launch(g.grid(n_out)) }.cu(OP)?;
        }
        Ok(vec![y])
    }
}

impl CudaKernel for AvgPool2dBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "avg_pool2d_backward";
        let dy = inputs[0];
        let (n_in, n_out) = sizes(OP, &self.0.geom)?;
        check_len(OP, "dy", dy, n_out)?;
        let args = PoolArgs::new(OP, &self.0.geom, self.0.count_include_pad)?;
        let g = gpu(dy.ordinal())?;
        let mut dx = g.alloc(dy.dtype(), n_in)?;
        if n_in > 0 {
            let f = g.func("pool", &format!("avg_pool2d_bwd_{}", suffix(dy.dtype())))?;
            let mut b = g.stream.launch_builder(&f);
            b.arg(&args).arg(dy.buf()).arg(dx.buf_mut());
            // SAFETY: matches `avg_pool2d_bwd_<T>(PoolArgs, const T*, T*)`; dy holds planes·oh·ow T,
            // dx planes·h·w; only outputs in [0, oh) × [0, ow) are read.
            unsafe { b.launch(g.grid(n_in)) }.cu(OP)?;
        }
        Ok(vec![dx])
    }
}

impl CudaKernel for GlobalAvgPool {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "global_avg_pool2d";
        let x = inputs[0];
        let (planes, hw) = (self.planes, self.hw);
        check_len(OP, "x", x, product(OP, &[planes, hw])?)?;
        let g = gpu(x.ordinal())?;
        let mut y = g.alloc(x.dtype(), planes)?;
        if planes > 0 {
            let (group, launch) = global_avg_pool_launch(planes, hw, g.sms());
            let f = g.func(
                "pool",
                &format!("global_avg_pool_{}_{}", group.name(), suffix(x.dtype())),
            )?;
            let cfg = g.launch_cfg(launch);
            let (planes64, hw64) = (planes as i64, hw as i64);
            let mut b = g.stream.launch_builder(&f);
            b.arg(&planes64).arg(&hw64).arg(x.buf()).arg(y.buf_mut());
            // SAFETY: matches `global_avg_pool_{warp,block}_<T>(i64, i64, const T*, T*)`; x holds
            // planes·hw T, y planes; 256 threads per block (a multiple of 32, as the groups need).
            unsafe { b.launch(cfg) }.cu(OP)?;
        }
        Ok(vec![y])
    }
}

impl CudaKernel for GlobalAvgPoolBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "global_avg_pool2d_backward";
        let dy = inputs[0];
        let (planes, hw) = (self.planes, self.hw);
        check_len(OP, "dy", dy, planes)?;
        let total = product(OP, &[planes, hw])?;
        let g = gpu(dy.ordinal())?;
        let mut dx = g.alloc(dy.dtype(), total)?;
        if total > 0 {
            let f = g.func(
                "pool",
                &format!("global_avg_pool_bwd_{}", suffix(dy.dtype())),
            )?;
            let (total64, hw64, inv) = (total as i64, hw as i64, 1.0 / hw as f64);
            let mut b = g.stream.launch_builder(&f);
            b.arg(&total64)
                .arg(&hw64)
                .arg(&inv)
                .arg(dy.buf())
                .arg(dx.buf_mut());
            // SAFETY: matches `global_avg_pool_bwd_<T>(i64, i64, double, const T*, T*)`; dy holds
            // planes T, dx planes·hw (hw > 0 here since total > 0).
            unsafe { b.launch(g.grid(total)) }.cu(OP)?;
        }
        Ok(vec![dx])
    }
}
