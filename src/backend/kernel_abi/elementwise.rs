//! Launch plans and calls of cuda/elementwise.cu: the op codes and scalar parameters its kernels
//! switch on, the contiguous-vs-strided choice of a binary op, and each kernel's argument list.
//!
//! Invariants: `unary_code` ↔ the `switch` of `unary_*`/`unary_bwd_*`, `binary_code` ↔ that of
//! `binary_*` (both in cuda/elementwise.cu); a [`BinaryPlan`] reads each operand only at offsets below
//! its `*_len`.

use super::call::KernelCall;
use super::{collapse, extent, suffix, StridedArgs};
use crate::ops::elementwise::{BinaryOp, UnaryOp};
use crate::{DType, Result};

/// (code, p0, p1) of the forward kernel `unary_<T>`.
pub fn unary_code(op: UnaryOp) -> (i32, f64, f64) {
    match op {
        UnaryOp::Relu => (0, 0.0, 0.0),
        UnaryOp::LeakyRelu(s) => (1, s, 0.0),
        UnaryOp::Tanh => (2, 0.0, 0.0),
        UnaryOp::Sigmoid => (3, 0.0, 0.0),
        UnaryOp::Exp => (4, 0.0, 0.0),
        UnaryOp::Log => (5, 0.0, 0.0),
        UnaryOp::Sqrt => (6, 0.0, 0.0),
        UnaryOp::Abs => (7, 0.0, 0.0),
        UnaryOp::Square => (8, 0.0, 0.0),
        UnaryOp::Recip => (9, 0.0, 0.0),
        UnaryOp::Affine { mul, add } => (10, mul, add),
        UnaryOp::Powf(p) => (11, p, 0.0),
    }
}

/// (code, p0, p1) of the derivative `unary_bwd_<T>`: Powf passes `p - 1` computed in f64, like the
/// CPU.
pub fn unary_backward_code(op: UnaryOp) -> (i32, f64, f64) {
    match op {
        UnaryOp::Powf(p) => (11, p, p - 1.0),
        other => unary_code(other),
    }
}

/// The code of `binary_*`.
pub fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
    }
}

/// `unary_<T>(i64 n, int op, double p0, double p1, const T* x, T* y)`: `y = op(x)` over n
/// elements.
pub fn unary<P>(op: UnaryOp, dtype: DType, n: usize, x: P, y: P) -> KernelCall<P> {
    let (code, p0, p1) = unary_code(op);
    KernelCall::new("elementwise", format!("unary_{}", suffix(dtype)))
        .i64(n)
        .i32(code)
        .f64(p0)
        .f64(p1)
        .ptr(x)
        .ptr(y)
}

/// `unary_bwd_<T>(i64 n, int op, double p0, double p1, const T* x, const T* y, const T* dy, T* dx)`:
/// `dx = dy · op'(x, y)` over n elements.
#[allow(clippy::too_many_arguments)]
pub fn unary_backward<P>(
    op: UnaryOp,
    dtype: DType,
    n: usize,
    x: P,
    y: P,
    dy: P,
    dx: P,
) -> KernelCall<P> {
    let (code, p0, p1) = unary_backward_code(op);
    KernelCall::new("elementwise", format!("unary_bwd_{}", suffix(dtype)))
        .i64(n)
        .i32(code)
        .f64(p0)
        .f64(p1)
        .ptr(x)
        .ptr(y)
        .ptr(dy)
        .ptr(dx)
}

/// How `a ∘ b` over a dense output of `dims` is launched, given each operand's strides (0 where it
/// broadcasts).
#[derive(Clone, Copy, Debug)]
pub struct BinaryPlan {
    /// Output elements.
    pub n: usize,
    /// Both operands dense over the output: `binary_contig_<T>`; else `binary_strided_<T>` with the
    /// descriptors below.
    pub contiguous: bool,
    pub lhs: StridedArgs,
    pub rhs: StridedArgs,
    /// The elements each operand must hold (its largest offset + 1).
    pub lhs_len: usize,
    pub rhs_len: usize,
}

impl BinaryPlan {
    /// Collapses the maps and picks the kernel; fails when more than `MAX_DIMS` dims remain.
    pub fn new(dims: &[usize], lhs_strides: &[usize], rhs_strides: &[usize]) -> Result<BinaryPlan> {
        let (cd, cs) = collapse(dims, &[lhs_strides, rhs_strides]);
        let contiguous = cd.len() <= 1 && cs.iter().all(|s| s.first().is_none_or(|&v| v == 1));
        Ok(BinaryPlan {
            n: dims.iter().product(),
            contiguous,
            lhs: StridedArgs::new("binary", &cd, &cs[0])?,
            rhs: StridedArgs::new("binary", &cd, &cs[1])?,
            lhs_len: extent(&cd, &cs[0]),
            rhs_len: extent(&cd, &cs[1]),
        })
    }

    /// The kernel's name for storage suffix `sfx`.
    pub fn kernel(&self, sfx: &str) -> String {
        let kind = if self.contiguous { "contig" } else { "strided" };
        format!("binary_{kind}_{sfx}")
    }

    /// The plan's call: `binary_contig_<T>(i64 n, int op, const T* a, const T* b, T* out)` or
    /// `binary_strided_<T>(i64 n, int op, StridedArgs sa, StridedArgs sb, const T* a, const T* b,
    /// T* out)`.
    pub fn call<P>(&self, op: BinaryOp, dtype: DType, a: P, b: P, out: P) -> KernelCall<P> {
        let call = KernelCall::new("elementwise", self.kernel(suffix(dtype)))
            .i64(self.n)
            .i32(binary_code(op));
        let call = if self.contiguous {
            call
        } else {
            call.pod(&self.lhs).pod(&self.rhs)
        };
        call.ptr(a).ptr(b).ptr(out)
    }
}
