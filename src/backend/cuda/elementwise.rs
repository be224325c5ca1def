//! CUDA launchers for the elementwise kernels of `src/ops/elementwise.rs` (`cuda/elementwise.cu`):
//! `Unary`, `UnaryBackward` and `Binary`.
//!
//! Invariants: op codes and scalar parameters passed here are the ones `cuda/elementwise.cu` switches
//! on (`unary_code` ↔ `UnaryCode`, `binary_code` ↔ `BinaryCode`); inputs share one dtype (`run`
//! normalises) and outputs are returned in it; nothing is launched for zero elements.

use super::{collapse, gpu, suffix, CuResultExt, CudaKernel, CudaStorage, StridedArgs};
use crate::ops::elementwise::{Binary, BinaryOp, Unary, UnaryBackward, UnaryOp};
use crate::{DType, Error, Result};
use cudarc::driver::PushKernelArg;

/// (code, p0, p1) for the forward kernel.
fn unary_code(op: UnaryOp) -> (i32, f64, f64) {
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

/// (code, p0, p1) for the derivative: Powf needs `p - 1` computed in f64, like the CPU.
fn unary_backward_code(op: UnaryOp) -> (i32, f64, f64) {
    match op {
        UnaryOp::Powf(p) => (11, p, p - 1.0),
        other => unary_code(other),
    }
}

fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
    }
}

fn check_len(op: &'static str, s: &CudaStorage, n: usize) -> Result<()> {
    if s.len() < n {
        return Err(Error::bad(
            op,
            format!("input holds {} elements, kernel needs {n}", s.len()),
        ));
    }
    Ok(())
}

impl CudaKernel for Unary {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let x = inputs[0];
        let g = gpu(x.ordinal())?;
        let n = x.len();
        let mut y = g.alloc(x.dtype(), n)?;
        if n > 0 {
            let (code, p0, p1) = unary_code(self.0);
            let f = g.func("elementwise", &format!("unary_{}", suffix(x.dtype())))?;
            let n64 = n as i64;
            let mut b = g.stream.launch_builder(&f);
            b.arg(&n64)
                .arg(&code)
                .arg(&p0)
                .arg(&p1)
                .arg(x.buf())
                .arg(y.buf_mut());
            // SAFETY: matches `unary_<T>(i64, int, double, double, const T*, T*)`; x and y hold n
            // elements of the kernel's T.
            unsafe { b.launch(g.grid(n)) }.cu("unary")?;
        }
        Ok(vec![y])
    }
}

impl CudaKernel for UnaryBackward {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let (x, y, dy) = (inputs[0], inputs[1], inputs[2]);
        let n = x.len();
        check_len("unary_backward", y, n)?;
        check_len("unary_backward", dy, n)?;
        let g = gpu(x.ordinal())?;
        let mut dx = g.alloc(x.dtype(), n)?;
        if n > 0 {
            let (code, p0, p1) = unary_backward_code(self.0);
            let f = g.func("elementwise", &format!("unary_bwd_{}", suffix(x.dtype())))?;
            let n64 = n as i64;
            let mut b = g.stream.launch_builder(&f);
            b.arg(&n64)
                .arg(&code)
                .arg(&p0)
                .arg(&p1)
                .arg(x.buf())
                .arg(y.buf())
                .arg(dy.buf())
                .arg(dx.buf_mut());
            // SAFETY: matches `unary_bwd_<T>(i64, int, double, double, const T*, const T*, const T*,
            // T*)`; all buffers hold n elements.
            unsafe { b.launch(g.grid(n)) }.cu("unary_backward")?;
        }
        Ok(vec![dx])
    }
}

impl CudaKernel for Binary {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let (a, b) = (inputs[0], inputs[1]);
        let dims = self.lhs.dims();
        let n: usize = dims.iter().product();
        let g = gpu(a.ordinal())?;
        let mut out = g.alloc(a.dtype(), n)?;
        if n == 0 {
            return Ok(vec![out]);
        }
        let (cd, cs) = collapse(dims, &[self.lhs.strides(), self.rhs.strides()]);
        // Largest offset each input is read at, so a wrong map can never read out of bounds.
        for (s, st) in [(a, &cs[0]), (b, &cs[1])] {
            let max: usize = cd.iter().zip(st).map(|(&d, &s)| (d - 1) * s).sum();
            check_len("binary", s, max + 1)?;
        }
        let code = binary_code(self.op);
        let n64 = n as i64;
        let contiguous = cd.len() <= 1 && cs.iter().all(|s| s.first().is_none_or(|&v| v == 1));
        let sfx = suffix(a.dtype());
        if contiguous {
            let f = g.func("elementwise", &format!("binary_contig_{sfx}"))?;
            let mut l = g.stream.launch_builder(&f);
            l.arg(&n64)
                .arg(&code)
                .arg(a.buf())
                .arg(b.buf())
                .arg(out.buf_mut());
            // SAFETY: matches `binary_contig_<T>(i64, int, const T*, const T*, T*)`; both inputs
            // hold n elements (checked above: dense map of n elements).
            unsafe { l.launch(g.grid(n)) }.cu("binary")?;
        } else {
            let sa = StridedArgs::new("binary", &cd, &cs[0])?;
            let sb = StridedArgs::new("binary", &cd, &cs[1])?;
            let f = g.func("elementwise", &format!("binary_strided_{sfx}"))?;
            let mut l = g.stream.launch_builder(&f);
            l.arg(&n64)
                .arg(&code)
                .arg(&sa)
                .arg(&sb)
                .arg(a.buf())
                .arg(b.buf())
                .arg(out.buf_mut());
            // SAFETY: matches `binary_strided_<T>(i64, int, StridedArgs, StridedArgs, const T*,
            // const T*, T*)`; every offset is within the inputs (checked above).
            unsafe { l.launch(g.grid(n)) }.cu("binary")?;
        }
        Ok(vec![out])
    }
}
