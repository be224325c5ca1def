// Optimiser kernels (src/optim/sgd.rs): `SgdStep` (one parameter tensor), `AllFinite`, and the
// multi-tensor variants that a later fused optimiser step will launch (see the layout below).
//
// Grid mappings (launchers in src/backend/cuda/sgd.rs):
// - `sgd_step_*`: 1-d grid-stride over the n elements; each thread updates p and buf of its elements.
// - `all_finite_*`: 1-d grid-stride; each block ORs its threads' "saw a non-finite" bits with
//   __syncthreads_or and one thread per block sets the integer flag with atomicOr (an integer OR is
//   order-independent, so the result is deterministic). `all_finite_finish` (one thread) turns the flag
//   into the f32 answer: 1 when every element is finite, else 0 (also 1 for zero elements).
// - `multi_tensor_*`: one block per chunk of `chunk` elements of one tensor, grid-stride over chunks
//   (see `SgdTensorArgs`).
//
// SgdStep math, exactly the CPU's (scalars rounded from f64 to the compute type A, like `T::c`):
//   d = g·inv_scale + wd·p;  b = first ? d : μ·buf + d;  step = nesterov ? d + μ·b : b;
//   buf' = b;  p' = p − lr·step.
// On the first step `buf` is not read (the CPU ignores it too).
//
// Invariants: 64-bit indexing; outputs never alias inputs in the single-tensor kernels (the CPU
// contract returns new buffers); the multi-tensor kernels update in place, each element by exactly one
// thread. nvcc may contract a·b + c into an FMA, so results can differ from the CPU in the last ulp.
#include "common.cuh"

__device__ __forceinline__ bool is_fin(float v) { return isfinite(v); }
__device__ __forceinline__ bool is_fin(double v) { return isfinite(v); }

template <typename T>
__device__ void sgd_step_impl(i64 n, double lr_d, double mu_d, double wd_d, double inv_d, int first, int nesterov,
                              const T *p, const T *g, const T *buf, T *p_out, T *b_out) {
    typedef typename Acc<T>::type A;
    const A lr = (A)lr_d, mu = (A)mu_d, wd = (A)wd_d, inv = (A)inv_d;
    for (i64 i = gs_start(); i < n; i += gs_step()) {
        const A pv = ld(p, i);
        const A d = ld(g, i) * inv + wd * pv;
        const A b = first ? d : mu * ld(buf, i) + d;
        const A step = nesterov ? d + mu * b : b;
        st(b_out, i, b);
        st(p_out, i, pv - lr * step);
    }
}

template <typename T>
__device__ void all_finite_impl(i64 n, const T *x, unsigned *flag) {
    int bad = 0;
    for (i64 i = gs_start(); i < n; i += gs_step()) bad |= !is_fin(ld(x, i));
    bad = __syncthreads_or(bad);
    if (threadIdx.x == 0 && bad) atomicOr(flag, 1u);
}

extern "C" __global__ void all_finite_finish(const unsigned *flag, float *out) {
    if (threadIdx.x == 0 && blockIdx.x == 0) out[0] = *flag ? 0.0f : 1.0f;
}

#define SGD(SUF, T)                                                                                          \
    extern "C" __global__ void sgd_step_##SUF(i64 n, double lr, double mu, double wd, double inv, int first, \
                                              int nesterov, const T *p, const T *g, const T *buf, T *p_out,  \
                                              T *b_out) {                                                   \
        sgd_step_impl<T>(n, lr, mu, wd, inv, first, nesterov, p, g, buf, p_out, b_out);                     \
    }                                                                                                        \
    extern "C" __global__ void all_finite_##SUF(i64 n, const T *x, unsigned *flag) {                        \
        all_finite_impl<T>(n, x, flag);                                                                     \
    }

SGD(f16, __half)
SGD(f32, float)
SGD(f64, double)

// ---- multi-tensor apply (not wired yet: for a fused optimiser step over all parameters) ----
//
// Argument layout. The host builds, for the P parameter tensors of one step:
// - `ts`: a device array of P `SgdTensorArgs` (48 bytes each, 8-aligned; a Rust mirror must be
//   `#[repr(C)]` with the same field order: 4 pointers as u64, i64, f32, i32);
// - `chunk_start`: a device array of P + 1 i64, the exclusive prefix sum of ceil(numel_t / chunk)
//   (chunk_start[0] = 0, chunk_start[P] = total chunks); tensors with numel 0 contribute 0 chunks;
// - `chunk`: elements per chunk (e.g. 65536), the same for every tensor;
// - `flag`: a device u32, zeroed before `multi_tensor_all_finite_*`; `multi_tensor_sgd_*` reads it and
//   does nothing when it is non-zero, so an overflowing step is skipped without a host round trip (the
//   host reads the flag later, e.g. with the loss, to adjust the loss scale).
// Launch both with any grid (grid-stride over chunks), blockDim a multiple of 32 (256).
// The gradient dtype is the kernel suffix (f16 or f32); masters and momentum buffers are f32.
struct SgdTensorArgs {
    float *master;     // f32 master weights, updated in place
    float *momentum;   // f32 momentum buffer, updated in place (not read when FIRST is set)
    const void *grad;  // gradient, f16 or f32 per the kernel suffix
    __half *param_f16; // f16 model weights refreshed from the new master, or null (f32 model)
    i64 numel;
    float weight_decay; // 0 for biases and BN γ/β under no-bias-decay
    int flags;          // bit 0: first step for this tensor (momentum = d)
};

#define SGD_FIRST 1

// The tensor owning chunk `c`: the largest t with chunk_start[t] ≤ c (binary search; P is small).
__device__ __forceinline__ int owner_of(const i64 *chunk_start, int n_tensors, i64 c) {
    int lo = 0, hi = n_tensors - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) >> 1;
        if (chunk_start[mid] <= c) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

template <typename G>
__device__ void multi_tensor_all_finite_impl(const SgdTensorArgs *ts, int n_tensors, const i64 *chunk_start,
                                             i64 chunk, unsigned *flag) {
    const i64 total = chunk_start[n_tensors];
    for (i64 c = blockIdx.x; c < total; c += gridDim.x) { // uniform per block
        const int t = owner_of(chunk_start, n_tensors, c);
        const SgdTensorArgs a = ts[t];
        const i64 begin = (c - chunk_start[t]) * chunk;
        const i64 end = min(begin + chunk, a.numel);
        const G *g = (const G *)a.grad;
        int bad = 0;
        for (i64 i = begin + threadIdx.x; i < end; i += blockDim.x) bad |= !is_fin(ld(g, i));
        bad = __syncthreads_or(bad);
        if (threadIdx.x == 0 && bad) atomicOr(flag, 1u);
    }
}

template <typename G>
__device__ void multi_tensor_sgd_impl(const SgdTensorArgs *ts, int n_tensors, const i64 *chunk_start, i64 chunk,
                                      float lr, float mu, float inv_scale, int nesterov, const unsigned *flag) {
    if (*flag) return; // non-finite gradients somewhere: skip the whole step
    const i64 total = chunk_start[n_tensors];
    for (i64 c = blockIdx.x; c < total; c += gridDim.x) {
        const int t = owner_of(chunk_start, n_tensors, c);
        const SgdTensorArgs a = ts[t];
        const i64 begin = (c - chunk_start[t]) * chunk;
        const i64 end = min(begin + chunk, a.numel);
        const G *g = (const G *)a.grad;
        const bool first = a.flags & SGD_FIRST;
        for (i64 i = begin + threadIdx.x; i < end; i += blockDim.x) {
            const float pv = a.master[i];
            const float d = ld(g, i) * inv_scale + a.weight_decay * pv;
            const float b = first ? d : mu * a.momentum[i] + d;
            const float step = nesterov ? d + mu * b : b;
            const float np = pv - lr * step;
            a.momentum[i] = b;
            a.master[i] = np;
            if (a.param_f16) a.param_f16[i] = __float2half_rn(np);
        }
    }
}

#define MULTI(SUF, G)                                                                                        \
    extern "C" __global__ void multi_tensor_all_finite_##SUF(const SgdTensorArgs *ts, int n_tensors,        \
                                                             const i64 *chunk_start, i64 chunk,             \
                                                             unsigned *flag) {                              \
        multi_tensor_all_finite_impl<G>(ts, n_tensors, chunk_start, chunk, flag);                           \
    }                                                                                                        \
    extern "C" __global__ void multi_tensor_sgd_##SUF(const SgdTensorArgs *ts, int n_tensors,               \
                                                      const i64 *chunk_start, i64 chunk, float lr, float mu, \
                                                      float inv_scale, int nesterov, const unsigned *flag) { \
        multi_tensor_sgd_impl<G>(ts, n_tensors, chunk_start, chunk, lr, mu, inv_scale, nesterov, flag);     \
    }

MULTI(f16, __half)
MULTI(f32, float)
