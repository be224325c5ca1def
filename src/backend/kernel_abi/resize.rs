//! The calls of the kernels of cuda/resize.cu (kernel names and argument lists; see call.rs):
//! nearest upsampling and zero/reflection padding of `planes × h × w` and their backward, built
//! from the ops' own descriptors (`UpsampleNearest2d`, `Pad2d` of src/ops/resize.rs).
//!
//! Invariants: every kernel has one thread per output element (forward: y, backward: dx); the
//! scalars are passed in the order of the C signatures below. Sizes and pads are the launcher's to
//! check (reflection pads smaller than their dim).

use super::call::KernelCall;
use super::suffix;
use crate::ops::resize::{Pad2d, PadMode, UpsampleNearest2d};
use crate::DType;

/// An upsampling kernel `<kernel>_<T>(i64 planes, i64 h, i64 w, i64 s, const T* src, T* dst)`.
fn upsample_call<P>(
    kernel: &str,
    dtype: DType,
    k: &UpsampleNearest2d,
    src: P,
    dst: P,
) -> KernelCall<P> {
    KernelCall::new("resize", format!("{kernel}_{}", suffix(dtype)))
        .i64(k.planes)
        .i64(k.h)
        .i64(k.w)
        .i64(k.scale)
        .ptr(src)
        .ptr(dst)
}

/// `upsample_nearest2d_<T>(i64 planes, i64 h, i64 w, i64 s, const T* x, T* y)`: x holds planes·h·w
/// elements, y planes·(h·s)·(w·s).
pub fn upsample_nearest2d<P>(dtype: DType, k: &UpsampleNearest2d, x: P, y: P) -> KernelCall<P> {
    upsample_call("upsample_nearest2d", dtype, k, x, y)
}

/// `upsample_nearest2d_bwd_<T>(i64 planes, i64 h, i64 w, i64 s, const T* dy, T* dx)`: dy holds
/// planes·(h·s)·(w·s) elements, dx planes·h·w.
pub fn upsample_nearest2d_backward<P>(
    dtype: DType,
    k: &UpsampleNearest2d,
    dy: P,
    dx: P,
) -> KernelCall<P> {
    upsample_call("upsample_nearest2d_bwd", dtype, k, dy, dx)
}

/// The pad kernels' sizes in signature order: planes, h, w, left, right, top, bottom.
fn pad_args(k: &Pad2d) -> [usize; 7] {
    let (l, r, t, b) = k.pad;
    [k.planes, k.h, k.w, l, r, t, b]
}

/// A pad kernel `<kernel>_<T>(i64 planes, i64 h, i64 w, i64 pl, i64 pr, i64 pt, i64 pb,
/// int reflect, const T* src, T* dst)`.
fn pad_call<P>(kernel: &str, dtype: DType, k: &Pad2d, src: P, dst: P) -> KernelCall<P> {
    let [planes, h, w, l, r, t, b] = pad_args(k);
    KernelCall::new("resize", format!("{kernel}_{}", suffix(dtype)))
        .i64(planes)
        .i64(h)
        .i64(w)
        .i64(l)
        .i64(r)
        .i64(t)
        .i64(b)
        .i32((k.mode == PadMode::Reflect) as i32)
        .ptr(src)
        .ptr(dst)
}

/// `pad2d_<T>(i64 planes, i64 h, i64 w, i64 pl, i64 pr, i64 pt, i64 pb, int reflect, const T* x,
/// T* y)`: x holds planes·h·w elements, y planes·(h+pt+pb)·(w+pl+pr).
pub fn pad2d<P>(dtype: DType, k: &Pad2d, x: P, y: P) -> KernelCall<P> {
    pad_call("pad2d", dtype, k, x, y)
}

/// `pad2d_bwd_<T>(i64 planes, i64 h, i64 w, i64 pl, i64 pr, i64 pt, i64 pb, int reflect,
/// const T* dy, T* dx)`: dy holds planes·(h+pt+pb)·(w+pl+pr) elements, dx planes·h·w.
pub fn pad2d_backward<P>(dtype: DType, k: &Pad2d, dy: P, dx: P) -> KernelCall<P> {
    pad_call("pad2d_bwd", dtype, k, dy, dx)
}
