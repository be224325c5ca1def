// Kernel table entries for the CUDA emulator: build.rs generates, per cuda/<stem>.cu, a translation unit
// that includes the kernel file and lists every `extern "C"` kernel as EMU_ENTRY(name). An entry knows
// the kernel's parameter count and sizes (so a launch with the wrong argument list is refused, as a
// size mismatch, instead of reading garbage) and a thunk that unpacks cuLaunchKernel-style
// `void **params` (each element points at one argument's value) into a direct call.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

namespace emu {

typedef void (*Thunk)(void **params);

struct Entry {
    const char *name;
    Thunk thunk;
    size_t n_params;
    const size_t *param_sizes;
};

template <typename... A, size_t... I>
inline void call_unpacked(void (*f)(A...), void **params, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>> *>(params[I])...);
}

template <typename F> struct Signature;
template <typename... A> struct Signature<void (*)(A...)> {
    static constexpr size_t count = sizeof...(A);
    static constexpr size_t sizes[sizeof...(A) + 1] = {sizeof(A)..., 0};
};

template <auto f> void thunk(void **params) {
    call_unpacked(f, params, std::make_index_sequence<Signature<decltype(f)>::count>{});
}

} // namespace emu

#define EMU_ENTRY(name)                                                                                         \
    {#name, &::emu::thunk<&name>, ::emu::Signature<decltype(&name)>::count,                                     \
     ::emu::Signature<decltype(&name)>::sizes}
