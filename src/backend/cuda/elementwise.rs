//! CUDA launchers for the elementwise kernels of `src/ops/elementwise.rs` (`cuda/elementwise.cu`):
//! `Unary`, `UnaryBackward` and `Binary`.
//!
//! Invariants: op codes, scalar parameters and the contiguous/strided pick come from
//! `src/backend/kernel_abi/elementwise.rs` (the emulator tests use the same functions); inputs share one dtype (`run`
//! normalises) and outputs are returned in it; nothing is launched for zero elements.

use super::{gpu, suffix, CuResultExt, CudaKernel, CudaStorage};
use crate::backend::kernel_abi::elementwise::{
    binary_code, unary_backward_code, unary_code, BinaryPlan,
};
use crate::ops::elementwise::{Binary, Unary, UnaryBackward};
use crate::{DType, Error, Result};
use cudarc::driver::PushKernelArg;

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
        let plan = BinaryPlan::new(dims, self.lhs.strides(), self.rhs.strides())?;
        // Each input must hold its largest offset, so a wrong map can never read out of bounds.
        check_len("binary", a, plan.lhs_len)?;
        check_len("binary", b, plan.rhs_len)?;
        let code = binary_code(self.op);
        let n64 = n as i64;
        let f = g.func("elementwise", &plan.kernel(suffix(a.dtype())))?;
        let mut l = g.stream.launch_builder(&f);
        if plan.contiguous {
            l.arg(&n64)
                .arg(&code)
                .arg(a.buf())
                .arg(b.buf())
                .arg(out.buf_mut());
            // SAFETY: matches `binary_contig_<T>(i64, int, const T*, const T*, T*)`; both inputs
            // hold n elements (checked above: dense map of n elements).
            unsafe { l.launch(g.grid(n)) }.cu("binary")?;
        } else {
            l.arg(&n64)
                .arg(&code)
                .arg(&plan.lhs)
                .arg(&plan.rhs)
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
