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
use super::{gpu, suffix, CuResultExt, CudaKernel, CudaStorage, THREADS};
use crate::ops::pool::{
    AvgPool2d, AvgPool2dBackward, GlobalAvgPool, GlobalAvgPoolBackward, MaxPool2d,
    MaxPool2dBackward, PoolGeom,
};
use crate::{DType, Error, Result};
use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};

/// Geometry of a pooling launch, mirrored by `PoolArgs` in cuda/pool.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct PoolArgs {
    planes: i64,
    h: i64,
    w: i64,
    oh: i64,
    ow: i64,
    kh: i64,
    kw: i64,
    sh: i64,
    sw: i64,
    ph: i64,
    pw: i64,
    count_include_pad: i32,
    pad: i32,
}
// SAFETY: plain `#[repr(C)]` integers laid out exactly like the C struct (96 bytes, 8-aligned).
unsafe impl DeviceRepr for PoolArgs {}

impl PoolArgs {
    fn new(op: &'static str, g: &PoolGeom, count_include_pad: bool) -> Result<PoolArgs> {
        let p = g.p;
        if p.kernel.0 == 0 || p.kernel.1 == 0 || p.stride.0 == 0 || p.stride.1 == 0 {
            return Err(Error::bad(
                op,
                format!("kernel and stride must be positive, got {p:?}"),
            ));
        }
        Ok(PoolArgs {
            planes: g.planes as i64,
            h: g.h as i64,
            w: g.w as i64,
            oh: g.oh as i64,
            ow: g.ow as i64,
            kh: p.kernel.0 as i64,
            kw: p.kernel.1 as i64,
            sh: p.stride.0 as i64,
            sw: p.stride.1 as i64,
            ph: p.padding.0 as i64,
            pw: p.padding.1 as i64,
            count_include_pad: count_include_pad as i32,
            pad: 0,
        })
    }
}

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

/// Planes of at most this many elements get one warp each, larger ones one block.
const WARP_PLANE_MAX: usize = 1024;

impl CudaKernel for GlobalAvgPool {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "global_avg_pool2d";
        let x = inputs[0];
        let (planes, hw) = (self.planes, self.hw);
        check_len(OP, "x", x, product(OP, &[planes, hw])?)?;
        let g = gpu(x.ordinal())?;
        let mut y = g.alloc(x.dtype(), planes)?;
        if planes > 0 {
            let warp = hw <= WARP_PLANE_MAX;
            let f = g.func(
                "pool",
                &format!(
                    "global_avg_pool_{}_{}",
                    if warp { "warp" } else { "block" },
                    suffix(x.dtype())
                ),
            )?;
            let blocks = if warp {
                planes.div_ceil(THREADS as usize / 32)
            } else {
                planes
            }
            .clamp(1, g.sm_count() as usize * 32) as u32;
            let cfg = LaunchConfig {
                grid_dim: (blocks, 1, 1),
                block_dim: (THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
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
