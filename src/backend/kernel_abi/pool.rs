//! Launch plans and calls of cuda/pool.cu: the `PoolArgs` descriptor, the global average pool's
//! warp/block choice, and each pooling kernel's name and argument list (see call.rs).
//!
//! Invariants: [`PoolArgs`] has the field order and size (104 bytes: twelve i64 then two i32, 8-aligned,
//! no padding) of its C twin; kernel and stride are positive (the kernels divide by the stride), and so
//! is the channel count of a channels-last launch (its kernels divide by it); the argmax buffer of the
//! max pool is `Acc<T>` (f32 for f16 and f32, f64 for f64; `acc_dtype`).

use super::call::KernelCall;
use super::rows::RowGroup;
use super::{suffix, Launch1d};
use crate::ops::pool::PoolGeom;
use crate::{DType, Error, Result};

/// Geometry of a pooling launch, mirrored by `PoolArgs` in cuda/pool.cu. Passed by value.
/// `channels_last` (0/1) says every tensor of the launch is stored N-H-W-C (`planes` = N·`channels`);
/// 0 is N-C-H-W, where `channels` is not read.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolArgs {
    pub planes: i64,
    pub channels: i64,
    pub h: i64,
    pub w: i64,
    pub oh: i64,
    pub ow: i64,
    pub kh: i64,
    pub kw: i64,
    pub sh: i64,
    pub sw: i64,
    pub ph: i64,
    pub pw: i64,
    pub count_include_pad: i32,
    pub channels_last: i32,
}
const _: () = assert!(std::mem::size_of::<PoolArgs>() == 104);
const _: () = assert!(std::mem::align_of::<PoolArgs>() == 8);

impl PoolArgs {
    /// The descriptor of `g` (its layout included); fails (naming `op`) when the kernel or the stride
    /// has a zero extent, or a channels-last geometry's planes are not whole images of `channels`.
    pub fn new(op: &'static str, g: &PoolGeom, count_include_pad: bool) -> Result<PoolArgs> {
        let p = g.p;
        if p.kernel.0 == 0 || p.kernel.1 == 0 || p.stride.0 == 0 || p.stride.1 == 0 {
            return Err(Error::bad(
                op,
                format!("kernel and stride must be positive, got {p:?}"),
            ));
        }
        if g.channels_last {
            g.images(op)?;
        }
        Ok(PoolArgs {
            planes: g.planes as i64,
            channels: g.channels as i64,
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
            channels_last: g.channels_last as i32,
        })
    }
}

/// `global_avg_pool_{warp,block}_*`: a warp per plane of up to `WARP_ROW_MAX` elements, else a block
/// (the row kernels' mapping: a plane is a contiguous row), and that group's grid.
pub fn global_avg_pool_launch(planes: usize, hw: usize, sm_count: usize) -> (RowGroup, Launch1d) {
    let group = RowGroup::for_contiguous(hw);
    (group, group.launch(planes, sm_count))
}

/// A kernel of cuda/pool.cu taking a [`PoolArgs`] first: `<kernel>_<T>(PoolArgs a, …)`.
fn pool_call<P>(kernel: &str, dtype: DType, a: &PoolArgs) -> KernelCall<P> {
    KernelCall::new("pool", format!("{kernel}_{}", suffix(dtype))).pod(a)
}

/// `max_pool2d_<T>(PoolArgs a, const T* x, T* y, Acc<T>* idx)`: x holds planes·h·w elements, y and
/// the argmax idx (in `Acc<T>`) planes·oh·ow, all in `a`'s layout; a thread per output element.
pub fn max_pool2d<P>(dtype: DType, a: &PoolArgs, x: P, y: P, idx: P) -> KernelCall<P> {
    pool_call("max_pool2d", dtype, a).ptr(x).ptr(y).ptr(idx)
}

/// `max_pool2d_bwd_<T>(PoolArgs a, const T* idx, const T* dy, T* dx)`: idx (the forward's argmax,
/// here in T) and dy hold planes·oh·ow elements, dx planes·h·w, all in `a`'s layout; a thread per
/// input element.
pub fn max_pool2d_backward<P>(dtype: DType, a: &PoolArgs, idx: P, dy: P, dx: P) -> KernelCall<P> {
    pool_call("max_pool2d_bwd", dtype, a)
        .ptr(idx)
        .ptr(dy)
        .ptr(dx)
}

/// `avg_pool2d_<T>(PoolArgs a, const T* x, T* y)`: x holds planes·h·w elements, y planes·oh·ow, both
/// in `a`'s layout; a thread per output element.
pub fn avg_pool2d<P>(dtype: DType, a: &PoolArgs, x: P, y: P) -> KernelCall<P> {
    pool_call("avg_pool2d", dtype, a).ptr(x).ptr(y)
}

/// `avg_pool2d_bwd_<T>(PoolArgs a, const T* dy, T* dx)`: dy holds planes·oh·ow elements, dx
/// planes·h·w, both in `a`'s layout; a thread per input element.
pub fn avg_pool2d_backward<P>(dtype: DType, a: &PoolArgs, dy: P, dx: P) -> KernelCall<P> {
    pool_call("avg_pool2d_bwd", dtype, a).ptr(dy).ptr(dx)
}

/// `global_avg_pool_{warp,block}_<T>(i64 planes, i64 hw, const T* x, T* y)`: y[p] = mean of plane
/// p of x (planes·hw elements); `grp` from [`global_avg_pool_launch`].
pub fn global_avg_pool<P>(
    grp: RowGroup,
    dtype: DType,
    planes: usize,
    hw: usize,
    x: P,
    y: P,
) -> KernelCall<P> {
    KernelCall::new(
        "pool",
        format!("global_avg_pool_{}_{}", grp.name(), suffix(dtype)),
    )
    .i64(planes)
    .i64(hw)
    .ptr(x)
    .ptr(y)
}

/// `global_avg_pool_cl_<T>(i64 planes, i64 hw, i64 c, const T* x, T* y)`: the channels-last global
/// pool, x in `[N, H·W, C]` storage (planes = N·C): y[n·C + ch] = mean over j of x[(n·hw + j)·C + ch],
/// summed in f64 in j order (the CPU's order: bit-identical results); a thread per output, so a
/// warp reads 32 neighbouring channels of one pixel. 1-d grid over `planes`.
pub fn global_avg_pool_cl<P>(
    dtype: DType,
    planes: usize,
    hw: usize,
    channels: usize,
    x: P,
    y: P,
) -> KernelCall<P> {
    KernelCall::new("pool", format!("global_avg_pool_cl_{}", suffix(dtype)))
        .i64(planes)
        .i64(hw)
        .i64(channels)
        .ptr(x)
        .ptr(y)
}

/// `global_avg_pool_bwd_cl_<T>(i64 total, i64 hw, i64 c, double inv, const T* dy, T* dx)` with
/// inv = 1/hw: dx (channels-last `[N, H·W, C]`, `total` elements) = dy[n·C + ch]·inv; 1-d grid over
/// `total`.
pub fn global_avg_pool_backward_cl<P>(
    dtype: DType,
    total: usize,
    hw: usize,
    channels: usize,
    dy: P,
    dx: P,
) -> KernelCall<P> {
    KernelCall::new("pool", format!("global_avg_pool_bwd_cl_{}", suffix(dtype)))
        .i64(total)
        .i64(hw)
        .i64(channels)
        .f64(1.0 / hw as f64)
        .ptr(dy)
        .ptr(dx)
}

/// `global_avg_pool_bwd_<T>(i64 total, i64 hw, double inv, const T* dy, T* dx)` with inv = 1/hw:
/// dx[i] = dy[i / hw]·inv over `total` = planes·hw elements (dy holds planes).
pub fn global_avg_pool_backward<P>(
    dtype: DType,
    total: usize,
    hw: usize,
    dy: P,
    dx: P,
) -> KernelCall<P> {
    KernelCall::new("pool", format!("global_avg_pool_bwd_{}", suffix(dtype)))
        .i64(total)
        .i64(hw)
        .f64(1.0 / hw as f64)
        .ptr(dy)
        .ptr(dx)
}
