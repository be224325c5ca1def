// The fake GPU's cuBLAS: the subset of the cuBLAS v2 API that cudarc's `CudaBlas` (new, set_stream,
// pointer mode, drop) and `Gemm<f16/f32/f64>` (gemm, gemm_strided_batched) call for the engine's
// src/backend/cuda/blas.rs, computed on the CPU. Part of libengine_fakegpu.so (see fakegpu.h). The
// engine calls nothing from cuBLASLt, so nothing of it is here.
//
// Invariants:
// - Every entry point takes fakegpu::guard() first. Handles are heap objects kept in a registry: a
//   null or destroyed handle gives CUBLAS_STATUS_NOT_INITIALIZED. Status values are only ones cudarc's
//   cublasStatus_t has.
// - A GEMM call validates synchronously as cuBLAS does (m, n, k, batch ≥ 0; lda ≥ max(1, rows of A as
//   stored), likewise ldb and ldc; operations; type/compute combination; algorithm) and returns
//   INVALID_VALUE / NOT_SUPPORTED; then it queues the work on the handle's stream (default: null),
//   capturing everything by value. Host-mode alpha/beta are read at call time, device-mode ones when
//   the work runs (after check_device). The queued op checks every matrix it touches first.
// - Semantics are cuBLAS's, column-major: C = alpha·op(A)·op(B) + beta·C per batch, with strides;
//   C is not read when beta == 0, A and B are not read when alpha == 0 or k == 0; m == 0, n == 0 or
//   batch == 0 does nothing. f16 operands accumulate in float (COMPUTE_32F) and C is rounded once.
//   Float GEMMs use plain f32 arithmetic unless TF32 is requested (CUBLAS_COMPUTE_32F_FAST_TF32, or
//   the TF32 math mode with COMPUTE_32F), in which case the inputs are rounded to TF32 first;
//   COMPUTE_32F_FAST_16F rounds them to half. COMPUTE_16F (half accumulation) and bf16/complex/integer
//   types are NOT_SUPPORTED.
#include "fakegpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>
#include <vector>

namespace {

// cublasStatus_t
enum : int {
    OK = 0,
    NOT_INITIALIZED = 1,
    INVALID_VALUE = 7,
    EXECUTION_FAILED = 13,
    NOT_SUPPORTED = 15,
};
enum : int { OP_N = 0, OP_T = 1, OP_C = 2 };       // cublasOperation_t (CONJG = 3 is refused)
enum : int { R_32F = 0, R_64F = 1, R_16F = 2 };    // cudaDataType_t
enum : int {                                       // cublasComputeType_t
    C_32F = 68, C_32F_PEDANTIC = 69, C_32F_FAST_16F = 74, C_32F_FAST_TF32 = 77,
    C_64F = 70, C_64F_PEDANTIC = 71,
};
enum : int { MATH_TF32 = 3, MATH_DISALLOW_REDUCED = 16 }; // cublasMath_t
enum : int { PTR_HOST = 0, PTR_DEVICE = 1 };              // cublasPointerMode_t
enum Round : int { ROUND_NONE, ROUND_TF32, ROUND_HALF };

struct Handle {
    void *stream = nullptr;
    int pointer_mode = PTR_HOST;
    int math_mode = 0;
    void *workspace = nullptr;
    size_t workspace_size = 0;
};

std::unordered_set<const Handle *> &registry() {
    static auto *s = new std::unordered_set<const Handle *>(); // leaked: no exit-order issues
    return *s;
}
Handle *live(Handle *h) { return h && registry().count(h) ? h : nullptr; }

// ------------------------------------------------------------------------------------------------
// Numbers (h2f, f2h, tf32: fakegpu.h)

using fakegpu::f2h;
using fakegpu::h2f;
using fakegpu::tf32;

size_t type_size(int t) { return t == R_64F ? 8 : t == R_32F ? 4 : 2; }

// Element i of a matrix of type t, in the compute type T.
template <class T> inline T load(uint64_t base, int t, long long i) {
    if (t == R_16F) return T(h2f(reinterpret_cast<const uint16_t *>(base)[i]));
    if (t == R_32F) return T(reinterpret_cast<const float *>(base)[i]);
    return T(reinterpret_cast<const double *>(base)[i]);
}
template <class T> inline void store(uint64_t base, int t, long long i, T v) {
    if (t == R_16F) reinterpret_cast<uint16_t *>(base)[i] = f2h(float(v));
    else if (t == R_32F) reinterpret_cast<float *>(base)[i] = float(v);
    else reinterpret_cast<double *>(base)[i] = double(v);
}

// ------------------------------------------------------------------------------------------------
// GEMM

struct Gemm {
    const char *what;
    int transa, transb, m, n, k, batch;
    uint64_t a, b, c;
    long long lda, ldb, ldc, sa, sb, sc;
    int ta, tb, tc;  // cudaDataType_t of A, B, C
    bool f64;        // compute (and scaling) type double, else float
    Round round;     // rounding of float inputs before the products
    bool device_scalars;
    double alpha, beta;          // host mode: read at call time
    uint64_t alpha_p, beta_p;    // device mode: read when the work runs
};

// Bytes [lo, hi) relative to `base` that `batch` matrices of rows×cols (leading dimension ld,
// batch stride s, elements of `es` bytes) cover.
void span(int rows, int cols, long long ld, long long s, int batch, size_t es, long long *lo,
          long long *hi) {
    long long one = (long long)(cols - 1) * ld + rows;
    long long last = (long long)(batch - 1) * s;
    *lo = std::min(0LL, last) * (long long)es;
    *hi = (std::max(0LL, last) + one) * (long long)es;
}

bool check(uint64_t base, int rows, int cols, long long ld, long long s, int batch, int t,
           const char *what) {
    long long lo, hi;
    span(rows, cols, ld, s, batch, type_size(t), &lo, &hi);
    return fakegpu::check_device(base + uint64_t(lo), size_t(hi - lo), what);
}

template <class T> void run(const Gemm &g) {
    T alpha = T(g.alpha), beta = T(g.beta);
    if (g.device_scalars) {
        size_t es = sizeof(T);
        if (!fakegpu::check_device(g.alpha_p, es, g.what) ||
            !fakegpu::check_device(g.beta_p, es, g.what))
            return;
        alpha = *reinterpret_cast<const T *>(g.alpha_p);
        beta = *reinterpret_cast<const T *>(g.beta_p);
    }
    const bool ta = g.transa != OP_N, tb = g.transb != OP_N;
    const int m = g.m, n = g.n, k = g.k;
    const bool read_ab = alpha != T(0) && k > 0;
    if (!check(g.c, m, n, g.ldc, g.sc, g.batch, g.tc, g.what)) return;
    if (read_ab && (!check(g.a, ta ? k : m, ta ? m : k, g.lda, g.sa, g.batch, g.ta, g.what) ||
                    !check(g.b, tb ? n : k, tb ? k : n, g.ldb, g.sb, g.batch, g.tb, g.what)))
        return;
    std::vector<T> ap(read_ab ? size_t(m) * k : 0), bp(read_ab ? size_t(k) * n : 0);
    std::vector<T> acc(size_t(m), T(0));
    auto rounded = [&](T v) -> T {
        if constexpr (sizeof(T) == 4) {
            if (g.round == ROUND_TF32) return tf32(v);
            if (g.round == ROUND_HALF) return h2f(f2h(v));
        }
        return v;
    };
    for (int bi = 0; bi < g.batch; bi++) {
        uint64_t a = g.a + uint64_t(bi * g.sa * (long long)type_size(g.ta));
        uint64_t b = g.b + uint64_t(bi * g.sb * (long long)type_size(g.tb));
        uint64_t c = g.c + uint64_t(bi * g.sc * (long long)type_size(g.tc));
        if (read_ab) { // packed column-major op(A) (m×k) and op(B) (k×n)
            for (int p = 0; p < k; p++)
                for (int i = 0; i < m; i++)
                    ap[size_t(p) * m + i] =
                        rounded(load<T>(a, g.ta, ta ? i * g.lda + p : p * g.lda + i));
            for (int j = 0; j < n; j++)
                for (int p = 0; p < k; p++)
                    bp[size_t(j) * k + p] =
                        rounded(load<T>(b, g.tb, tb ? p * g.ldb + j : j * g.ldb + p));
        }
        for (int j = 0; j < n; j++) {
            std::fill(acc.begin(), acc.end(), T(0));
            if (read_ab)
                for (int p = 0; p < k; p++) {
                    const T bv = bp[size_t(j) * k + p];
                    const T *col = ap.data() + size_t(p) * m;
                    for (int i = 0; i < m; i++) acc[i] += col[i] * bv;
                }
            for (int i = 0; i < m; i++) {
                long long ci = (long long)j * g.ldc + i;
                T v = alpha * acc[i];
                if (beta != T(0)) v += beta * load<T>(c, g.tc, ci);
                store<T>(c, g.tc, ci, v);
            }
        }
    }
}

// Validates and queues one (strided batched) GEMM; `alpha`/`beta` point to the scaling type
// (double when f64, else float).
int gemm(Handle *hp, const char *what, int transa, int transb, int m, int n, int k, const void *alpha,
         const void *a, int ta, long long lda, long long sa, const void *b, int tb, long long ldb,
         long long sb, const void *beta, void *c, int tc, long long ldc, long long sc, int batch,
         bool f64, Round round) {
    Handle *h = live(hp);
    if (!h) return NOT_INITIALIZED;
    auto op_ok = [](int op) { return op == OP_N || op == OP_T || op == OP_C; };
    if (!op_ok(transa) || !op_ok(transb) || m < 0 || n < 0 || k < 0 || batch < 0) return INVALID_VALUE;
    long long rows_a = transa == OP_N ? m : k, rows_b = transb == OP_N ? k : n;
    if (lda < std::max(1LL, rows_a) || ldb < std::max(1LL, rows_b) || ldc < std::max(1LL, (long long)m))
        return INVALID_VALUE;
    if (!alpha || !beta) return INVALID_VALUE;
    if (fakegpu::failed()) return EXECUTION_FAILED;
    if (m == 0 || n == 0 || batch == 0) return OK;
    Gemm g{what, transa, transb, m, n, k, batch,
           reinterpret_cast<uint64_t>(a), reinterpret_cast<uint64_t>(b), reinterpret_cast<uint64_t>(c),
           lda, ldb, ldc, sa, sb, sc, ta, tb, tc, f64, round, h->pointer_mode == PTR_DEVICE,
           0.0, 0.0, reinterpret_cast<uint64_t>(alpha), reinterpret_cast<uint64_t>(beta)};
    if (!g.device_scalars) {
        g.alpha = f64 ? *static_cast<const double *>(alpha) : *static_cast<const float *>(alpha);
        g.beta = f64 ? *static_cast<const double *>(beta) : *static_cast<const float *>(beta);
    }
    fakegpu::enqueue(h->stream, what, [g] {
        if (g.f64) run<double>(g);
        else run<float>(g);
    });
    return OK;
}

// Rounding of float inputs for a plain float GEMM under the handle's math mode.
Round float_round(Handle *h) {
    return live(h) && (h->math_mode & ~MATH_DISALLOW_REDUCED) == MATH_TF32 ? ROUND_TF32 : ROUND_NONE;
}

// The *Ex type/compute combinations supported here: sets the scaling type and the input rounding.
int ex_config(Handle *h, int ta, int tb, int tc, int compute, int algo, bool *f64, Round *round) {
    if (!(algo >= -1 && algo <= 23) && !(algo >= 99 && algo <= 115)) return INVALID_VALUE;
    if (ta != tb) return NOT_SUPPORTED;
    *f64 = false;
    *round = ROUND_NONE;
    if (ta == R_64F && tc == R_64F && (compute == C_64F || compute == C_64F_PEDANTIC)) {
        *f64 = true;
        return OK;
    }
    bool half_in = ta == R_16F && (tc == R_16F || tc == R_32F);
    bool float_in = ta == R_32F && tc == R_32F;
    if (!half_in && !float_in) return NOT_SUPPORTED;
    switch (compute) {
    case C_32F: *round = float_in ? float_round(h) : ROUND_NONE; return OK;
    case C_32F_PEDANTIC: return OK;
    case C_32F_FAST_TF32: *round = float_in ? ROUND_TF32 : ROUND_NONE; return OK;
    case C_32F_FAST_16F: *round = float_in ? ROUND_HALF : ROUND_NONE; return OK;
    default: return NOT_SUPPORTED;
    }
}

} // namespace

// ------------------------------------------------------------------------------------------------
// Handle

FAKEGPU_API int cublasCreate_v2(Handle **out) {
    auto g = fakegpu::guard();
    if (!out) return INVALID_VALUE;
    Handle *h = new Handle();
    registry().insert(h);
    *out = h;
    return OK;
}
FAKEGPU_API int cublasDestroy_v2(Handle *h) {
    auto g = fakegpu::guard();
    if (!live(h)) return NOT_INITIALIZED;
    registry().erase(h);
    delete h;
    return OK;
}
FAKEGPU_API int cublasSetStream_v2(Handle *h, void *stream) {
    auto g = fakegpu::guard();
    if (!live(h)) return NOT_INITIALIZED;
    h->stream = stream;
    return OK;
}
FAKEGPU_API int cublasGetStream_v2(Handle *h, void **stream) {
    auto g = fakegpu::guard();
    if (!live(h)) return NOT_INITIALIZED;
    if (!stream) return INVALID_VALUE;
    *stream = h->stream;
    return OK;
}
FAKEGPU_API int cublasSetPointerMode_v2(Handle *h, int mode) {
    auto g = fakegpu::guard();
    if (!live(h)) return NOT_INITIALIZED;
    if (mode != PTR_HOST && mode != PTR_DEVICE) return INVALID_VALUE;
    h->pointer_mode = mode;
    return OK;
}
FAKEGPU_API int cublasGetPointerMode_v2(Handle *h, int *mode) {
    auto g = fakegpu::guard();
    if (!live(h)) return NOT_INITIALIZED;
    if (!mode) return INVALID_VALUE;
    *mode = h->pointer_mode;
    return OK;
}
FAKEGPU_API int cublasSetMathMode(Handle *h, int mode) {
    auto g = fakegpu::guard();
    if (!live(h)) return NOT_INITIALIZED;
    int base = mode & ~MATH_DISALLOW_REDUCED;
    if (base < 0 || base > 4 || (mode & ~(MATH_DISALLOW_REDUCED | 7)) != 0) return INVALID_VALUE;
    h->math_mode = mode;
    return OK;
}
FAKEGPU_API int cublasGetMathMode(Handle *h, int *mode) {
    auto g = fakegpu::guard();
    if (!live(h)) return NOT_INITIALIZED;
    if (!mode) return INVALID_VALUE;
    *mode = h->math_mode;
    return OK;
}
FAKEGPU_API int cublasSetWorkspace_v2(Handle *h, void *workspace, size_t size) {
    auto g = fakegpu::guard();
    if (!live(h)) return NOT_INITIALIZED;
    if (size > 0 && !workspace) return INVALID_VALUE;
    h->workspace = workspace; // kept only to be a faithful setter: the GEMMs here need none
    h->workspace_size = size;
    return OK;
}
FAKEGPU_API int cublasGetVersion_v2(Handle *h, int *version) {
    auto g = fakegpu::guard();
    if (!live(h)) return NOT_INITIALIZED;
    if (!version) return INVALID_VALUE;
    *version = 130000;
    return OK;
}
FAKEGPU_API const char *cublasGetStatusName(int status) {
    switch (status) {
    case OK: return "CUBLAS_STATUS_SUCCESS";
    case NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}
FAKEGPU_API const char *cublasGetStatusString(int status) {
    switch (status) {
    case OK: return "success";
    case NOT_INITIALIZED: return "the library was not initialized";
    case INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case EXECUTION_FAILED: return "the GPU program failed to execute";
    case NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return "unknown error";
    }
}

// ------------------------------------------------------------------------------------------------
// GEMMs

FAKEGPU_API int cublasSgemm_v2(Handle *h, int transa, int transb, int m, int n, int k,
                               const float *alpha, const float *a, int lda, const float *b, int ldb,
                               const float *beta, float *c, int ldc) {
    auto g = fakegpu::guard();
    return gemm(h, "cublasSgemm_v2", transa, transb, m, n, k, alpha, a, R_32F, lda, 0, b, R_32F, ldb,
                0, beta, c, R_32F, ldc, 0, 1, false, float_round(h));
}
FAKEGPU_API int cublasDgemm_v2(Handle *h, int transa, int transb, int m, int n, int k,
                               const double *alpha, const double *a, int lda, const double *b, int ldb,
                               const double *beta, double *c, int ldc) {
    auto g = fakegpu::guard();
    return gemm(h, "cublasDgemm_v2", transa, transb, m, n, k, alpha, a, R_64F, lda, 0, b, R_64F, ldb,
                0, beta, c, R_64F, ldc, 0, 1, true, ROUND_NONE);
}
FAKEGPU_API int cublasSgemmStridedBatched(Handle *h, int transa, int transb, int m, int n, int k,
                                          const float *alpha, const float *a, int lda, long long sa,
                                          const float *b, int ldb, long long sb, const float *beta,
                                          float *c, int ldc, long long sc, int batch) {
    auto g = fakegpu::guard();
    return gemm(h, "cublasSgemmStridedBatched", transa, transb, m, n, k, alpha, a, R_32F, lda, sa, b,
                R_32F, ldb, sb, beta, c, R_32F, ldc, sc, batch, false, float_round(h));
}
FAKEGPU_API int cublasDgemmStridedBatched(Handle *h, int transa, int transb, int m, int n, int k,
                                          const double *alpha, const double *a, int lda, long long sa,
                                          const double *b, int ldb, long long sb, const double *beta,
                                          double *c, int ldc, long long sc, int batch) {
    auto g = fakegpu::guard();
    return gemm(h, "cublasDgemmStridedBatched", transa, transb, m, n, k, alpha, a, R_64F, lda, sa, b,
                R_64F, ldb, sb, beta, c, R_64F, ldc, sc, batch, true, ROUND_NONE);
}
FAKEGPU_API int cublasGemmEx(Handle *h, int transa, int transb, int m, int n, int k, const void *alpha,
                             const void *a, int ta, int lda, const void *b, int tb, int ldb,
                             const void *beta, void *c, int tc, int ldc, int compute, int algo) {
    auto g = fakegpu::guard();
    if (!live(h)) return NOT_INITIALIZED;
    bool f64;
    Round round;
    if (int st = ex_config(h, ta, tb, tc, compute, algo, &f64, &round)) return st;
    return gemm(h, "cublasGemmEx", transa, transb, m, n, k, alpha, a, ta, lda, 0, b, tb, ldb, 0, beta,
                c, tc, ldc, 0, 1, f64, round);
}
FAKEGPU_API int cublasGemmStridedBatchedEx(Handle *h, int transa, int transb, int m, int n, int k,
                                           const void *alpha, const void *a, int ta, int lda,
                                           long long sa, const void *b, int tb, int ldb, long long sb,
                                           const void *beta, void *c, int tc, int ldc, long long sc,
                                           int batch, int compute, int algo) {
    auto g = fakegpu::guard();
    if (!live(h)) return NOT_INITIALIZED;
    bool f64;
    Round round;
    if (int st = ex_config(h, ta, tb, tc, compute, algo, &f64, &round)) return st;
    return gemm(h, "cublasGemmStridedBatchedEx", transa, transb, m, n, k, alpha, a, ta, lda, sa, b, tb,
                ldb, sb, beta, c, tc, ldc, sc, batch, f64, round);
}
