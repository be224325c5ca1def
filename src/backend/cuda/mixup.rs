//! CUDA launcher for `Mixup` (`src/ops/mixup.rs`, kernel in `cuda/mixup.cu`, its call in
//! `kernel_abi/mixup.rs`): the images and soft targets of a batch blended with a permutation of their
//! rows in one launch. The permutation is uploaded as an i64 table.
//!
//! Invariants: the permutation is validated before upload (the kernel indexes with it); input lengths
//! are checked against (n, per_image, classes); outputs are returned in the inputs' dtype; nothing is
//! launched for an empty batch.

use super::batch_norm::check_len;
use super::{gpu, CudaKernel, CudaStorage};
use crate::backend::kernel_abi::{self, mixup};
use crate::ops::mixup::Mixup;
use crate::{DType, Error, Result};

impl CudaKernel for Mixup {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        const OP: &str = "mixup";
        self.validate()?;
        let [x, t] = inputs else {
            return Err(Error::bad(
                OP,
                format!("expected 2 inputs, got {}", inputs.len()),
            ));
        };
        let (n, per, k) = (self.n, self.per_image, self.classes);
        let (nx, nt) = (
            kernel_abi::product(OP, &[n, per])?,
            kernel_abi::product(OP, &[n, k])?,
        );
        check_len(OP, "images", x, nx)?;
        check_len(OP, "targets", t, nt)?;
        if t.dtype() != x.dtype() {
            return Err(Error::DType {
                op: OP,
                msg: format!("images are {} but targets {}", x.dtype(), t.dtype()),
            });
        }
        let g = gpu(x.ordinal())?;
        let (mut xo, mut to) = (g.alloc(x.dtype(), nx)?, g.alloc(t.dtype(), nt)?);
        if nx + nt > 0 {
            let perm: Vec<u64> = self.perm.iter().map(|&p| p as u64).collect();
            let perm = g.upload_words(&perm)?;
            let call = mixup::mixup(
                x.dtype(),
                (n, per, k),
                self.lambda,
                perm.dptr(g),
                x.dptr(g),
                t.dptr(g),
                xo.dptr_mut(g),
                to.dptr_mut(g),
            );
            // SAFETY: x and xo hold n·per elements, t and to n·k (checked / allocated), perm n
            // indices below n (validated).
            unsafe { g.launch(&call, g.grid(nx + nt)) }?;
        }
        Ok(vec![xo, to])
    }
}
