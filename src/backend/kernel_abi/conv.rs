//! Launch plans and calls of the helper kernels of cuda/conv.cu (the convolutions themselves are
//! cuDNN calls): the bias fill, the per-channel bias gradient and the plane window, each kernel's name
//! and argument list (see call.rs), and the bias gradient's grid.
//!
//! Invariants: the float kernels are picked by the dtype (`_f16`/`_f32`/`_f64`), the window kernel
//! by its bit width only (`_u16`/`_u32`/`_u64`: it moves bits); buffers are dense NCHW.

use super::call::KernelCall;
use super::{bits_suffix, suffix, Launch1d};
use crate::DType;

/// `conv_bias_grad_*`: a block per channel, capped (the kernel grid-strides over channels).
pub fn bias_grad_launch(channels: usize, sm_count: usize) -> Launch1d {
    Launch1d::capped(channels, sm_count)
}

/// `conv_fill_bias_<T>(i64 total, i64 plane, i64 c, const T* bias, T* y)`:
/// y[i] = bias[(i / plane) % c] over `total` elements of a dense [n, c, plane] y; bias holds c.
pub fn fill_bias<P>(
    dtype: DType,
    total: usize,
    plane: usize,
    c: usize,
    bias: P,
    y: P,
) -> KernelCall<P> {
    KernelCall::new("conv", format!("conv_fill_bias_{}", suffix(dtype)))
        .i64(total)
        .i64(plane)
        .i64(c)
        .ptr(bias)
        .ptr(y)
}

/// `conv_bias_grad_<T>(i64 n, i64 c, i64 plane, const T* dy, T* db)`: db[ch] = Σ over the n·plane
/// elements of channel ch of a dense [n, c, plane] dy; db holds c. Grid: [`bias_grad_launch`].
pub fn bias_grad<P>(dtype: DType, n: usize, c: usize, plane: usize, dy: P, db: P) -> KernelCall<P> {
    KernelCall::new("conv", format!("conv_bias_grad_{}", suffix(dtype)))
        .i64(n)
        .i64(c)
        .i64(plane)
        .ptr(dy)
        .ptr(db)
}

/// `conv_window_<bits>(i64 planes, i64 hs, i64 ws, i64 hd, i64 wd, const U* src, U* dst)` with U the
/// unsigned integer of the dtype's width: planes of [hs, ws] in src copied into planes of [hd, wd]
/// in dst, top-left aligned, cropped and/or zero-filled; src holds planes·hs·ws, dst planes·hd·wd.
pub fn window<P>(
    dtype: DType,
    planes: usize,
    (hs, ws): (usize, usize),
    (hd, wd): (usize, usize),
    src: P,
    dst: P,
) -> KernelCall<P> {
    KernelCall::new("conv", format!("conv_window_{}", bits_suffix(dtype)))
        .i64(planes)
        .i64(hs)
        .i64(ws)
        .i64(hd)
        .i64(wd)
        .ptr(src)
        .ptr(dst)
}
