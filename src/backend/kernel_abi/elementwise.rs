//! Launch plans of cuda/elementwise.cu: the op codes and scalar parameters its kernels switch on, and
//! the contiguous-vs-strided choice of a binary op.
//!
//! Invariants: `unary_code` ↔ the `switch` of `unary_*`/`unary_bwd_*`, `binary_code` ↔ that of
//! `binary_*` (both in cuda/elementwise.cu); a [`BinaryPlan`] reads each operand only at offsets below
//! its `*_len`.

use super::{collapse, extent, StridedArgs};
use crate::ops::elementwise::{BinaryOp, UnaryOp};
use crate::Result;

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
}
