// The fake GPU's shared core: what the driver (driver.cpp), cuBLAS (cublas.cpp) and cuDNN (cudnn.cpp)
// stand-ins have in common. Together they form one shared library, `libengine_fakegpu.so`, which
// build.rs links (with the CUDA emulator's kernels) when the `cuda` and `cuda-emu` features are both
// on, and symlinks as libcuda.so, libcublas.so, libcublasLt.so and libcudnn.so, so that cudarc's
// dynamic loading finds it through LD_LIBRARY_PATH and the real CUDA backend of src/backend/cuda/
// (module loading, streams, events, pinned staging, the cuDNN plan cache, cuBLAS calls) runs without
// a GPU. What it cannot show: speed, real concurrency, the PTX/cubin images themselves (a module
// load only checks the image's header; kernels are looked up by name in the emulator), and a
// launch's argument count (cuLaunchKernel carries none: the emulator takes the kernel's own list,
// so the kernel_abi argument lists are checked by the emulator's tests and the simulated device).
// The GEMM and convolution arithmetic repeats src/backend/cuda_sim/{blas,conv}.rs's host references
// in C++, because these libraries are loaded by cudarc, outside the engine.
//
// Invariants:
// - Device memory is host memory; a device pointer is the address of a live allocation made by
//   cuMemAlloc(Async). Fresh allocations are NaN-poisoned (0xFF bytes); freed ones are poisoned
//   again and kept in a quarantine for a while, so a use after free reads NaNs instead of crashing.
// - Work is queued per stream and runs lazily, in stream order, only when the host waits for it
//   (stream/event/context synchronisation, a blocking copy) or another stream waits on an event of
//   it. So a missing event wait, or a host write into a pinned buffer that a queued copy still has
//   to read, shows up as wrong data. FAKEGPU_EAGER=1 runs every operation when it is enqueued;
//   FAKEGPU_EAGER_STREAM=k runs only the k-th stream created that way (ahead of the others), which
//   shows a producer overwriting a buffer its consumer on another stream has not read yet.
// - FAKEGPU_SMS (default 4) sets the SM count; FAKEGPU_MEMORY_BYTES (else ENGINE_SIM_MEMORY_BYTES,
//   else 80 GiB) the device's memory, beyond which allocations fail with CUDA_ERROR_OUT_OF_MEMORY.
// - One recursive lock serialises every entry point of all three libraries; queued work runs with
//   it held.
// - An error inside queued work (an out-of-range pointer, a kernel the emulator refuses) is sticky,
//   as on a GPU: it is printed to stderr once and returned by every later call that can return an
//   error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <functional>
#include <mutex>

#define FAKEGPU_API extern "C" __attribute__((visibility("default")))

namespace fakegpu {

// The lock every entry point takes: `auto g = fakegpu::guard();`.
std::unique_lock<std::recursive_mutex> guard();

// Queues `op` on `stream` (a CUstream / cudaStream_t; null is the legacy default stream). `what`
// names the operation in error messages.
void enqueue(void *stream, const char *what, std::function<void()> op);

// True when [ptr, ptr + bytes) lies inside one live device allocation. Otherwise records a sticky
// error naming `what` and returns false (check before touching memory).
bool check_device(uint64_t ptr, size_t bytes, const char *what);

// Records a sticky error (printf-style message) from inside queued work.
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// True once a sticky error has been recorded.
bool failed();

// ---- number formats shared by the cuBLAS and cuDNN stand-ins

// half → float, exactly.
inline float h2f(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, bits;
    if (e == 0) {
        float v = float(m) * 5.9604644775390625e-08f; // m · 2^-24, exact
        return sign ? -v : v;
    }
    bits = e == 31 ? (sign | 0x7f800000u | (m << 13)) : (sign | ((e + 112) << 23) | (m << 13));
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

// float → half, round to nearest even; NaN stays NaN (quiet), overflow → inf.
inline uint16_t f2h(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint16_t sign = uint16_t((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return sign | (ax > 0x7f800000u ? 0x7e00 : 0x7c00);
    if (ax >= 0x477ff000u) return sign | 0x7c00; // ≥ 65520 rounds to infinity
    if (ax < 0x38800000u) {                      // below 2^-14: a subnormal half (or zero)
        float a;
        std::memcpy(&a, &ax, 4);
        return sign | uint16_t(std::lrint(a * 16777216.0f)); // exact scaling, then RNE
    }
    uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u) - 0x38000000u; // rebias 127 → 15, RNE at bit 13
    return sign | uint16_t(r >> 13);
}

// float rounded to TF32 (10 mantissa bits), round to nearest even.
inline float tf32(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7f800000u) != 0x7f800000u) {
        x += 0xfffu + ((x >> 13) & 1u);
        x &= 0xffffe000u;
    }
    std::memcpy(&f, &x, 4);
    return f;
}

} // namespace fakegpu
