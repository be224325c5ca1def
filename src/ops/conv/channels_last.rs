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
//! Invariant: lengths are checked before any index is formed (`ops::layout::{to_nchw, to_nhwc}`), so a
//! bad input is an error, not a panic.

use super::Conv2dGeometry;

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

// The storage transposes are shared with pooling's channels-last CPU kernels.
pub(super) use crate::ops::layout::{to_nchw, to_nhwc};
