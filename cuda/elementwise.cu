// Elementwise kernels for src/ops/elementwise.rs: `Unary`, `UnaryBackward` and `Binary` (with numpy
// broadcasting), for f16 (arithmetic in f32), f32 and f64.
//
// Invariants:
// - Op codes mirror the Rust enums exactly (src/backend/cuda/elementwise.rs `unary_code`,
//   `binary_code`); the op is a kernel argument, uniform across the grid, so the switch never diverges.
// - Scalar parameters arrive as f64 and are rounded to the compute type first, as the CPU does
//   (`T::c(param)`).
// - Formulas match `UnaryOp::forward` / `UnaryOp::derivative` term by term; no fast-math, so exp, log,
//   tanh, pow are the accurate libdevice versions.
// - Binary strided kernels read each input at the offset given by its own strides (0 on broadcast
//   dims); the output is dense row-major. Inputs and output never alias.
#include "common.cuh"

enum UnaryCode {
    U_RELU = 0,
    U_LEAKY_RELU = 1,
    U_TANH = 2,
    U_SIGMOID = 3,
    U_EXP = 4,
    U_LOG = 5,
    U_SQRT = 6,
    U_ABS = 7,
    U_SQUARE = 8,
    U_RECIP = 9,
    U_AFFINE = 10,
    U_POWF = 11,
};

enum BinaryCode { B_ADD = 0, B_SUB = 1, B_MUL = 2, B_DIV = 3 };

__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return exp(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ double m_log(double x) { return log(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float m_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double m_abs(double x) { return fabs(x); }
__device__ __forceinline__ float m_max(float a, float b) { return fmaxf(a, b); }
__device__ __forceinline__ double m_max(double a, double b) { return fmax(a, b); }
__device__ __forceinline__ float m_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double m_pow(double a, double b) { return pow(a, b); }

template <typename A>
__device__ __forceinline__ A unary_fwd(int op, A x, A p0, A p1) {
    switch (op) {
    case U_RELU: return m_max(x, A(0));
    case U_LEAKY_RELU: return x > A(0) ? x : x * p0;
    case U_TANH: return m_tanh(x);
    case U_SIGMOID: return A(1) / (A(1) + m_exp(-x));
    case U_EXP: return m_exp(x);
    case U_LOG: return m_log(x);
    case U_SQRT: return m_sqrt(x);
    case U_ABS: return m_abs(x);
    case U_SQUARE: return x * x;
    case U_RECIP: return A(1) / x;
    case U_AFFINE: return x * p0 + p1;
    case U_POWF: return m_pow(x, p0);
    default: return x - x + A(NAN);
    }
}

// f'(x) given x and y = f(x); `pm1` is the Powf exponent minus one, rounded like the CPU's `T::c(p - 1.0)`.
template <typename A>
__device__ __forceinline__ A unary_deriv(int op, A x, A y, A p0, A pm1) {
    switch (op) {
    case U_RELU: return y > A(0) ? A(1) : A(0);  // from the output, as the CPU twin
    case U_LEAKY_RELU: return x > A(0) ? A(1) : p0;
    case U_TANH: return A(1) - y * y;
    case U_SIGMOID: return y * (A(1) - y);
    case U_EXP: return y;
    case U_LOG: return A(1) / x;
    case U_SQRT: return A(0.5) / y;
    case U_ABS: return x > A(0) ? A(1) : (x < A(0) ? A(-1) : (x == A(0) ? A(0) : x));
    case U_SQUARE: return A(2) * x;
    case U_RECIP: return -y * y;
    case U_AFFINE: return p0;
    case U_POWF: return p0 * m_pow(x, pm1);
    default: return x - x + A(NAN);
    }
}

template <typename A>
__device__ __forceinline__ A binary_apply(int op, A a, A b) {
    switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    default: return a - a + A(NAN);
    }
}

template <typename T>
__device__ void unary_impl(i64 n, int op, double p0, double p1, const T *x, T *y) {
    typedef typename Acc<T>::type A;
    const A q0 = (A)p0, q1 = (A)p1;
    for (i64 i = gs_start(); i < n; i += gs_step()) st(y, i, unary_fwd<A>(op, ld(x, i), q0, q1));
}

template <typename T>
__device__ void unary_bwd_impl(i64 n, int op, double p0, double p1, const T *x, const T *y, const T *dy,
                               T *dx) {
    typedef typename Acc<T>::type A;
    const A q0 = (A)p0, q1 = (A)p1;
    for (i64 i = gs_start(); i < n; i += gs_step())
        st(dx, i, ld(dy, i) * unary_deriv<A>(op, ld(x, i), ld(y, i), q0, q1));
}

template <typename T>
__device__ void binary_contig_impl(i64 n, int op, const T *a, const T *b, T *out) {
    typedef typename Acc<T>::type A;
    for (i64 i = gs_start(); i < n; i += gs_step()) st(out, i, binary_apply<A>(op, ld(a, i), ld(b, i)));
}

// `sa` and `sb` share `dims` and `rank`; only their strides differ.
template <typename T>
__device__ void binary_strided_impl(i64 n, int op, const StridedArgs &sa, const StridedArgs &sb, const T *a,
                                    const T *b, T *out) {
    typedef typename Acc<T>::type A;
    for (i64 i = gs_start(); i < n; i += gs_step()) {
        i64 rem = i, oa = 0, ob = 0;
        for (int d = sa.rank - 1; d >= 0; --d) {
            i64 dn = sa.dims[d];
            i64 q = rem / dn;
            i64 idx = rem - q * dn;
            oa += idx * sa.strides[d];
            ob += idx * sb.strides[d];
            rem = q;
        }
        st(out, i, binary_apply<A>(op, ld(a, oa), ld(b, ob)));
    }
}

#define ELEMENTWISE(SUF, T)                                                                                  \
    extern "C" __global__ void unary_##SUF(i64 n, int op, double p0, double p1, const T *x, T *y) {       \
        unary_impl<T>(n, op, p0, p1, x, y);                                                                 \
    }                                                                                                        \
    extern "C" __global__ void unary_bwd_##SUF(i64 n, int op, double p0, double p1, const T *x, const T *y, \
                                               const T *dy, T *dx) {                                        \
        unary_bwd_impl<T>(n, op, p0, p1, x, y, dy, dx);                                                     \
    }                                                                                                        \
    extern "C" __global__ void binary_contig_##SUF(i64 n, int op, const T *a, const T *b, T *out) {        \
        binary_contig_impl<T>(n, op, a, b, out);                                                            \
    }                                                                                                        \
    extern "C" __global__ void binary_strided_##SUF(i64 n, int op, StridedArgs sa, StridedArgs sb,          \
                                                    const T *a, const T *b, T *out) {                       \
        binary_strided_impl<T>(n, op, sa, sb, a, b, out);                                                   \
    }

ELEMENTWISE(f16, __half)
ELEMENTWISE(f32, float)
ELEMENTWISE(f64, double)
