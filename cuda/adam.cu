// Adam step (src/optim/adam.rs `AdamStep`): one elementwise launch per parameter tensor.
//
// Math, exactly the CPU's (scalars rounded from f64 to the compute type A, like `T::c`):
//   d = g·inv_scale + wd·p;  m' = β1·m + (1−β1)·d;  v' = β2·v + (1−β2)·d²;
//   p' = p − (lr/bias1)·m' / (√v' / √bias2 + ε)
// with bias1 = 1 − β1^t and bias2 = 1 − β2^t computed on the host.
//
// Invariants: 1-d grid-stride over n elements, 64-bit indexing; outputs never alias inputs (the CPU
// contract returns new buffers). nvcc may contract into FMAs, so results can differ in the last ulp.
#include "common.cuh"

template <typename T>
__device__ void adam_step_impl(i64 n, double lr_d, double b1_d, double b2_d, double eps_d, double wd_d,
                               double inv_d, double bias1, double bias2, const T *p, const T *g, const T *m,
                               const T *v, T *p_out, T *m_out, T *v_out) {
    typedef typename Acc<T>::type A;
    const A b1 = (A)b1_d, b2 = (A)b2_d, eps = (A)eps_d, wd = (A)wd_d, inv = (A)inv_d;
    const A step_size = (A)(lr_d / bias1), sqrt_bias2 = (A)sqrt(bias2);
    const A one = (A)1;
    for (i64 i = gs_start(); i < n; i += gs_step()) {
        const A pv = ld(p, i);
        const A d = ld(g, i) * inv + wd * pv;
        const A mi = b1 * ld(m, i) + (one - b1) * d;
        const A vi = b2 * ld(v, i) + (one - b2) * d * d;
        st(m_out, i, mi);
        st(v_out, i, vi);
        st(p_out, i, pv - step_size * mi / (sqrt(vi) / sqrt_bias2 + eps));
    }
}

#define ADAM(SUF, T)                                                                                         \
    extern "C" __global__ void adam_step_##SUF(i64 n, double lr, double b1, double b2, double eps, double wd, \
                                               double inv, double bias1, double bias2, const T *p,          \
                                               const T *g, const T *m, const T *v, T *p_out, T *m_out,      \
                                               T *v_out) {                                                  \
        adam_step_impl<T>(n, lr, b1, b2, eps, wd, inv, bias1, bias2, p, g, m, v, p_out, m_out, v_out);      \
    }

ADAM(f16, __half)
ADAM(f32, float)
ADAM(f64, double)
