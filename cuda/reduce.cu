// Reduction kernels for src/ops/reduce.rs: `SumKeep` (sum over some dims, keeping them as extent 1).
//
// Two strategies, chosen by the launcher (src/backend/cuda/reduce.rs):
// - `sum_thread_*`: one thread per output, a sequential loop over its reduced elements. Used when each
//   output sums few elements, or when neighbouring outputs are neighbours in memory (reads coalesce).
// - `sum_block_*`: one block per output (grid-stride over outputs), each thread sums a strided share,
//   then a warp-shuffle tree and a shared-memory step combine the block's partial sums.
//
// Invariants:
// - `kept` describes the output: its dims in row-major output order with the *input* stride of each;
//   `red` describes the reduced dims with their input strides. Both are collapsed by the launcher.
// - Accumulation is in `Acc<T>` (f32 for f16 and f32, f64 for f64); the result is rounded once.
// - `sum_block_*` needs blockDim.x to be a multiple of 32 and at most 1024 (launcher uses 256); every
//   thread of a block runs the same number of outer iterations, so the __syncthreads() are uniform.
#include "common.cuh"

__device__ __forceinline__ float shfl_down(float v, int o) { return __shfl_down_sync(0xffffffffu, v, o); }
__device__ __forceinline__ double shfl_down(double v, int o) { return __shfl_down_sync(0xffffffffu, v, o); }

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
    for (int o = 16; o > 0; o >>= 1) v += shfl_down(v, o);
    return v;
}

template <typename T>
__device__ void sum_thread_impl(i64 n_out, i64 n_red, const StridedArgs &kept, const StridedArgs &red,
                                const T *x, T *y) {
    typedef typename Acc<T>::type A;
    for (i64 o = gs_start(); o < n_out; o += gs_step()) {
        const i64 base = strided_offset(kept, o);
        A acc = A(0);
        for (i64 r = 0; r < n_red; ++r) acc += ld(x, base + strided_offset(red, r));
        st(y, o, acc);
    }
}

template <typename T>
__device__ void sum_block_impl(i64 n_out, i64 n_red, const StridedArgs &kept, const StridedArgs &red,
                               const T *x, T *y) {
    typedef typename Acc<T>::type A;
    __shared__ A partial[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = (blockDim.x + 31) >> 5;
    for (i64 o = blockIdx.x; o < n_out; o += gridDim.x) {
        const i64 base = strided_offset(kept, o);
        A acc = A(0);
        for (i64 r = threadIdx.x; r < n_red; r += blockDim.x) acc += ld(x, base + strided_offset(red, r));
        acc = warp_sum(acc);
        if (lane == 0) partial[warp] = acc;
        __syncthreads();
        if (warp == 0) {
            A v = lane < n_warps ? partial[lane] : A(0);
            v = warp_sum(v);
            if (lane == 0) st(y, o, v);
        }
        __syncthreads(); // `partial` is reused by the next output
    }
}

#define REDUCE(SUF, T)                                                                                       \
    extern "C" __global__ void sum_thread_##SUF(i64 n_out, i64 n_red, StridedArgs kept, StridedArgs red,    \
                                                const T *x, T *y) {                                         \
        sum_thread_impl<T>(n_out, n_red, kept, red, x, y);                                                  \
    }                                                                                                        \
    extern "C" __global__ void sum_block_##SUF(i64 n_out, i64 n_red, StridedArgs kept, StridedArgs red,     \
                                               const T *x, T *y) {                                          \
        sum_block_impl<T>(n_out, n_red, kept, red, x, y);                                                   \
    }

REDUCE(f16, __half)
REDUCE(f32, float)
REDUCE(f64, double)
