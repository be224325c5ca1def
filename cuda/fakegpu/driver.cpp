// The fake GPU's CUDA driver API (the part of libcuda.so.1 that cudarc and the engine call): one
// device, memory as guarded host allocations, streams as lazily run queues, events as positions in
// them, modules whose kernels are the CUDA emulator's (cuda/emu/), launches queued with copies of
// their arguments. See fakegpu.h for the whole library's invariants.
//
// Invariants of this file:
// - A stream's queue runs only in order, and only as far as something needs: a host wait on it (or
//   on an event in it), a blocking copy, another stream's wait on one of its events, or the legacy
//   default stream (which first runs every blocking stream dry, then runs its own work at once;
//   streams created with CU_STREAM_NON_BLOCKING, as cudarc creates them, never sync with it).
// - An event records a position (stream, count of tasks queued before it); cuStreamWaitEvent copies
//   that position at the call, as CUDA does, so re-recording the event later does not move the wait.
// - Device buffers sit between guard zones (GUARD bytes of 0xA5 each side); after each kernel every
//   live buffer's guards are checked, so a kernel writing past its buffer is a sticky error naming it.
// - Pinned host buffers are read and written by queued copies when the copy runs; pageable ones are
//   read at the call (HtoD) or written after running the stream up to the copy (DtoH), as CUDA does.
#include "fakegpu.h"

#include "registry.h"

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

extern "C" int engine_emu_launch(const char *name, const unsigned *grid, const unsigned *block, void **params,
                                 size_t n_params, const size_t *param_sizes, char *err, size_t err_len);
namespace emu {
const Entry *find_kernel(const char *name);
}

namespace {

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
constexpr CUresult OK = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, INVALID_DEVICE = 101, INVALID_IMAGE = 200,
                   INVALID_HANDLE = 400, NOT_FOUND = 500, LAUNCH_FAILED = 719;

constexpr size_t GUARD = 64;
constexpr unsigned char GUARD_BYTE = 0xA5;

struct Stream;
struct Task {
    std::function<void()> op; // empty for a wait
    Stream *wait_stream = nullptr;
    uint64_t wait_seq = 0;
    const char *what = "";
};
struct Stream {
    std::deque<Task> queue;
    uint64_t queued = 0; // tasks ever queued
    uint64_t done = 0;   // tasks run
    bool running = false;
    bool eager = false;   // runs each task when it is queued (FAKEGPU_EAGER, FAKEGPU_EAGER_STREAM)
    bool blocking = true; // synchronises with the legacy default stream (no CU_STREAM_NON_BLOCKING)
};
struct Event {
    Stream *stream = nullptr;
    uint64_t seq = 0;
    double stamp_ms = 0;
};
struct Alloc {
    size_t bytes;
    char *base; // GUARD bytes before the pointer handed out
};

struct State {
    std::recursive_mutex mutex;
    std::map<uint64_t, Alloc> live;         // device pointer → allocation
    std::map<uint64_t, size_t> pinned;      // pinned host pointer → bytes
    std::deque<std::pair<char *, size_t>> quarantine;
    size_t quarantined = 0;
    uint64_t used = 0, used_high = 0, release_threshold = 0;
    Stream legacy;
    std::vector<std::unique_ptr<Stream>> streams; // never freed: events and waits may point at them
    CUresult sticky = OK;
    std::string sticky_msg;
    std::map<std::string, uint64_t> counts; // queued operations by kind (FAKEGPU_STATS=1)
};

State &st() {
    static State *s = new State; // leaked: queued work may run from static destructors' syncs
    return *s;
}

double now_ms() {
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

uint64_t env_u64(const char *name, uint64_t fallback) {
    const char *v = std::getenv(name);
    if (!v || !*v) return fallback;
    return std::strtoull(v, nullptr, 10);
}
uint64_t capacity() {
    static uint64_t cap = env_u64("FAKEGPU_MEMORY_BYTES", env_u64("ENGINE_SIM_MEMORY_BYTES", 80ull << 30));
    return cap;
}
int sm_count() {
    static int n = (int)env_u64("FAKEGPU_SMS", 4);
    return n > 0 ? n : 1;
}
// FAKEGPU_EAGER=1: every stream runs its tasks as they are queued. FAKEGPU_EAGER_STREAM=k: only the
// k-th stream created (1-based) does, so it runs ahead of the lazy ones: a producer stream that
// overwrites a buffer before a consumer stream has read it (a missing wait on the producer's side)
// shows up, where the lazy default catches a consumer that reads before the producer has written.
bool eager_stream(size_t index) {
    static bool all = env_u64("FAKEGPU_EAGER", 0) != 0;
    static uint64_t one = env_u64("FAKEGPU_EAGER_STREAM", 0);
    return all || one == index + 1;
}

void set_sticky(CUresult code, const std::string &msg) {
    State &s = st();
    if (s.sticky != OK) return;
    s.sticky = code;
    s.sticky_msg = msg;
    std::fprintf(stderr, "fake GPU: %s (the context is now unusable, as after a GPU fault)\n", msg.c_str());
}

Stream *new_stream(unsigned flags) {
    std::lock_guard<std::recursive_mutex> g(st().mutex);
    State &S = st();
    S.streams.push_back(std::make_unique<Stream>());
    Stream *s = S.streams.back().get();
    s->eager = eager_stream(S.streams.size() - 1);
    s->blocking = (flags & 0x1) == 0; // CU_STREAM_NON_BLOCKING
    return s;
}


// CU_STREAM_LEGACY (0x1) and null are the legacy default stream; CU_STREAM_PER_THREAD (0x2) is a
// blocking stream of the calling thread's own.
Stream *stream_of(void *h) {
    if (!h || h == (void *)0x1) return &st().legacy;
    if (h == (void *)0x2) {
        thread_local Stream *mine = new_stream(0);
        return mine;
    }
    return static_cast<Stream *>(h);
}

void run_until(Stream *s, uint64_t seq);

void run_task(Stream *s) {
    Task t = std::move(s->queue.front());
    s->queue.pop_front();
    if (!t.op) {
        run_until(t.wait_stream, t.wait_seq);
    } else if (st().sticky == OK) {
        t.op();
    }
    s->done++;
}

void run_until(Stream *s, uint64_t seq) {
    if (s->done >= seq) return;
    if (s->running) {
        set_sticky(LAUNCH_FAILED, "streams wait on each other in a cycle (a deadlock on a GPU)");
        // Drop the rest so the host does not spin.
        s->done += s->queue.size();
        s->queue.clear();
        return;
    }
    s->running = true;
    while (s->done < seq && !s->queue.empty()) run_task(s);
    s->running = false;
}

// Runs every stream dry, or (`blocking_only`) those the legacy default stream synchronises with.
void run_all(bool blocking_only = false) {
    State &S = st();
    // Running one stream can only run others further, so one pass to the end of each suffices,
    // repeated until nothing is left (a wait never queues new work).
    for (bool again = true; again;) {
        again = false;
        for (auto &p : S.streams)
            if (p->done < p->queued && (!blocking_only || p->blocking)) {
                run_until(p.get(), p->queued);
                again = true;
            }
        if (S.legacy.done < S.legacy.queued) {
            run_until(&S.legacy, S.legacy.queued);
            again = true;
        }
    }
}

void push(Stream *s, Task t) {
    State &S = st();
    if (s == &S.legacy) run_all(true); // the legacy stream waits for the blocking streams
    s->queue.push_back(std::move(t));
    s->queued++;
    if (s->eager || s == &S.legacy) run_until(s, s->queued);
}

const Alloc *find_live(uint64_t ptr) {
    auto &live = st().live;
    auto it = live.upper_bound(ptr);
    if (it == live.begin()) return nullptr;
    --it;
    if (ptr < it->first || ptr >= it->first + std::max<size_t>(it->second.bytes, 1)) return nullptr;
    return &it->second;
}

bool in_device(uint64_t ptr, size_t bytes) {
    auto &live = st().live;
    auto it = live.upper_bound(ptr);
    if (it == live.begin()) return false;
    --it;
    return ptr >= it->first && ptr + bytes <= it->first + it->second.bytes;
}

bool is_pinned(const void *p, size_t bytes) {
    auto &pinned = st().pinned;
    uint64_t a = (uint64_t)p;
    auto it = pinned.upper_bound(a);
    if (it == pinned.begin()) return false;
    --it;
    return a >= it->first && a + bytes <= it->first + it->second;
}

void check_guards(const char *kernel) {
    for (auto &[ptr, a] : st().live) {
        const unsigned char *lo = (const unsigned char *)a.base;
        const unsigned char *hi = (const unsigned char *)(ptr + a.bytes);
        for (size_t i = 0; i < GUARD; ++i)
            if (lo[i] != GUARD_BYTE || hi[i] != GUARD_BYTE) {
                char msg[256];
                std::snprintf(msg, sizeof msg, "kernel `%s` wrote outside the %zu-byte buffer at 0x%llx", kernel,
                              a.bytes, (unsigned long long)ptr);
                set_sticky(LAUNCH_FAILED, msg);
                return;
            }
    }
}

CUresult device_alloc(CUdeviceptr *out, size_t bytes) {
    State &S = st();
    if (!out) return INVALID_VALUE;
    if (S.sticky != OK) return S.sticky;
    if (S.used + bytes > capacity()) return OUT_OF_MEMORY;
    size_t payload = (bytes + 255) / 256 * 256;
    char *base = static_cast<char *>(std::aligned_alloc(256, payload + 2 * 256));
    if (!base) return OUT_OF_MEMORY;
    // 256-byte aligned pointer, guard zones of GUARD bytes right before and after the payload.
    char *ptr = base + 256;
    std::memset(ptr - GUARD, GUARD_BYTE, GUARD);
    std::memset(ptr, 0xFF, bytes);
    std::memset(ptr + bytes, GUARD_BYTE, GUARD);
    S.live[(uint64_t)ptr] = Alloc{bytes, ptr - GUARD};
    S.used += bytes;
    S.used_high = std::max(S.used_high, S.used);
    *out = (CUdeviceptr)ptr;
    return OK;
}

void device_free_now(uint64_t ptr) {
    State &S = st();
    auto it = S.live.find(ptr);
    if (it == S.live.end()) {
        char msg[128];
        std::snprintf(msg, sizeof msg, "free of 0x%llx, which is not a live device allocation", (unsigned long long)ptr);
        set_sticky(INVALID_VALUE, msg);
        return;
    }
    size_t bytes = it->second.bytes;
    std::memset((void *)ptr, 0xFF, bytes);
    S.used -= bytes;
    S.live.erase(it);
    char *base = (char *)ptr - 256;
    S.quarantine.emplace_back(base, bytes);
    S.quarantined += bytes;
    while (S.quarantined > (256u << 20) && !S.quarantine.empty()) {
        std::free(S.quarantine.front().first);
        S.quarantined -= S.quarantine.front().second;
        S.quarantine.pop_front();
    }
}

CUresult pending_error() { return st().sticky; }

struct Module {
    int dummy;
};

} // namespace

namespace fakegpu {

std::unique_lock<std::recursive_mutex> guard() { return std::unique_lock<std::recursive_mutex>(st().mutex); }

void enqueue(void *stream, const char *what, std::function<void()> op) {
    static bool stats = [] {
        if (env_u64("FAKEGPU_STATS", 0) == 0) return false;
        std::atexit([] {
            auto g = fakegpu::guard();
            std::fprintf(stderr, "fake GPU: operations queued, by kind:\n");
            for (auto &[k, n] : st().counts) std::fprintf(stderr, "  %10llu  %s\n", (unsigned long long)n, k.c_str());
        });
        return true;
    }();
    if (stats) {
        st().counts[what]++;
    }
    Task t;
    t.op = std::move(op);
    t.what = what;
    push(stream_of(stream), std::move(t));
}

bool check_device(uint64_t ptr, size_t bytes, const char *what) {
    if (bytes == 0 || in_device(ptr, bytes)) return true;
    char msg[256];
    const Alloc *a = find_live(ptr);
    if (a)
        std::snprintf(msg, sizeof msg, "%s: %zu bytes at 0x%llx run past the end of a %zu-byte buffer", what, bytes,
                      (unsigned long long)ptr, a->bytes);
    else
        std::snprintf(msg, sizeof msg, "%s: 0x%llx is not in a live device allocation (freed, or never allocated)",
                      what, (unsigned long long)ptr);
    set_sticky(700, msg);
    return false;
}

void fail(const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    set_sticky(LAUNCH_FAILED, msg);
}

bool failed() { return st().sticky != OK; }

} // namespace fakegpu

#define LOCK auto lock_ = fakegpu::guard()

// ---- initialisation, device, context ----

FAKEGPU_API CUresult cuInit(unsigned) { return OK; }
FAKEGPU_API CUresult cuDriverGetVersion(int *v) {
    if (!v) return INVALID_VALUE;
    *v = 13000;
    return OK;
}
FAKEGPU_API CUresult cuDeviceGetCount(int *n) {
    if (!n) return INVALID_VALUE;
    *n = 1;
    return OK;
}
FAKEGPU_API CUresult cuDeviceGet(int *dev, int ordinal) {
    if (!dev) return INVALID_VALUE;
    if (ordinal != 0) return INVALID_DEVICE;
    *dev = 0;
    return OK;
}
FAKEGPU_API CUresult cuDeviceGetName(char *name, int len, int dev) {
    if (!name || len <= 0) return INVALID_VALUE;
    if (dev != 0) return INVALID_DEVICE;
    std::snprintf(name, (size_t)len, "engine fake GPU (simulated: the CUDA emulator, %d SMs)", sm_count());
    return OK;
}
FAKEGPU_API CUresult cuDeviceTotalMem_v2(size_t *bytes, int dev) {
    if (!bytes) return INVALID_VALUE;
    if (dev != 0) return INVALID_DEVICE;
    *bytes = capacity();
    return OK;
}
FAKEGPU_API CUresult cuDeviceGetUuid(unsigned char *uuid, int dev) {
    if (!uuid) return INVALID_VALUE;
    if (dev != 0) return INVALID_DEVICE;
    std::memset(uuid, 0x42, 16);
    return OK;
}
FAKEGPU_API CUresult cuDeviceGetUuid_v2(unsigned char *uuid, int dev) { return cuDeviceGetUuid(uuid, dev); }
FAKEGPU_API CUresult cuDeviceGetAttribute(int *v, int attr, int dev) {
    if (!v) return INVALID_VALUE;
    if (dev != 0) return INVALID_DEVICE;
    switch (attr) {
    case 1: *v = 1024; break;          // max threads per block
    case 2: case 3: *v = 1024; break;  // max block dims x, y
    case 4: *v = 64; break;            // max block dim z
    case 5: *v = 2147483647; break;    // max grid x
    case 6: case 7: *v = 65535; break; // max grid y, z
    case 8: *v = 49152; break;         // shared memory per block
    case 10: *v = 32; break;           // warp size
    case 16: *v = sm_count(); break;
    case 75: *v = 9; break; // compute capability 9.0
    case 76: *v = 0; break;
    case 115: *v = 1; break; // memory pools supported
    default: *v = 0; break;
    }
    return OK;
}
FAKEGPU_API CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) {
    if (!ctx) return INVALID_VALUE;
    if (dev != 0) return INVALID_DEVICE;
    static int the_context;
    *ctx = &the_context;
    return OK;
}
FAKEGPU_API CUresult cuDevicePrimaryCtxRelease_v2(int) { return OK; }
FAKEGPU_API CUresult cuDevicePrimaryCtxRelease(int) { return OK; }
thread_local void *current_ctx = nullptr;
FAKEGPU_API CUresult cuCtxSetCurrent(void *ctx) {
    current_ctx = ctx;
    return OK;
}
FAKEGPU_API CUresult cuCtxGetCurrent(void **ctx) {
    if (!ctx) return INVALID_VALUE;
    *ctx = current_ctx;
    return OK;
}
FAKEGPU_API CUresult cuCtxGetDevice(int *dev) {
    if (!dev) return INVALID_VALUE;
    *dev = 0;
    return OK;
}
FAKEGPU_API CUresult cuCtxSynchronize() {
    LOCK;
    run_all();
    return pending_error();
}
FAKEGPU_API CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
    LOCK;
    if (!free_bytes || !total) return INVALID_VALUE;
    *total = capacity();
    *free_bytes = capacity() - st().used;
    return OK;
}

// The codes the fake returns: (code, cuGetErrorName, cuGetErrorString).
struct ErrorText {
    CUresult code;
    const char *name, *text;
};
constexpr ErrorText ERRORS[] = {
    {OK, "CUDA_SUCCESS", "no error"},
    {INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
    {INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
    {INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
    {NOT_FOUND, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
    {600, "CUDA_ERROR_NOT_READY", "device not ready"},
    {700, "CUDA_ERROR_ILLEGAL_ADDRESS", "an illegal memory access was encountered"},
    {LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure"},
};
const ErrorText &error_text(CUresult e) {
    static constexpr ErrorText unknown{-1, "CUDA_ERROR_UNKNOWN", "unknown error"};
    for (const ErrorText &t : ERRORS)
        if (t.code == e) return t;
    return unknown;
}

FAKEGPU_API CUresult cuGetErrorString(CUresult e, const char **s) {
    if (!s) return INVALID_VALUE;
    *s = error_text(e).text;
    return OK;
}
FAKEGPU_API CUresult cuGetErrorName(CUresult e, const char **s) {
    if (!s) return INVALID_VALUE;
    *s = error_text(e).name;
    return OK;
}

// ---- streams and events ----

FAKEGPU_API CUresult cuStreamCreate(void **out, unsigned flags) {
    LOCK;
    if (!out) return INVALID_VALUE;
    *out = new_stream(flags);
    return OK;
}
FAKEGPU_API CUresult cuStreamCreateWithPriority(void **out, unsigned flags, int) { return cuStreamCreate(out, flags); }
FAKEGPU_API CUresult cuStreamGetPriority(void *, int *p) {
    if (!p) return INVALID_VALUE;
    *p = 0;
    return OK;
}
FAKEGPU_API CUresult cuCtxGetStreamPriorityRange(int *least, int *greatest) {
    if (least) *least = 0;
    if (greatest) *greatest = 0;
    return OK;
}
FAKEGPU_API CUresult cuStreamSynchronize(void *h) {
    LOCK;
    Stream *s = stream_of(h);
    run_until(s, s->queued);
    return pending_error();
}
FAKEGPU_API CUresult cuStreamQuery(void *h) {
    // A fake GPU that is always fast enough: a query finishes the stream's work.
    return cuStreamSynchronize(h);
}
FAKEGPU_API CUresult cuStreamDestroy_v2(void *h) {
    LOCK;
    if (!h) return INVALID_HANDLE;
    Stream *s = stream_of(h);
    run_until(s, s->queued); // pending work completes; the struct stays (events may point at it)
    return OK;
}
FAKEGPU_API CUresult cuStreamDestroy(void *h) { return cuStreamDestroy_v2(h); }

FAKEGPU_API CUresult cuEventCreate(void **out, unsigned) {
    if (!out) return INVALID_VALUE;
    *out = new Event;
    return OK;
}
FAKEGPU_API CUresult cuEventDestroy_v2(void *e) {
    LOCK;
    // Waits on it hold their own copy of its position; a queued stamp task may still write it.
    (void)e; // leaked on purpose: tiny, and a queued record task may still point at it
    return OK;
}
FAKEGPU_API CUresult cuEventDestroy(void *e) { return cuEventDestroy_v2(e); }
FAKEGPU_API CUresult cuEventRecord(void *h, void *stream) {
    LOCK;
    if (!h) return INVALID_HANDLE;
    if (st().sticky != OK) return st().sticky;
    Event *e = static_cast<Event *>(h);
    Stream *s = stream_of(stream);
    Task t;
    t.what = "cuEventRecord";
    const uint64_t seq = s->queued + 1; // the position this record marks (after its own task)
    t.op = [e, s, seq] {
        if (e->stream == s && e->seq == seq) e->stamp_ms = now_ms(); // not re-recorded since
    };
    e->stream = s;
    e->seq = seq;
    push(s, std::move(t));
    return OK;
}
FAKEGPU_API CUresult cuEventRecordWithFlags(void *h, void *stream, unsigned) { return cuEventRecord(h, stream); }
FAKEGPU_API CUresult cuEventSynchronize(void *h) {
    LOCK;
    if (!h) return INVALID_HANDLE;
    Event *e = static_cast<Event *>(h);
    if (e->stream) run_until(e->stream, e->seq);
    return pending_error();
}
FAKEGPU_API CUresult cuEventQuery(void *h) { return cuEventSynchronize(h); }
FAKEGPU_API CUresult cuEventElapsedTime(float *ms, void *a, void *b) {
    LOCK;
    if (!ms || !a || !b) return INVALID_VALUE;
    cuEventSynchronize(a);
    cuEventSynchronize(b);
    *ms = (float)(static_cast<Event *>(b)->stamp_ms - static_cast<Event *>(a)->stamp_ms);
    return pending_error();
}
FAKEGPU_API CUresult cuEventElapsedTime_v2(float *ms, void *a, void *b) { return cuEventElapsedTime(ms, a, b); }
FAKEGPU_API CUresult cuStreamWaitEvent(void *stream, void *h, unsigned) {
    LOCK;
    if (!h) return INVALID_HANDLE;
    if (st().sticky != OK) return st().sticky;
    Event *e = static_cast<Event *>(h);
    if (!e->stream) return OK; // never recorded: nothing to wait for
    Task t;
    t.what = "cuStreamWaitEvent";
    t.wait_stream = e->stream;
    t.wait_seq = e->seq;
    push(stream_of(stream), std::move(t));
    return OK;
}
typedef void (*HostFn)(void *);
FAKEGPU_API CUresult cuLaunchHostFunc(void *stream, HostFn fn, void *data) {
    LOCK;
    if (!fn) return INVALID_VALUE;
    fakegpu::enqueue(stream, "cuLaunchHostFunc", [fn, data] { fn(data); });
    return pending_error();
}

// ---- memory ----

static int the_pool;
FAKEGPU_API CUresult cuDeviceGetDefaultMemPool(void **pool, int dev) {
    if (!pool) return INVALID_VALUE;
    if (dev != 0) return INVALID_DEVICE;
    *pool = &the_pool;
    return OK;
}
FAKEGPU_API CUresult cuDeviceGetMemPool(void **pool, int dev) { return cuDeviceGetDefaultMemPool(pool, dev); }
FAKEGPU_API CUresult cuMemPoolSetAttribute(void *pool, int attr, void *value) {
    LOCK;
    if (pool != &the_pool || !value) return INVALID_VALUE;
    State &S = st();
    switch (attr) {
    case 1: case 2: case 3: return OK;
    case 4: S.release_threshold = *(uint64_t *)value; return OK;
    case 6: case 8: // the highs can only be reset to zero, which sets them to the current use
        if (*(uint64_t *)value != 0) return INVALID_VALUE;
        S.used_high = S.used;
        return OK;
    default: return INVALID_VALUE;
    }
}
FAKEGPU_API CUresult cuMemPoolGetAttribute(void *pool, int attr, void *value) {
    LOCK;
    if (pool != &the_pool || !value) return INVALID_VALUE;
    State &S = st();
    switch (attr) {
    case 1: case 2: case 3: *(int *)value = 1; return OK;
    case 4: *(uint64_t *)value = S.release_threshold; return OK;
    case 5: case 7: *(uint64_t *)value = S.used; return OK;
    case 6: case 8: *(uint64_t *)value = S.used_high; return OK;
    default: return INVALID_VALUE;
    }
}
FAKEGPU_API CUresult cuMemPoolTrimTo(void *pool, size_t) { return pool == &the_pool ? OK : INVALID_VALUE; }

FAKEGPU_API CUresult cuMemAllocAsync(CUdeviceptr *out, size_t bytes, void *) {
    LOCK;
    return device_alloc(out, bytes);
}
FAKEGPU_API CUresult cuMemAlloc_v2(CUdeviceptr *out, size_t bytes) {
    LOCK;
    return device_alloc(out, bytes);
}
FAKEGPU_API CUresult cuMemFreeAsync(CUdeviceptr ptr, void *stream) {
    LOCK;
    if (!st().live.count(ptr)) return INVALID_VALUE;
    fakegpu::enqueue(stream, "cuMemFreeAsync", [ptr] { device_free_now(ptr); });
    return pending_error();
}
FAKEGPU_API CUresult cuMemFree_v2(CUdeviceptr ptr) {
    LOCK;
    if (!st().live.count(ptr)) return INVALID_VALUE;
    run_all();
    device_free_now(ptr);
    return pending_error();
}

FAKEGPU_API CUresult cuMemHostAlloc(void **pp, size_t bytes, unsigned) {
    LOCK;
    if (!pp) return INVALID_VALUE;
    void *p = std::aligned_alloc(4096, (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096);
    if (!p) return OUT_OF_MEMORY;
    std::memset(p, 0xFF, bytes);
    st().pinned[(uint64_t)p] = bytes;
    *pp = p;
    return OK;
}
FAKEGPU_API CUresult cuMemAllocHost_v2(void **pp, size_t bytes) { return cuMemHostAlloc(pp, bytes, 0); }
FAKEGPU_API CUresult cuMemFreeHost(void *p) {
    LOCK;
    auto it = st().pinned.find((uint64_t)p);
    if (it == st().pinned.end()) return INVALID_VALUE;
    run_all(); // as cudaFreeHost: the device is synchronised first
    st().pinned.erase(it);
    std::free(p);
    return pending_error();
}

static CUresult check_range(uint64_t ptr, size_t bytes, const char *what) {
    if (bytes == 0 || in_device(ptr, bytes)) return OK;
    std::fprintf(stderr, "fake GPU: %s: %zu bytes at 0x%llx are not inside one live device allocation\n", what,
                 bytes, (unsigned long long)ptr);
    return INVALID_VALUE;
}

FAKEGPU_API CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, void *stream) {
    LOCK;
    if (st().sticky != OK) return st().sticky;
    if (CUresult r = check_range(dst, n, "cuMemcpyHtoDAsync")) return r;
    if (is_pinned(src, n)) {
        fakegpu::enqueue(stream, "cuMemcpyHtoDAsync", [dst, src, n] {
            if (fakegpu::check_device(dst, n, "cuMemcpyHtoDAsync")) std::memcpy((void *)dst, src, n);
        });
    } else {
        auto copy = std::make_shared<std::vector<char>>((const char *)src, (const char *)src + n);
        fakegpu::enqueue(stream, "cuMemcpyHtoDAsync", [dst, copy, n] {
            if (fakegpu::check_device(dst, n, "cuMemcpyHtoDAsync")) std::memcpy((void *)dst, copy->data(), n);
        });
    }
    return pending_error();
}
FAKEGPU_API CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, void *stream) {
    LOCK;
    if (st().sticky != OK) return st().sticky;
    if (CUresult r = check_range(src, n, "cuMemcpyDtoHAsync")) return r;
    auto op = [dst, src, n] {
        if (fakegpu::check_device(src, n, "cuMemcpyDtoHAsync")) std::memcpy(dst, (const void *)src, n);
    };
    if (is_pinned(dst, n)) {
        fakegpu::enqueue(stream, "cuMemcpyDtoHAsync", op);
    } else {
        // Pageable memory: the call returns once the bytes are there.
        fakegpu::enqueue(stream, "cuMemcpyDtoHAsync", op);
        Stream *s = stream_of(stream);
        run_until(s, s->queued);
    }
    return pending_error();
}
FAKEGPU_API CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr dst, CUdeviceptr src, size_t n, void *stream) {
    LOCK;
    if (st().sticky != OK) return st().sticky;
    if (CUresult r = check_range(dst, n, "cuMemcpyDtoDAsync (destination)")) return r;
    if (CUresult r = check_range(src, n, "cuMemcpyDtoDAsync (source)")) return r;
    fakegpu::enqueue(stream, "cuMemcpyDtoDAsync", [dst, src, n] {
        if (fakegpu::check_device(dst, n, "cuMemcpyDtoDAsync") && fakegpu::check_device(src, n, "cuMemcpyDtoDAsync"))
            std::memmove((void *)dst, (const void *)src, n);
    });
    return pending_error();
}
FAKEGPU_API CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n) {
    return cuMemcpyHtoDAsync_v2(dst, src, n, nullptr);
}
FAKEGPU_API CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n) {
    LOCK;
    CUresult r = cuMemcpyDtoHAsync_v2(dst, src, n, nullptr);
    run_all();
    return r ? r : pending_error();
}
FAKEGPU_API CUresult cuMemcpyDtoD_v2(CUdeviceptr dst, CUdeviceptr src, size_t n) {
    return cuMemcpyDtoDAsync_v2(dst, src, n, nullptr);
}
FAKEGPU_API CUresult cuMemsetD8Async(CUdeviceptr dst, unsigned char v, size_t n, void *stream) {
    LOCK;
    if (st().sticky != OK) return st().sticky;
    if (CUresult r = check_range(dst, n, "cuMemsetD8Async")) return r;
    fakegpu::enqueue(stream, "cuMemsetD8Async", [dst, v, n] {
        if (fakegpu::check_device(dst, n, "cuMemsetD8Async")) std::memset((void *)dst, v, n);
    });
    return pending_error();
}
FAKEGPU_API CUresult cuMemsetD8_v2(CUdeviceptr dst, unsigned char v, size_t n) {
    return cuMemsetD8Async(dst, v, n, nullptr);
}

// ---- modules and launches ----

FAKEGPU_API CUresult cuModuleLoadData(void **module, const void *image) {
    if (!module || !image) return INVALID_VALUE;
    // Accept what nvcc writes: a fatbin (magic 0xBA55ED50), an ELF cubin, or PTX text.
    uint32_t magic;
    std::memcpy(&magic, image, 4);
    const char *text = static_cast<const char *>(image);
    bool ptx = std::strstr(text, ".version") != nullptr && std::strstr(text, ".target") != nullptr;
    if (magic != 0xBA55ED50u && std::memcmp(image, "\x7f" "ELF", 4) != 0 && !ptx) return INVALID_IMAGE;
    *module = new Module{};
    return OK;
}
FAKEGPU_API CUresult cuModuleUnload(void *module) {
    delete static_cast<Module *>(module);
    return OK;
}
FAKEGPU_API CUresult cuModuleGetFunction(void **f, void *module, const char *name) {
    if (!f || !module || !name) return INVALID_VALUE;
    const emu::Entry *e = emu::find_kernel(name);
    if (!e) return NOT_FOUND;
    *f = const_cast<emu::Entry *>(e);
    return OK;
}
FAKEGPU_API CUresult cuFuncGetAttribute(int *v, int, void *f) {
    if (!v || !f) return INVALID_VALUE;
    *v = 0;
    return OK;
}
FAKEGPU_API CUresult cuFuncSetAttribute(void *f, int, int) { return f ? OK : INVALID_HANDLE; }
FAKEGPU_API CUresult cuFuncSetCacheConfig(void *f, int) { return f ? OK : INVALID_HANDLE; }

FAKEGPU_API CUresult cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                                    unsigned bz, unsigned shared, void *stream, void **params, void **extra) {
    LOCK;
    if (st().sticky != OK) return st().sticky;
    if (!f) return INVALID_HANDLE;
    const emu::Entry *e = static_cast<const emu::Entry *>(f);
    if (extra) return INVALID_VALUE; // the engine passes arguments as kernelParams only
    if (shared != 0) {
        std::fprintf(stderr, "fake GPU: %s launched with %u bytes of dynamic shared memory, which the emulator "
                             "does not provide\n", e->name, shared);
        return INVALID_VALUE;
    }
    // The limits of every GPU since compute capability 3.0, checked at the call as the driver does.
    if (gx == 0 || gy == 0 || gz == 0 || gx > 2147483647u || gy > 65535 || gz > 65535 || bx == 0 || by == 0 ||
        bz == 0 || bx > 1024 || by > 1024 || bz > 64 || (unsigned long long)bx * by * bz > 1024)
        return INVALID_VALUE;
    if (e->n_params && !params) return INVALID_VALUE;
    // Copy the argument values now: `params` points at the caller's stack.
    auto blob = std::make_shared<std::vector<std::vector<char>>>();
    for (size_t i = 0; i < e->n_params; ++i) {
        const char *p = static_cast<const char *>(params[i]);
        blob->emplace_back(p, p + e->param_sizes[i]);
    }
    fakegpu::enqueue(stream, "cuLaunchKernel", [e, blob, gx, gy, gz, bx, by, bz] {
        std::vector<void *> ptrs;
        for (auto &b : *blob) ptrs.push_back(b.data());
        unsigned grid[3] = {gx, gy, gz}, block[3] = {bx, by, bz};
        char err[512] = {0};
        if (engine_emu_launch(e->name, grid, block, ptrs.data(), ptrs.size(), e->param_sizes, err, sizeof err) != 0)
            fakegpu::fail("kernel `%s`: %s", e->name, err);
        else
            check_guards(e->name);
    });
    return pending_error();
}
