//! CUDA launcher for `Matmul` (`src/ops/matmul.rs`) through cuBLAS.
//!
//! cuBLAS is column-major; our buffers are row-major. A row-major `X[r×c]` read as column-major is
//! `Xᵀ[c×r]` with leading dimension `c`, so `C = op(A)·op(B)` (row-major, `m×n`) is computed as the
//! column-major product `Cᵀ = op(B)ᵀ·op(A)ᵀ`: cuBLAS gets (B, A) swapped, m↔n swapped, and each
//! operand's transpose flag unchanged. Leading dimensions: B is stored `[k×n]` (ld n) or, transposed,
//! `[n×k]` (ld k); A is `[m×k]` (ld k) or `[k×m]` (ld m); C has ld n.
//!
//! Invariants: a 2-d right-hand side shared by a non-transposed batch is folded into one GEMM with
//! `batch·m` rows; other batches are one strided-batched GEMM (stride 0 for a shared B). Dimensions
//! must fit cuBLAS's `int`. This file holds no cuBLAS call: `blas::gemm` of the parent module runs
//! the [`GemmGeometry`] (cuBLAS in the CUDA backend, a host reference GEMM with cuBLAS's column-major
//! semantics on the simulated device, so the mapping above is checked there).

use super::blas::gemm;
use super::{gpu, CudaKernel, CudaStorage};
use crate::ops::matmul::Matmul;
use crate::{DType, Error, Result};

fn int(v: usize, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        Error::bad(
            "matmul",
            format!("{what} = {v} exceeds cuBLAS's 32-bit limit"),
        )
    })
}

impl CudaKernel for Matmul {
    fn launch(&self, inputs: &[&CudaStorage], _out: &[DType]) -> Result<Vec<CudaStorage>> {
        let (a, b) = (inputs[0], inputs[1]);
        let (batch, m, k, n) = (self.batch, self.m, self.k, self.n);
        let b_batches = if self.b_shared { 1 } else { batch };
        if a.len() < batch * m * k || b.len() < b_batches * k * n {
            return Err(Error::bad(
                "matmul",
                format!(
                    "operands hold {} and {} elements, need {} and {}",
                    a.len(),
                    b.len(),
                    batch * m * k,
                    b_batches * k * n
                ),
            ));
        }
        let g = gpu(a.ordinal())?;
        let mut c = g.alloc(a.dtype(), batch * m * n)?;
        if batch * m * n == 0 {
            return Ok(vec![c]);
        }
        if k == 0 {
            return Ok(vec![g.zeros(a.dtype(), batch * m * n)?]);
        }
        // Fold a shared, non-transposed-A batch into the rows.
        let (batch, rows) = if self.b_shared && !self.trans_a {
            (1, batch * m)
        } else {
            (batch, m)
        };
        let geom = GemmGeometry {
            transa: self.trans_b,
            transb: self.trans_a,
            m: int(n, "n")?,
            n: int(rows, "rows")?,
            k: int(k, "k")?,
            lda: int(if self.trans_b { k } else { n }, "ldb")?,
            ldb: int(if self.trans_a { rows } else { k }, "lda")?,
            ldc: int(n, "n")?,
            batch: int(batch, "batch")?,
            stride_a: if self.b_shared { 0 } else { (k * n) as i64 },
            stride_b: (rows * k) as i64,
            stride_c: (rows * n) as i64,
        };
        // Column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLAS's A is our B, its B our A.
        gemm(g, &geom, b, a, &mut c)?;
        Ok(vec![c])
    }
}

/// A column-major, strided-batched GEMM as cuBLAS takes it (already swapped: cuBLAS's A is our B):
/// `C_i = op(A_i)·op(B_i)` for i < batch, `C_i` `m×n` with leading dimension `ldc`, `op(A_i)` `m×k`,
/// `op(B_i)` `k×n`; `transa`/`transb` say whether A/B are stored transposed; operand i starts
/// `stride_* · i` elements in.
pub(super) struct GemmGeometry {
    pub transa: bool,
    pub transb: bool,
    pub m: i32,
    pub n: i32,
    pub k: i32,
    pub lda: i32,
    pub ldb: i32,
    pub ldc: i32,
    pub batch: i32,
    pub stride_a: i64,
    pub stride_b: i64,
    pub stride_c: i64,
}
