//! Channels-last (NHWC) convolutions on the CPU: the NCHW kernels between transposes. The CUDA
//! backend runs channels-last convolutions natively (cuDNN's NHWC descriptors); this file makes the
//! same kernel structs correct on the CPU too, so every device computes every kernel and the CPU stays
//! the reference. (`Tensor::conv2d` itself only asks for channels-last on CUDA; on the CPU it converts
//! once and computes in NCHW, which is faster than transposing around every call.)
//!
//! Layouts when a kernel's `channels_last` is set: x `[n, h, w, cin]`, y `[n, ho, wo, cout]`, and the
//! weight `[cout, kh, kw, cin/groups]` (cuDNN's KRSC, i.e. the weight tensor's own channels-last
//! storage); the bias stays `[c]`.
//!
//! Invariant: lengths are checked before any index is formed, so a bad input is an error, not a panic.

use super::Conv2dGeometry;
use crate::{Error, Result};

/// The four extents of each operand, in logical (NCHW-style) order.
pub(super) struct Dims4 {
    pub x: [usize; 4],
    pub w: [usize; 4],
    pub y: [usize; 4],
}

impl Conv2dGeometry {
    pub(super) fn dims4(&self) -> Dims4 {
        Dims4 {
            x: [self.n, self.cin, self.h, self.w],
            w: [self.cout, self.cin / self.groups.max(1), self.kh, self.kw],
            y: [self.n, self.cout, self.ho, self.wo],
        }
    }
}

fn check(op: &'static str, what: &str, v_len: usize, [n, c, h, w]: [usize; 4]) -> Result<()> {
    if v_len != n * c * h * w {
        return Err(Error::bad(
            op,
            format!("{what} has {v_len} elements, the geometry needs {n}·{c}·{h}·{w}"),
        ));
    }
    Ok(())
}

/// `[n, h, w, c]` storage → `[n, c, h, w]` storage.
pub(super) fn to_nchw<T: Copy>(
    op: &'static str,
    what: &str,
    v: &[T],
    d: [usize; 4],
) -> Result<Vec<T>> {
    relayout(op, what, v, d, false)
}

/// `[n, c, h, w]` storage → `[n, h, w, c]` storage.
pub(super) fn to_nhwc<T: Copy>(
    op: &'static str,
    what: &str,
    v: &[T],
    d: [usize; 4],
) -> Result<Vec<T>> {
    relayout(op, what, v, d, true)
}

/// Copies `v` (logical dims `d`) between the two layouts: NCHW → NHWC when `to_nhwc`, else back.
fn relayout<T: Copy>(
    op: &'static str,
    what: &str,
    v: &[T],
    d: [usize; 4],
    to_nhwc: bool,
) -> Result<Vec<T>> {
    check(op, what, v.len(), d)?;
    let [n, c, h, w] = d;
    let plane = h * w;
    let mut out = v.to_vec();
    for img in 0..n {
        for ch in 0..c {
            for p in 0..plane {
                let nchw = (img * c + ch) * plane + p;
                let nhwc = (img * plane + p) * c + ch;
                if to_nhwc {
                    out[nhwc] = v[nchw];
                } else {
                    out[nchw] = v[nhwc];
                }
            }
        }
    }
    Ok(out)
}
