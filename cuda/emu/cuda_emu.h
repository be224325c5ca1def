// CUDA device built-ins on host fibers, so the kernels of cuda/*.cu compile with g++ and run on the CPU
// (the `cuda-emu` feature; build.rs includes this header before each .cu file).
//
// Model: a launch runs its blocks one after another on the calling OS thread; each thread of a block is
// a fiber (its own stack, switched by runtime.cpp's emu_switch) that runs until it reaches a barrier (__syncthreads,
// a warp shuffle, __syncthreads_or) or returns, so the interleaving is deterministic. A barrier opens
// once every thread of its scope that has not returned is waiting at it: threads that return early drop
// out, as exited threads do on the GPU. `__shared__` becomes `static`: one copy per variable, which is
// a block's shared memory because blocks run one at a time and launches are serialised (runtime.cpp
// holds a lock).
//
// Invariants and limits:
// - Warp-synchronous code must use the *_sync intrinsics with a full mask (every lane present), which is
//   what the kernels do; implicit warp-synchronous tricks are not modelled.
// - Arithmetic is the host's: no FMA contraction (-ffp-contract=off) and IEEE division, so results can
//   differ from a GPU in the last bits; tests compare against the CPU backend with tolerances.
// - Only what cuda/*.cu uses is provided; a new intrinsic fails to compile here first, on purpose.
#pragma once

#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __shared__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)

namespace emu {

struct Dim3 {
    unsigned x, y, z;
};

// The running fiber's indices: the runtime sets them before it switches to a fiber.
extern Dim3 thread_idx;
extern Dim3 block_idx;
// Per-launch extents (launches are serialised).
extern Dim3 block_dim;
extern Dim3 grid_dim;

// Barrier primitives implemented in runtime.cpp.
void sync_block();
int sync_block_or(int predicate);
// Exchanges `bytes` bytes of `value` across the calling thread's warp and copies lane `src_lane`'s
// bytes into `out` (a lane outside the warp reads its own value).
void warp_exchange(const void *value, void *out, unsigned bytes, int src_lane);
int lane_id();

template <typename T> T shfl(T v, int src_lane) {
    T out;
    warp_exchange(&v, &out, sizeof(T), src_lane);
    return out;
}

} // namespace emu

#define threadIdx (::emu::thread_idx)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)

inline void __syncthreads() { emu::sync_block(); }
inline int __syncthreads_or(int predicate) { return emu::sync_block_or(predicate); }

template <typename T> inline T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    const int lane = emu::lane_id();
    const int seg = lane / width * width;
    const int src = lane + (int)delta;
    return emu::shfl(v, src < seg + width ? src : lane);
}

template <typename T> inline T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    const int lane = emu::lane_id();
    const int seg = lane / width * width;
    const int src = lane ^ mask;
    return emu::shfl(v, src >= seg && src < seg + width ? src : lane);
}

inline unsigned atomicOr(unsigned *address, unsigned v) { return __atomic_fetch_or(address, v, __ATOMIC_SEQ_CST); }
inline int atomicOr(int *address, int v) { return __atomic_fetch_or(address, v, __ATOMIC_SEQ_CST); }

// Correctly rounded arithmetic that nvcc must not contract into FMAs; on the host it is plain IEEE.
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }

// Device code calls these unqualified, as CUDA's math headers declare them globally.
using std::isfinite;
using std::isinf;
using std::isnan;

// CUDA's integer and floating min/max overloads (device code calls them unqualified).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
