//! `gemm`: one column-major GEMM of a [`GemmGeometry`] through cuBLAS (`matmul.rs` maps the engine's
//! row-major matmul onto it).
//!
//! Invariants: f16 uses `cublasGemmEx` with f32 accumulation (cudarc's `Gemm<f16>`); f32 uses plain
//! SGEMM (cuBLAS's default math mode, no TF32), f64 DGEMM; a batch of one is a plain GEMM, more use
//! `gemm_strided_batched`; everything runs on the device's single stream.

use super::matmul::GemmGeometry;
use super::{CuResultExt, CudaStorage, Gpu};
use crate::{DType, Error, Result};
use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig, StridedBatchedConfig};
use half::f16;

/// `c = op(a)·op(b)` per `geom` (cuBLAS's roles: `a` is cuBLAS's A), in the operands' dtype.
pub(super) fn gemm(
    g: &Gpu,
    geom: &GemmGeometry,
    a: &CudaStorage,
    b: &CudaStorage,
    c: &mut CudaStorage,
) -> Result<()> {
    let blas = g.blas()?;
    // cudarc's cuBLAS calls do not make the context current themselves (its driver calls do).
    g.ctx.bind_to_thread().cu("matmul")?;
    match c.dtype() {
        DType::F16 => typed::<f16>(blas, geom, a, b, c, f16::ONE, f16::ZERO),
        DType::F32 => typed::<f32>(blas, geom, a, b, c, 1.0, 0.0),
        DType::F64 => typed::<f64>(blas, geom, a, b, c, 1.0, 0.0),
    }
}

fn op(t: bool) -> cublasOperation_t {
    if t {
        cublasOperation_t::CUBLAS_OP_T
    } else {
        cublasOperation_t::CUBLAS_OP_N
    }
}

fn typed<T>(
    blas: &CudaBlas,
    g: &GemmGeometry,
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
        transa: op(g.transa),
        transb: op(g.transb),
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
    // SAFETY: the buffers hold c.dtype() elements (== T, dispatched above), and the views cover
    // exactly the element counts the launcher checked.
    let bad = || Error::bad("matmul", "operand buffer smaller than its element count");
    let av = unsafe { a.buf().transmute::<T>(a_len) }.ok_or_else(bad)?;
    let bv = unsafe { b.buf().transmute::<T>(b_len) }.ok_or_else(bad)?;
    let mut cv = unsafe { c.buf_mut().transmute_mut::<T>(c_len) }.ok_or_else(bad)?;
    // SAFETY: shapes, leading dimensions and batch strides describe operands inside these views
    // (matmul.rs); cuBLAS runs on the device's single stream.
    let r = unsafe {
        if g.batch == 1 {
            blas.gemm(cfg, &av, &bv, &mut cv)
        } else {
            blas.gemm_strided_batched(
                StridedBatchedConfig {
                    gemm: cfg,
                    batch_size: g.batch,
                    stride_a: g.stride_a,
                    stride_b: g.stride_b,
                    stride_c: g.stride_c,
                },
                &av,
                &bv,
                &mut cv,
            )
        }
    };
    r.map_err(|e| Error::Msg(format!("cuda matmul (cuBLAS): {e:?}")))
}
