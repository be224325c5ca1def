//! CUDA launchers for the elementwise kernels of `src/ops/elementwise.rs` (`cuda/elementwise.cu`):
//! `Unary`, `UnaryBackward` and `Binary`.
//!
//! Invariants: the calls (kernel names, op codes, scalar parameters, argument order) and the
//! contiguous/strided pick come from `src/backend/kernel_abi/elementwise.rs`, which the emulator tests
//! run too; inputs share one dtype (`run` normalises) and outputs are returned in it; nothing is
//! launched for zero elements.

use super::{gpu, CudaKernel, CudaStorage};
use crate::backend::kernel_abi::elementwise::{self, BinaryPlan};
use crate::ops::elementwise::{Binary, Unary, UnaryBackward};
use crate::{DType, Error, Result};

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
            let call = elementwise::unary(self.0, x.dtype(), n, x.dptr(g), y.dptr_mut(g));
            // SAFETY: x and y hold n elements.
            unsafe { g.launch(&call, g.grid(n)) }?;
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
            let call = elementwise::unary_backward(
                self.0,
                x.dtype(),
                n,
                x.dptr(g),
                y.dptr(g),
                dy.dptr(g),
                dx.dptr_mut(g),
            );
            // SAFETY: all four buffers hold n elements (checked above).
            unsafe { g.launch(&call, g.grid(n)) }?;
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
        let call = plan.call(self.op, a.dtype(), a.dptr(g), b.dptr(g), out.dptr_mut(g));
        // SAFETY: out holds n elements; every offset the plan reads is within a and b (checked above).
        unsafe { g.launch(&call, g.grid(n)) }?;
        Ok(vec![out])
    }
}
