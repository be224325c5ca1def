//! CUDA launchers for the pooling kernels of `src/ops/pool.rs` (`cuda/pool.cu`): `MaxPool2d`,
//! `MaxPool2dBackward`, `AvgPool2d`, `AvgPool2dBackward`, `GlobalAvgPool`, `GlobalAvgPoolBackward`.
//! The descriptor, the global pool's warp/block pick and the calls (kernel names and argument lists)
//! come from `kernel_abi/pool.rs`.
//!
//! The max/avg kernels and their backwards take every tensor in the layout of their `PoolGeom`
//! (NCHW, or channels-last when `channels_last`), handed to the kernels in `PoolArgs`; buffer lengths
//! are the same in both.
//!
//! The backward kernels gather (one thread per input element, summing the outputs whose window holds
//! it, in the CPU's order) instead of scattering, so they are deterministic and atomic-free. The
//! max-pool backward relies on each argmax lying inside its own window, which holds for the argmax the
//! forward kernel saves (the only one the op ever passes).
//!
//! The global average pool and its backward take `[N, H·W, C]` storage when `channels_last` names C
//! (a thread per output summing its column; dx written channels-last).
//!
//! Invariants: buffer lengths are checked against the geometry; kernel and stride are positive
//! (the kernels divide by the stride); the argmax output is written in the compute type (f32, or f64
//! for f64: exact indices), the others in the inputs' dtype; nothing is launched for empty outputs.

use super::batch_norm::{acc_dtype, check_len, product};
use super::{gpu, CudaKernel, CudaStorage};
use crate::backend::kernel_abi::pool::{self, global_avg_pool_launch, PoolArgs};
use crate::ops::pool::{
    AvgPool2d, AvgPool2dBackward, GlobalAvgPool, GlobalAvgPoolBackward, MaxPool2d,
    MaxPool2dBackward, PoolGeom,
};
use crate::{DType, Result};

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
            let call =
                pool::max_pool2d(x.dtype(), &args, x.dptr(g), y.dptr_mut(g), idx.dptr_mut(g));
            // SAFETY: x holds planes·h·w elements (checked), y and idx planes·oh·ow; windows are
            // clipped to the plane.
            unsafe { g.launch(&call, g.grid(n_out)) }?;
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
            let call = pool::max_pool2d_backward(
                dy.dtype(),
                &args,
                idx.dptr(g),
                dy.dptr(g),
                dx.dptr_mut(g),
            );
            // SAFETY: idx and dy hold planes·oh·ow elements (checked), dx planes·h·w; only outputs
            // in [0, oh) × [0, ow) are read.
            unsafe { g.launch(&call, g.grid(n_in)) }?;
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
            let call = pool::avg_pool2d(x.dtype(), &args, x.dptr(g), y.dptr_mut(g));
            // SAFETY: x holds planes·h·w elements (checked), y planes·oh·ow; windows are clipped to
            // the plane.
            unsafe { g.launch(&call, g.grid(n_out)) }?;
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
            let call = pool::avg_pool2d_backward(dy.dtype(), &args, dy.dptr(g), dx.dptr_mut(g));
            // SAFETY: dy holds planes·oh·ow elements (checked), dx planes·h·w; only outputs in
            // [0, oh) × [0, ow) are read.
            unsafe { g.launch(&call, g.grid(n_in)) }?;
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
        if planes == 0 {
            return Ok(vec![y]);
        }
        match self.channels_last {
            Some(c) => {
                check_channels(OP, planes, c)?;
                let call =
                    pool::global_avg_pool_cl(x.dtype(), planes, hw, c, x.dptr(g), y.dptr_mut(g));
                // SAFETY: x holds planes·hw elements (checked), y planes; c > 0 divides planes, so
                // every read (n·c·hw + j·c + ch, ch < c, j < hw) lies inside x.
                unsafe { g.launch(&call, g.grid(planes)) }?;
            }
            None => {
                let (group, launch) = global_avg_pool_launch(planes, hw, g.sms());
                let call =
                    pool::global_avg_pool(group, x.dtype(), planes, hw, x.dptr(g), y.dptr_mut(g));
                // SAFETY: x holds planes·hw elements (checked), y planes; 256 threads per block (a
                // multiple of 32, as the groups need).
                unsafe { g.launch(&call, g.launch_cfg(launch)) }?;
            }
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
        if total == 0 {
            return Ok(vec![dx]);
        }
        let (dt, dyp, dxp) = (dy.dtype(), dy.dptr(g), dx.dptr_mut(g));
        let call = match self.channels_last {
            Some(c) => {
                check_channels(OP, planes, c)?;
                pool::global_avg_pool_backward_cl(dt, total, hw, c, dyp, dxp)
            }
            None => pool::global_avg_pool_backward(dt, total, hw, dyp, dxp),
        };
        // SAFETY: dy holds planes elements (checked), dx planes·hw (hw > 0 here since total > 0);
        // channels-last: c > 0 divides planes, so dy's index (i / (hw·c))·c + i % c < planes.
        unsafe { g.launch(&call, g.grid(total)) }?;
        Ok(vec![dx])
    }
}

/// A channels-last global pool's channel count must be positive and divide `planes` (= N·C).
fn check_channels(op: &'static str, planes: usize, c: usize) -> Result<()> {
    if c == 0 || planes % c != 0 {
        return Err(crate::Error::bad(
            op,
            format!("channels-last with {c} channels cannot split {planes} planes"),
        ));
    }
    Ok(())
}
