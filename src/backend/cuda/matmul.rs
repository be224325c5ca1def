//! CUDA launcher for `Matmul` (`src/ops/matmul.rs`) through cuBLAS.
//!
//! cuBLAS is column-major; our buffers are row-major. A row-major `X[r×c]` read as column-major is
//! `Xᵀ[c×r]` with leading dimension `c`, so `C = op(A)·op(B)` (row-major, `m×n`) is computed as the
//! column-major product `Cᵀ = op(B)ᵀ·op(A)ᵀ`: cuBLAS gets (B, A) swapped, m↔n swapped, and each
//! operand's transpose flag unchanged. Leading dimensions: B is stored `[k×n]` (ld n) or, transposed,
//! `[n×k]` (ld k); A is `[m×k]` (ld k) or `[k×m]` (ld m); C has ld n.
//!
//! Invariants: f16 uses `cublasGemmEx` with f32 accumulation (cudarc's `Gemm<f16>`); f32 uses plain
//! SGEMM (cuBLAS's default math mode, no TF32), f64 DGEMM. A 2-d right-hand side shared by a
//! non-transposed batch is folded into one GEMM with `batch·m` rows; other batches use
//! `gemm_strided_batched` (stride 0 for a shared B). Dimensions must fit cuBLAS's `int`.

use super::{gpu, CudaKernel, CudaStorage};
use crate::ops::matmul::Matmul;
use crate::{DType, Error, Result};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use half::f16;

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
        let blas = g.blas()?;
        // Fold a shared, non-transposed-A batch into the rows.
        let (batch, rows) = if self.b_shared && !self.trans_a {
            (1, batch * m)
        } else {
            (batch, m)
        };
        let op = |t: bool| {
            if t {
                cublasOperation_t::CUBLAS_OP_T
            } else {
                cublasOperation_t::CUBLAS_OP_N
            }
        };
        let geom = Geometry {
            transa: op(self.trans_b),
            transb: op(self.trans_a),
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
        match a.dtype() {
            DType::F16 => gemm::<f16>(blas, &geom, a, b, &mut c, f16::ONE, f16::ZERO)?,
            DType::F32 => gemm::<f32>(blas, &geom, a, b, &mut c, 1.0, 0.0)?,
            DType::F64 => gemm::<f64>(blas, &geom, a, b, &mut c, 1.0, 0.0)?,
        }
        Ok(vec![c])
    }
}

/// Column-major GEMM parameters (already swapped: cuBLAS's A is our B).
struct Geometry {
    transa: cublasOperation_t,
    transb: cublasOperation_t,
    m: i32,
    n: i32,
    k: i32,
    lda: i32,
    ldb: i32,
    ldc: i32,
    batch: i32,
    stride_a: i64,
    stride_b: i64,
    stride_c: i64,
}

fn gemm<T>(
    blas: &CudaBlas,
    g: &Geometry,
    a: &CudaStorage,
    b: &CudaStorage,
    c: &mut CudaStorage,
    one: T,
    zero: T,
) -> Result<()>
where
    CudaBlas: Gemm<T>,
{
    let cfg = GemmConfig {
        transa: g.transa,
        transb: g.transb,
        m: g.m,
        n: g.n,
        k: g.k,
        alpha: one,
        lda: g.lda,
        ldb: g.ldb,
        beta: zero,
        ldc: g.ldc,
    };
    let (a_len, b_len, c_len) = (a.len(), b.len(), c.len());
    // SAFETY: the buffers hold a.dtype() elements (== T, dispatched by the caller), and the views
    // cover exactly the element counts checked in `launch`.
    let bad = || Error::bad("matmul", "operand buffer smaller than its element count");
    let av = unsafe { a.buf().transmute::<T>(a_len) }.ok_or_else(bad)?;
    let bv = unsafe { b.buf().transmute::<T>(b_len) }.ok_or_else(bad)?;
    let mut cv = unsafe { c.buf_mut().transmute_mut::<T>(c_len) }.ok_or_else(bad)?;
    // SAFETY: shapes, leading dimensions and batch strides describe row-major operands inside these
    // views (module docs); cuBLAS runs on the device's single stream.
    let r = unsafe {
        if g.batch == 1 {
            blas.gemm(cfg, &bv, &av, &mut cv)
        } else {
            blas.gemm_strided_batched(
                StridedBatchedConfig {
                    gemm: cfg,
                    batch_size: g.batch,
                    stride_a: g.stride_a,
                    stride_b: g.stride_b,
                    stride_c: g.stride_c,
                },
                &bv,
                &av,
                &mut cv,
            )
        }
    };
    r.map_err(|e| Error::Msg(format!("cuda matmul (cuBLAS): {e:?}")))
}
