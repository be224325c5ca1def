#![cfg(feature = "cuda-emu")]
//! The data-movement kernels of cuda/layout.cu (`cast_*_*`, `copy2d_*`, `strided_copy_*`), run in the
//! CUDA emulator (`--features cuda-emu`) against the CPU backend. The elementwise kernels of
//! cuda/elementwise.cu are tested in tests/cuda_emu_elementwise.rs.
//!
//! Every launch is its launcher's (src/backend/cuda/layout.rs), built by the functions of
//! `engine::backend::kernel_abi::layout` the launcher calls: the calls (kernel names and argument
//! lists: `cast`, `Copy2d::call`, `StridedCopyPlan::call`), the `Copy2d` block
//! copies (narrow, narrow's backward, concat) and their bounds check, the `StridedCopyPlan` (its
//! `StridedArgs` descriptor, the dim collapsing and the memcpy-vs-kernel pick), and `g.grid(n)` on a
//! pretend GPU of 4 SMs (so grids are capped at 128 blocks and the grid-stride loops wrap); most
//! cases also run on a single block.
//!
//! Invariants checked:
//! - Casts are bit-identical to the CPU's `to_dtype` for every ordered dtype pair, on NaN, ±inf, ±0,
//!   f16 overflow, f16/f32/f64 subnormals and ties; f64→f16 is one correctly rounded step (see
//!   `cast_f64_f16_rounds_once`).
//! - Copies (`copy2d` via narrow, concat and narrow's backward; `strided_copy` via permute, transpose,
//!   memory formats and broadcasts) are bit-identical to the CPU, NaN payloads and signed zeros
//!   included, and write nothing outside their destination block.
//! - Outputs start as NaN, so a skipped element shows, and every buffer's guard zones are checked
//!   after each launch.

use engine::backend::cuda_emu::test_support::{
    bcast_strides, cpu_tensor, raw, run_call, same_bits, seeded_randn, Grid, KernelFloat,
};
use engine::backend::cuda_emu::{kernel_names, Buf};
use engine::backend::kernel_abi::layout::{self, Copy2d, StridedCopyPlan};
use engine::ops::layout::{Concat, Narrow};
use engine::{Device, MemoryFormat, Shape, Tensor};
use half::f16;

/// Elements for the "past the grid cap" cases: > 128 blocks × 256 threads.
const BIG: usize = 33_001;

/// A storage type of the kernels, with a NaN for the copy tests to plant.
trait Elem: KernelFloat {
    /// A negative quiet NaN with a non-zero payload: copies must keep it bit for bit.
    fn payload_nan() -> Self;
}

impl Elem for f64 {
    fn payload_nan() -> Self {
        f64::from_bits(0xFFF8_0000_0000_1235)
    }
}

impl Elem for f32 {
    fn payload_nan() -> Self {
        f32::from_bits(0xFFC0_1235)
    }
}

impl Elem for f16 {
    fn payload_nan() -> Self {
        f16::from_bits(0xFE05)
    }
}

// ---------------------------------------------------------------------------------------------------
// Kernel table.

#[test]
fn the_family_is_in_the_kernel_table() {
    let names = kernel_names();
    let mut want = Vec::new();
    for s in ["f16", "f32", "f64"] {
        for d in ["f16", "f32", "f64"] {
            if d != s {
                want.push(format!("cast_{s}_{d}"));
            }
        }
    }
    for u in ["u16", "u32", "u64"] {
        want.push(format!("copy2d_{u}"));
        want.push(format!("strided_copy_{u}"));
    }
    assert_eq!(want.len(), 12);
    for w in &want {
        assert!(names.contains(w), "kernel {w} missing from the emulator");
    }
}

// ---------------------------------------------------------------------------------------------------
// Casts.

/// Values that stress every conversion: NaN, ±inf, ±0, the f16 range edge and overflow, f16/f32/f64
/// subnormals, round-to-even ties, and an f64 value that rounds differently through f32 (below).
fn cast_specials() -> Vec<f64> {
    let p = |e: i32| 2f64.powi(e);
    vec![
        f64::NAN,
        -f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        1.0,
        -1.0,
        // f16: largest finite, just below the overflow tie, the tie (→ inf), beyond.
        65504.0,
        65519.0,
        65519.99,
        65520.0,
        -65520.0,
        1e5,
        -1e9,
        // f16 normals/subnormals: smallest normal, smallest subnormal, its half (tie → 0), 0.75 and 1.5
        // and 2.5 of it (→ 1, 2 and 2 ulps), below half (→ ±0), a mid subnormal.
        p(-14),
        p(-24),
        p(-25),
        -p(-25),
        0.75 * p(-24),
        1.5 * p(-24),
        2.5 * p(-24),
        1e-8,
        -1e-8,
        6e-5,
        -3.3e-6,
        // Ties at 1 in f16: 1 + half an ulp (→ 1), 1 + 1.5 ulp (→ 1 + 2 ulp), just above half.
        1.0 + p(-11),
        1.0 + 3.0 * p(-11),
        1.0 + p(-11) + p(-23),
        // Rounds up once, but through f32 lands exactly on the tie (then rounds to even, down).
        1.0 + p(-11) + p(-40),
        // f32: subnormals, largest finite, overflow, a tie at 1 (f64→f32).
        1e-40,
        -1e-42,
        p(-149),
        p(-150),
        f32::MAX as f64,
        -3.5e38,
        1.0 + p(-24),
        1.0 + 3.0 * p(-24),
        // f64 subnormals.
        1e-310,
        -5e-324,
        std::f64::consts::PI,
        -1.0 / 3.0,
    ]
}

/// A correctly rounded (once, nearest-even) f64 → f16, independent of `half`'s code path.
fn f16_round_once(x: f64) -> f16 {
    if x.is_nan() {
        return f16::NAN;
    }
    let m = x.abs();
    let mag = if m >= 65520.0 {
        f16::INFINITY.to_bits()
    } else {
        // `from_f64` is at most one ulp off (it may round through f32); pick the nearest neighbour.
        let h = f16::from_f64(m).to_bits().min(0x7BFF);
        let mut best = h;
        for c in [h.saturating_sub(1), h, (h + 1).min(0x7BFF)] {
            let (dc, db) = (
                (f16::from_bits(c).to_f64() - m).abs(),
                (f16::from_bits(best).to_f64() - m).abs(),
            );
            if dc < db || (dc == db && c % 2 == 0) {
                best = c;
            }
        }
        best
    };
    f16::from_bits(mag | if x.is_sign_negative() { 0x8000 } else { 0 })
}

/// Seeded values over a range of magnitudes (f16 subnormals up to f16 overflow), plus the specials.
fn cast_inputs(n: usize, seed: u64) -> Vec<f64> {
    let mut v = cast_specials();
    let r = seeded_randn(n, seed);
    for (i, x) in r.into_iter().enumerate() {
        v.push(x * 10f64.powi((i % 15) as i32 - 9));
    }
    v
}

/// `cast_<S>_<D>` as `cast()` launches it, against the CPU's `to_dtype`. Returns (input, kernel, cpu).
fn cast_case<S: Elem, D: Elem>(n: usize, seed: u64, g: Grid) -> (Vec<S>, Vec<D>, Vec<D>) {
    let v = cast_inputs(n, seed);
    let len = v.len();
    let xt = cpu_tensor::<S>(&v, &[len]);
    let want: Vec<D> = raw(&xt.to_dtype(D::DTYPE).unwrap());
    let x: Vec<S> = raw(&xt);
    let mut bx = Buf::from_slice(&x);
    let mut by = Buf::<D>::nan(len);
    run_call(
        &layout::cast(S::DTYPE, D::DTYPE, len, bx.ptr(), by.ptr()),
        g.dims(len),
    );
    bx.check_guards("x").unwrap();
    let got = by.checked("y");
    (x, got, want)
}

fn cast_exact<S: Elem, D: Elem>(n: usize, seed: u64, g: Grid) {
    let (_, got, want) = cast_case::<S, D>(n, seed, g);
    // Rounding is defined (nearest even) and widening is exact: bit-identical; a NaN stays a NaN
    // (its payload and sign are not part of the contract of a conversion).
    same_bits(
        &format!("cast {}→{} {g:?}", S::SUF, D::SUF),
        &got,
        &want,
        true,
    );
}

#[test]
fn casts_match_cpu() {
    for g in [Grid::Launcher, Grid::One] {
        cast_exact::<f16, f32>(1500, 50, g);
        cast_exact::<f16, f64>(1500, 51, g);
        cast_exact::<f32, f16>(1500, 52, g);
        cast_exact::<f32, f64>(1500, 53, g);
        cast_exact::<f64, f32>(1500, 54, g);
    }
    // Past the grid cap.
    cast_exact::<f32, f16>(BIG, 55, Grid::Launcher);
}

#[test]
fn cast_f64_f16_rounds_once() {
    // The kernel's contract (layout.cu): one rounding, __double2half. The CPU rounds once too
    // (src/dtype.rs: half's software path; its F16C path goes through f32 and rounds twice). The two
    // roundings differ only on f64 values that are not f16 ties but round to one in f32, like
    // 1 + 2^-11 + 2^-40, which the case includes: every element must be the correctly rounded value,
    // bit for bit on both sides.
    for g in [Grid::Launcher, Grid::One] {
        let (x, got, want) = cast_case::<f64, f16>(1500, 56, g);
        for i in 0..x.len() {
            let once = f16_round_once(x[i]);
            let ok_once = got[i].to_bits() == once.to_bits() || (got[i].is_nan() && x[i].is_nan());
            assert!(
                ok_once,
                "cast f64→f16 [{i}] of {:e}: kernel {:?} ({:#06x}), correctly rounded {:?} ({:#06x})",
                x[i],
                got[i],
                got[i].to_bits(),
                once,
                once.to_bits()
            );
            let same_as_cpu =
                got[i].to_bits() == want[i].to_bits() || (got[i].is_nan() && want[i].is_nan());
            assert!(
                same_as_cpu,
                "cast f64→f16 [{i}] of {:e}: kernel {:?}, cpu {:?}",
                x[i], got[i], want[i]
            );
        }
        // The probe 1 + 2^-11 + 2^-40 lies above the tie between 1 and 1 + 2^-10: it rounds up once,
        // but to exactly the tie (then down, to even) through f32.
        let probe = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
        let got_probe = got[x.iter().position(|&v| v == probe).expect("probe present")];
        assert_eq!(
            got_probe.to_f64(),
            1.0 + 2f64.powi(-10),
            "probe rounds once"
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// copy2d: narrow, concat, narrow backward.

/// Seeded values in dtype T with a payload NaN, -0 and -inf planted: copies must move bits.
fn copy_values<T: Elem>(dims: &[usize], seed: u64) -> Tensor {
    let n: usize = dims.iter().product();
    let t = cpu_tensor::<T>(&seeded_randn(n, seed), dims);
    let mut v: Vec<T> = raw(&t);
    for (k, s) in [
        T::payload_nan(),
        T::from_f64(-0.0),
        T::from_f64(f64::NEG_INFINITY),
    ]
    .into_iter()
    .enumerate()
    {
        let i = (k * 7919 + seed as usize) % n;
        v[i] = s;
    }
    Tensor::from_vec(v, dims.to_vec(), Device::Cpu).unwrap()
}

/// `copy2d` of src/backend/cuda/layout.rs: the plan's bounds check, then the kernel with its
/// arguments.
fn copy2d<T: Elem>(
    src: &mut Buf<T>,
    src_len: usize,
    dst: &mut Buf<T>,
    dst_len: usize,
    plan: Copy2d,
    g: Grid,
) {
    let n = plan.n();
    if n == 0 {
        return;
    }
    plan.check("copy2d", src_len, dst_len)
        .expect("the launcher would reject this block copy");
    run_call(&plan.call(T::DTYPE, src.ptr(), dst.ptr()), g.dims(n));
    src.check_guards("copy2d src").unwrap();
    dst.check_guards("copy2d dst").unwrap();
}

/// `(outer, inner, full)` of `Tensor::narrow` along `dim`.
fn narrow_geometry(dims: &[usize], dim: usize) -> (usize, usize, usize) {
    (
        dims[..dim].iter().product(),
        dims[dim + 1..].iter().product(),
        dims[dim],
    )
}

/// Narrow forward (`Narrow::launch`) and backward (`NarrowBackward::launch`) against the CPU's
/// `narrow` and its autograd gradient.
fn narrow_case<T: Elem>(dims: &[usize], dim: usize, start: usize, len: usize, seed: u64, g: Grid) {
    let what = format!(
        "narrow {dims:?} dim {dim} [{start}, +{len}) [{}] {g:?}",
        T::SUF
    );
    let xt = copy_values::<T>(dims, seed).var();
    let y = xt.narrow(dim, start, len).unwrap();
    let wt = copy_values::<T>(y.dims(), seed + 1);
    let grads = y.mul(&wt).unwrap().sum_all().unwrap().backward().unwrap();
    let (x, y_cpu, w, dx_cpu): (Vec<T>, Vec<T>, Vec<T>, Vec<T>) = (
        raw(&xt),
        raw(&y),
        raw(&wt),
        raw(grads.get(&xt).expect("dx")),
    );
    let (outer, inner, full) = narrow_geometry(dims, dim);
    let k = Narrow {
        outer,
        inner,
        full,
        start,
        len,
    };
    let (b, fb, s) = (len * inner, full * inner, start * inner);

    // Forward.
    let mut bx = Buf::from_slice(&x);
    let mut by = Buf::<T>::nan(outer * b);
    copy2d(&mut bx, x.len(), &mut by, outer * b, Copy2d::narrow(&k), g);
    same_bits(&format!("{what} y"), &by.to_vec(), &y_cpu, false);

    // Backward: the launcher scatters into zeros; here the destination starts as NaN, so the test
    // also sees that nothing outside the block is written, then the CPU's zeros are expected there.
    let mut bw = Buf::from_slice(&w);
    let mut bdx = Buf::<T>::nan(outer * fb);
    copy2d(
        &mut bw,
        w.len(),
        &mut bdx,
        outer * fb,
        Copy2d::narrow_backward(&k),
        g,
    );
    let mut dx = bdx.to_vec();
    for (i, v) in dx.iter_mut().enumerate() {
        let c = i % fb;
        if c < s || c >= s + b {
            assert!(
                v.is_nan(),
                "{what} dx: element {i} outside the block was written"
            );
            *v = T::from_f64(0.0);
        }
    }
    same_bits(&format!("{what} dx"), &dx, &dx_cpu, false);
}

#[test]
fn copy2d_narrow_and_backward() {
    for g in [Grid::Launcher, Grid::One] {
        // Middle dim (outer rows of len·inner), first dim (one row), last dim (inner = 1).
        narrow_case::<f32>(&[5, 7, 9], 1, 2, 3, 60, g);
        narrow_case::<f32>(&[6, 5, 11], 0, 1, 4, 61, g);
        narrow_case::<f32>(&[13, 17, 9], 2, 3, 5, 62, g);
        narrow_case::<f64>(&[5, 7, 9], 1, 0, 7, 63, g);
        narrow_case::<f64>(&[4, 3, 10, 6], 2, 9, 1, 64, g);
        narrow_case::<f16>(&[5, 7, 9], 2, 8, 1, 65, g);
        narrow_case::<f16>(&[3, 20, 31], 1, 5, 14, 66, g);
    }
    // Several blocks of the launcher grid: 6·25·33 = 4950 elements.
    narrow_case::<f32>(&[6, 40, 33], 1, 3, 25, 67, Grid::Launcher);
}

fn concat_case<T: Elem>(dims: &[Vec<usize>], dim: usize, seed: u64, g: Grid) {
    let what = format!("concat {dims:?} dim {dim} [{}] {g:?}", T::SUF);
    let ts: Vec<Tensor> = dims
        .iter()
        .enumerate()
        .map(|(i, d)| copy_values::<T>(d, seed + i as u64))
        .collect();
    let refs: Vec<&Tensor> = ts.iter().collect();
    let want: Vec<T> = raw(&Tensor::concat(&refs, dim).unwrap());
    // `Concat::launch`: one block copy per input into its column range.
    let outer: usize = dims[0][..dim].iter().product();
    let inner: usize = dims[0][dim + 1..].iter().product();
    let k = Concat {
        outer,
        blocks: dims.iter().map(|d| d[dim] * inner).collect(),
    };
    let row: usize = k.blocks.iter().sum();
    let mut out = Buf::<T>::nan(outer * row);
    for (t, plan) in ts.iter().zip(Copy2d::concat(&k)) {
        let x: Vec<T> = raw(t);
        let mut bx = Buf::from_slice(&x);
        copy2d(&mut bx, x.len(), &mut out, outer * row, plan, g);
    }
    same_bits(&what, &out.to_vec(), &want, false);
}

#[test]
fn copy2d_concat() {
    for g in [Grid::Launcher, Grid::One] {
        let d = |v: &[usize]| v.to_vec();
        concat_case::<f32>(&[d(&[4, 3, 6]), d(&[4, 5, 6]), d(&[4, 1, 6])], 1, 70, g);
        concat_case::<f64>(&[d(&[3, 7]), d(&[2, 7])], 0, 71, g);
        concat_case::<f16>(&[d(&[9, 2, 5]), d(&[9, 2, 3])], 2, 72, g);
        concat_case::<f16>(&[d(&[2, 30, 11]), d(&[2, 17, 11])], 1, 73, g);
    }
}

// ---------------------------------------------------------------------------------------------------
// strided_copy: permute, transpose, memory formats, broadcast_to.

/// `StridedCopy::launch` for `map` (output dims, input strides) over `x`: None when the launcher
/// would take its memcpy path instead of the kernel.
fn strided_copy<T: Elem>(x: &[T], dims: &[usize], strides: &[usize], g: Grid) -> Option<Vec<T>> {
    let plan = StridedCopyPlan::new(dims, strides, x.len()).expect("the launcher accepts this map");
    if plan.dense {
        return None;
    }
    let n = plan.n;
    let mut bx = Buf::from_slice(x);
    let mut by = Buf::<T>::nan(n);
    run_call(&plan.call(T::DTYPE, bx.ptr(), by.ptr()), g.dims(n));
    bx.check_guards("x").unwrap();
    Some(by.checked("y"))
}

fn permute_case<T: Elem>(dims: &[usize], perm: &[usize], seed: u64, g: Grid) {
    let xt = copy_values::<T>(dims, seed);
    let want: Vec<T> = raw(&xt.permute(perm).unwrap());
    // `Tensor::permute`'s map: output dim i reads input dim perm[i].
    let st = Shape::new(dims.to_vec()).contiguous_strides();
    let out: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let strides: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
    let got = strided_copy::<T>(&raw(&xt), &out, &strides, g).expect("a kernel launch");
    same_bits(
        &format!("permute {dims:?} by {perm:?} [{}] {g:?}", T::SUF),
        &got,
        &want,
        false,
    );
}

fn format_case<T: Elem>(dims: [usize; 4], seed: u64, g: Grid) {
    let [n, c, h, w] = dims;
    let xt = copy_values::<T>(&dims, seed);
    // To NHWC: `to_format`'s map.
    let nhwc = xt.to_format(MemoryFormat::ChannelsLast).unwrap();
    let got = strided_copy::<T>(&raw(&xt), &[n, h, w, c], &[c * h * w, w, 1, h * w], g)
        .expect("a kernel launch");
    same_bits(
        &format!("to NHWC {dims:?} [{}] {g:?}", T::SUF),
        &got,
        &raw(&nhwc),
        false,
    );
    // And back to NCHW from the NHWC storage.
    let back = nhwc.to_format(MemoryFormat::Contiguous).unwrap();
    let got = strided_copy::<T>(&raw(&nhwc), &[n, c, h, w], &[h * w * c, 1, w * c, c], g)
        .expect("a kernel launch");
    same_bits(
        &format!("to NCHW {dims:?} [{}] {g:?}", T::SUF),
        &got,
        &raw(&back),
        false,
    );
}

fn broadcast_case<T: Elem>(from: &[usize], to: &[usize], seed: u64, g: Grid) {
    let xt = copy_values::<T>(from, seed);
    let want: Vec<T> = raw(&xt.broadcast_to(&Shape::new(to.to_vec())).unwrap());
    let got =
        strided_copy::<T>(&raw(&xt), to, &bcast_strides(from, to), g).expect("a kernel launch");
    same_bits(
        &format!("broadcast {from:?} → {to:?} [{}] {g:?}", T::SUF),
        &got,
        &want,
        false,
    );
}

#[test]
fn strided_copy_permute_transpose_format_broadcast() {
    for g in [Grid::Launcher, Grid::One] {
        permute_case::<f32>(&[7, 9, 11], &[2, 0, 1], 80, g);
        permute_case::<f64>(&[7, 9, 11], &[1, 2, 0], 81, g);
        permute_case::<f16>(&[5, 3, 4, 6], &[3, 1, 0, 2], 82, g);
        // Transpose of a matrix (2 dims), and one that keeps an inner contiguous run (merged dims).
        permute_case::<f32>(&[33, 65], &[1, 0], 83, g);
        permute_case::<f16>(&[6, 5, 4, 3], &[1, 0, 2, 3], 84, g);
        // Eight dims reversed: nothing merges, the descriptor is full.
        permute_case::<f32>(&[2, 3, 2, 2, 3, 2, 2, 2], &[7, 6, 5, 4, 3, 2, 1, 0], 85, g);
        format_case::<f32>([2, 5, 7, 9], 86, g);
        format_case::<f16>([3, 4, 5, 6], 87, g);
        format_case::<f64>([1, 3, 8, 7], 88, g);
        broadcast_case::<f32>(&[3, 1, 5], &[4, 3, 7, 5], 89, g);
        broadcast_case::<f64>(&[1], &[1000], 90, g);
        broadcast_case::<f16>(&[6, 1], &[6, 131], 91, g);
    }
    // Past the grid cap.
    permute_case::<f32>(&[130, 260], &[1, 0], 92, Grid::Launcher);

    // A permutation that only moves extent-1 dims is dense in order: the launcher copies with memcpy
    // and never launches the kernel (the CPU result is then the input itself).
    let xt = copy_values::<f32>(&[3, 1, 5], 93);
    let st = xt.shape().contiguous_strides();
    assert!(strided_copy::<f32>(
        &raw(&xt),
        &[1, 3, 5],
        &[st[1], st[0], st[2]],
        Grid::Launcher
    )
    .is_none());
    same_bits(
        "permute [1,0,2] of [3,1,5]",
        &raw::<f32>(&xt.permute(&[1, 0, 2]).unwrap()),
        &raw(&xt),
        false,
    );
}
