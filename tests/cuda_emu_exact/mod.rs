//! What the bit-exact emulator tests of the pooling, resizing, dropout and convolution-helper kernels
//! share (tests/cuda_emu_pool.rs, tests/cuda_emu_resize_dropout_conv.rs): seeded inputs in a kernel's
//! storage type, autograd references, the bit-for-bit assert, and launches on the launcher's grid and
//! on one block over NaN-poisoned outputs with guard checks; the family check that every kernel exists.

use engine::backend::cuda_emu::test_support::{
    grid_1d, rounded, run_call, seeded_randn, KernelFloat, ONE_BLOCK,
};
use engine::backend::cuda_emu::Buf;
use engine::backend::kernel_abi::call::KernelCall;
use engine::{Device, Tensor};

/// Seeded standard-normal values rounded to T (what `Tensor::randn` in T holds).
pub fn randn<T: KernelFloat>(len: usize, seed: u64) -> Vec<f64> {
    rounded::<T>(seeded_randn(len, seed))
}

/// Autograd gradient of Σ y·dy with respect to `x`.
pub fn grad(y: &Tensor, x: &Tensor, dy: &[f64]) -> Vec<f64> {
    let w = Tensor::from_f64s(dy, y.dims().to_vec(), y.dtype(), Device::Cpu).unwrap();
    let g = y.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
    g.get(x).expect("gradient").to_vec_f64().unwrap()
}

/// Bit-for-bit equality (of the values widened to f64: exact for every dtype; −0 ≠ +0), NaN
/// matching NaN.
#[track_caller]
pub fn assert_exact(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
            "{what}: element {i}: kernel {a:e}, CPU {b:e}"
        );
    }
}

/// Both grids every launch runs on: the launcher's, and a single block.
pub fn grids(launcher: [u32; 3]) -> [([u32; 3], &'static str); 2] {
    [(launcher, "launcher grid"), (ONE_BLOCK, "1 block")]
}

/// A `kernel_abi` call over the addresses of the input buffers (in order) and of the output buffer.
pub type CallOf<'a> = &'a dyn Fn(&[usize], usize) -> KernelCall<usize>;

/// Launches `call` on the `launcher` grid and on one block, over a buffer per `inputs` (in T) and a
/// NaN output of `want.len()` elements; checks every buffer's guards and the output against `want`
/// bit for bit.
pub fn exact_on_both_grids<T: KernelFloat>(
    what: &str,
    launcher: [u32; 3],
    inputs: &[&[f64]],
    want: &[f64],
    call: CallOf,
) {
    for (gr, gname) in grids(launcher) {
        let mut ins: Vec<Buf<T>> = inputs.iter().map(|v| Buf::from_f64s(v)).collect();
        let mut out = Buf::<T>::nan(want.len());
        let ptrs: Vec<usize> = ins.iter_mut().map(|b| b.ptr()).collect();
        run_call(&call(&ptrs, out.ptr()), gr);
        for (k, b) in ins.iter().enumerate() {
            b.check_guards(&format!("{what}: input {k}")).unwrap();
        }
        assert_exact(&format!("{what} ({gname})"), &out.checked_f64s(what), want);
    }
}

/// A call of a one-input kernel over the addresses of its input and output.
pub type UnaryCallOf<'a> = &'a dyn Fn(usize, usize) -> KernelCall<usize>;

/// An op's forward call `fwd` (x → y, on the launcher grid for y) and backward call `bwd` (dy → dx,
/// on the launcher grid for dx), each bit-exact on both grids.
pub fn fwd_bwd_exact<T: KernelFloat>(
    what: &str,
    (x, y): (&[f64], &[f64]),
    (dy, dx): (&[f64], &[f64]),
    fwd: UnaryCallOf,
    bwd: UnaryCallOf,
) {
    for (call, input, want, io) in [(fwd, x, y, "y"), (bwd, dy, dx, "dx")] {
        exact_on_both_grids::<T>(
            &format!("{what} {io}"),
            grid_1d(want.len()),
            &[input],
            want,
            &|ins, out| call(ins[0], out),
        );
    }
}

/// Asserts that the emulator library has the kernel `<stem>_<suffix>` for every stem and suffix (a
/// renamed kernel then fails the family's test rather than silently dropping out of its cases).
pub fn assert_kernels_present(stems: &[&str], suffixes: &[&str]) {
    let names = engine::backend::cuda_emu::kernel_names();
    for stem in stems {
        for s in suffixes {
            let k = format!("{stem}_{s}");
            assert!(names.contains(&k), "kernel {k} missing from the emulator");
        }
    }
}
