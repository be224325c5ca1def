//! Elementwise ops: unary maps (ReLU, leaky ReLU, tanh, sigmoid, exp, log, …), scalar affine maps,
//! and binary ops with numpy broadcasting. Backward rules sit next to each forward: unary ops use one
//! fused kernel `UnaryBackward` (dx = dy · f'(x, y)); binary ops reduce the broadcast gradient back to
//! each input's shape with `sum_to`.

use super::{apply1_in, chunk_len, same_dtype_device};
use crate::backend::CpuKernel;
use crate::dtype::Float;
use crate::tensor::MemoryFormat;
use crate::{Result, Shape, Tensor};
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Relu,
    LeakyRelu(f64),
    Tanh,
    Sigmoid,
    Exp,
    Log,
    Sqrt,
    Abs,
    Square,
    Recip,
    /// `x · mul + add`.
    Affine {
        mul: f64,
        add: f64,
    },
    /// `x^p` (for x ≥ 0 when p is not an integer).
    Powf(f64),
}

impl UnaryOp {
    fn name(self) -> &'static str {
        match self {
            UnaryOp::Relu => "relu",
            UnaryOp::LeakyRelu(_) => "leaky_relu",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Square => "square",
            UnaryOp::Recip => "recip",
            UnaryOp::Affine { .. } => "affine",
            UnaryOp::Powf(_) => "powf",
        }
    }

    #[inline(always)]
    fn forward<T: Float>(self, x: T) -> T {
        match self {
            UnaryOp::Relu => x.max(T::zero()),
            UnaryOp::LeakyRelu(s) => {
                if x > T::zero() {
                    x
                } else {
                    x * T::c(s)
                }
            }
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => T::one() / (T::one() + (-x).exp()),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Square => x * x,
            UnaryOp::Recip => T::one() / x,
            UnaryOp::Affine { mul, add } => x * T::c(mul) + T::c(add),
            UnaryOp::Powf(p) => x.powf(T::c(p)),
        }
    }

    /// f'(x), given x and y = f(x).
    #[inline(always)]
    fn derivative<T: Float>(self, x: T, y: T) -> T {
        match self {
            // From the output, as PyTorch's `threshold_backward(grad, result, 0)`: y > 0 exactly when
            // x > 0 (NaN gives 0 both ways), and the output is what the next op saves anyway.
            UnaryOp::Relu => {
                if y > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            UnaryOp::LeakyRelu(s) => {
                if x > T::zero() {
                    T::one()
                } else {
                    T::c(s)
                }
            }
            UnaryOp::Tanh => T::one() - y * y,
            UnaryOp::Sigmoid => y * (T::one() - y),
            UnaryOp::Exp => y,
            UnaryOp::Log => T::one() / x,
            UnaryOp::Sqrt => T::c(0.5) / y,
            UnaryOp::Abs => x.signum() * if x == T::zero() { T::zero() } else { T::one() },
            UnaryOp::Square => T::c(2.0) * x,
            UnaryOp::Recip => -y * y,
            UnaryOp::Affine { mul, .. } => T::c(mul),
            UnaryOp::Powf(p) => T::c(p) * x.powf(T::c(p - 1.0)),
        }
    }

    /// Whether `derivative` reads (x, y); backward saves only those.
    fn derivative_reads(self) -> (bool, bool) {
        match self {
            UnaryOp::LeakyRelu(_)
            | UnaryOp::Log
            | UnaryOp::Abs
            | UnaryOp::Square
            | UnaryOp::Powf(_) => (true, false),
            UnaryOp::Relu
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid
            | UnaryOp::Exp
            | UnaryOp::Sqrt
            | UnaryOp::Recip => (false, true),
            UnaryOp::Affine { .. } => (false, false),
        }
    }
}

/// y = f(x).
pub struct Unary(pub UnaryOp);

impl CpuKernel for Unary {
    const NAME: &'static str = "unary";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let x = inputs[0];
        let op = self.0;
        let mut y = vec![T::zero(); x.len()];
        let c = chunk_len(x.len(), 1 << 14);
        y.par_chunks_mut(c)
            .zip(x.par_chunks(c))
            .for_each(|(yc, xc)| {
                for (yi, &xi) in yc.iter_mut().zip(xc) {
                    *yi = op.forward(xi);
                }
            });
        Ok(vec![y])
    }
}

/// dx = dy · f'(x, y); inputs `[x, y, dy]`.
pub struct UnaryBackward(pub UnaryOp);

impl CpuKernel for UnaryBackward {
    const NAME: &'static str = "unary_backward";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (x, y, dy) = (inputs[0], inputs[1], inputs[2]);
        let op = self.0;
        let mut dx = vec![T::zero(); x.len()];
        let c = chunk_len(x.len(), 1 << 14);
        dx.par_chunks_mut(c).enumerate().for_each(|(ci, dc)| {
            let o = ci * c;
            for (i, d) in dc.iter_mut().enumerate() {
                *d = dy[o + i] * op.derivative(x[o + i], y[o + i]);
            }
        });
        Ok(vec![dx])
    }
}

impl Tensor {
    /// Applies a unary op, recording its backward rule.
    /// Elementwise in storage order, so the output keeps the input's memory format.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        let format = self.format();
        let y = apply1_in(
            format,
            &Unary(op),
            &[self],
            self.shape().clone(),
            self.dtype(),
        )?;
        // Save only what the derivative reads (PyTorch's rule: relu and tanh keep their output,
        // log its input, an affine map nothing); the kernel's unread operand is `dy`, of the same
        // size.
        let (reads_x, reads_y) = op.derivative_reads();
        let x = reads_x.then(|| self.detach());
        let y_saved = reads_y.then(|| y.clone());
        let (shape, dtype) = (self.shape().clone(), self.dtype());
        Ok(y.track(op.name(), &[self], move |dy| {
            let dx = apply1_in(
                format,
                &UnaryBackward(op),
                &[x.as_ref().unwrap_or(dy), y_saved.as_ref().unwrap_or(dy), dy],
                shape.clone(),
                dtype,
            )?;
            Ok(vec![Some(dx)])
        }))
    }
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Relu)
    }
    pub fn leaky_relu(&self, slope: f64) -> Result<Tensor> {
        self.unary(UnaryOp::LeakyRelu(slope))
    }
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh)
    }
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sigmoid)
    }
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Exp)
    }
    pub fn log(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Log)
    }
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Sqrt)
    }
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Abs)
    }
    pub fn square(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Square)
    }
    pub fn recip(&self) -> Result<Tensor> {
        self.unary(UnaryOp::Recip)
    }
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Powf(p))
    }
    /// `x · mul + add`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Affine { mul, add })
    }
    pub fn scale(&self, s: f64) -> Result<Tensor> {
        self.affine(s, 0.0)
    }
    pub fn add_scalar(&self, s: f64) -> Result<Tensor> {
        self.affine(1.0, s)
    }
    pub fn neg(&self) -> Result<Tensor> {
        self.affine(-1.0, 0.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
        }
    }
    #[inline(always)]
    fn apply<T: Float>(self, a: T, b: T) -> T {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }
}

/// Maps row-major positions of `out` to offsets in an input broadcast to it.
#[derive(Clone, Debug)]
pub struct Broadcast {
    /// Output dims.
    out: Vec<usize>,
    /// Input stride for each output dim (0 where the input is broadcast).
    strides: Vec<usize>,
}

impl Broadcast {
    /// A general strided view: `strides[d]` is the input stride of output dim `d`.
    pub(crate) fn from_parts(out: Vec<usize>, strides: Vec<usize>) -> Broadcast {
        Broadcast { out, strides }
    }
    pub(crate) fn new(input: &Shape, out: &Shape) -> Broadcast {
        let r = out.rank();
        let in_strides = input.contiguous_strides();
        let mut strides = vec![0; r];
        for i in 0..input.rank() {
            let o = r - input.rank() + i;
            if input.dims()[i] == out.dims()[o] && input.dims()[i] != 1 {
                strides[o] = in_strides[i];
            }
        }
        Broadcast {
            out: out.dims().to_vec(),
            strides,
        }
    }
    /// Output dims (read by the CUDA launchers).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn dims(&self) -> &[usize] {
        &self.out
    }
    /// Input stride of each output dim (read by the CUDA launchers).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub(crate) fn row_len(&self) -> usize {
        *self.out.last().unwrap_or(&1)
    }
    pub(crate) fn inner_stride(&self) -> usize {
        *self.strides.last().unwrap_or(&0)
    }
    /// Offset of the first element of output row `row` (all dims but the last).
    pub(crate) fn row_offset(&self, mut row: usize) -> usize {
        let mut off = 0;
        for d in (0..self.out.len().saturating_sub(1)).rev() {
            let n = self.out[d];
            off += (row % n) * self.strides[d];
            row /= n;
        }
        off
    }
}

/// out = a ∘ b with broadcasting.
pub struct Binary {
    pub op: BinaryOp,
    pub lhs: Broadcast,
    pub rhs: Broadcast,
}

impl CpuKernel for Binary {
    const NAME: &'static str = "binary";
    fn run<T: Float>(&self, inputs: &[&[T]]) -> Result<Vec<Vec<T>>> {
        let (a, b) = (inputs[0], inputs[1]);
        let n: usize = self.lhs.out.iter().product();
        let mut out = vec![T::zero(); n];
        let op = self.op;
        if a.len() == n && b.len() == n {
            let c = chunk_len(n, 1 << 14);
            out.par_chunks_mut(c).enumerate().for_each(|(ci, oc)| {
                let o = ci * c;
                for (i, v) in oc.iter_mut().enumerate() {
                    *v = op.apply(a[o + i], b[o + i]);
                }
            });
            return Ok(vec![out]);
        }
        let row = self.lhs.row_len().max(1);
        let (sa, sb) = (self.lhs.inner_stride(), self.rhs.inner_stride());
        let rows_per_chunk = chunk_len(n / row, (1 << 12) / row + 1);
        out.par_chunks_mut(row * rows_per_chunk)
            .enumerate()
            .for_each(|(ci, oc)| {
                for (ri, orow) in oc.chunks_mut(row).enumerate() {
                    let r = ci * rows_per_chunk + ri;
                    let (oa, ob) = (self.lhs.row_offset(r), self.rhs.row_offset(r));
                    for (j, v) in orow.iter_mut().enumerate() {
                        *v = op.apply(a[oa + j * sa], b[ob + j * sb]);
                    }
                }
            });
        Ok(vec![out])
    }
}

impl Tensor {
    /// `self ∘ rhs` with numpy broadcasting, recording the backward rule. Operands of one shape are
    /// combined in storage order: the output keeps `self`'s memory format (`rhs` is converted to it
    /// when they differ); broadcasting computes in contiguous order.
    pub fn binary(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        same_dtype_device(op.name(), self, rhs)?;
        let out_shape = Shape::broadcast(op.name(), self.shape(), rhs.shape())?;
        let kernel = Binary {
            op,
            lhs: Broadcast::new(self.shape(), &out_shape),
            rhs: Broadcast::new(rhs.shape(), &out_shape),
        };
        let format = if self.shape() == rhs.shape() {
            self.format()
        } else {
            MemoryFormat::Contiguous
        };
        let y = apply1_in(format, &kernel, &[self, rhs], out_shape, self.dtype())?;
        let (need_a, need_b) = (self.requires_grad(), rhs.requires_grad());
        // Save an operand only when a gradient reads it (a sum saves neither), as PyTorch does.
        let keep_a = need_b && matches!(op, BinaryOp::Mul | BinaryOp::Div);
        let keep_b = matches!(op, BinaryOp::Div) || (need_a && op == BinaryOp::Mul);
        let a = keep_a.then(|| self.detach());
        let b = keep_b.then(|| rhs.detach());
        let (a_shape, b_shape) = (self.shape().clone(), rhs.shape().clone());
        Ok(y.track(op.name(), &[self, rhs], move |dy| {
            let saved = |t: &Option<Tensor>| {
                t.clone().ok_or_else(|| {
                    crate::Error::bad(op.name(), "backward needs an operand it did not save")
                })
            };
            let (ga, gb) = match op {
                BinaryOp::Add => (dy.clone(), dy.clone()),
                BinaryOp::Sub => (dy.clone(), dy.neg()?),
                BinaryOp::Mul => {
                    let ga = if need_a {
                        dy.mul(&saved(&b)?)?
                    } else {
                        dy.clone()
                    };
                    let gb = if need_b {
                        dy.mul(&saved(&a)?)?
                    } else {
                        dy.clone()
                    };
                    (ga, gb)
                }
                BinaryOp::Div => {
                    let b = saved(&b)?;
                    let ga = dy.div(&b)?;
                    let gb = if need_b {
                        ga.mul(&saved(&a)?)?.div(&b)?.neg()?
                    } else {
                        dy.clone()
                    };
                    (ga, gb)
                }
            };
            Ok(vec![
                if need_a {
                    Some(ga.sum_to(&a_shape)?)
                } else {
                    None
                },
                if need_b {
                    Some(gb.sum_to(&b_shape)?)
                } else {
                    None
                },
            ])
        }))
    }
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Add)
    }
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Sub)
    }
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Mul)
    }
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, BinaryOp::Div)
    }
}
