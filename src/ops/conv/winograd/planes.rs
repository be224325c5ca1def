//! The per-plane tile transforms of Winograd F(2×2, 3×3) (see `mod.rs` for the math and layouts):
//! `Bᵀ d B` of an input plane, `Aᵀ M A` back to an output plane, `A dy Aᵀ` of an output-gradient
//! plane, each written as flat, bounds-check-free loops over whole arrays (the `zip*` helpers) and
//! compiled twice: as built (baseline x86-64) and for AVX2 (`*_avx2`, chosen when `avx2()`).
//! Invariant: each transform writes every element of its output and of the scratch it reads back,
//! so `buf` may hold anything on entry.

use super::super::im2col::sized;
use super::Tiles;
use crate::dtype::Float;
pub(super) use crate::ops::simd::avx2;

/// One input plane `xc` [h, w] → its tiles' `Bᵀ d B` at columns `off..off + tiles` of the 16 rows of
/// `vc` (row stride `ld`). Every pass is a flat loop over whole arrays, so that it vectorises:
/// 1. per padded row r (input row r − 1, zero padded), the four column views a tile row needs:
///    `e[j] = p[2j]`, `o[j] = p[2j + 1]`, `e1[j] = p[2j + 2]`, `o1[j] = p[2j + 3]`, stored as
///    [view][r % 2][r / 2][j], even and odd rows apart;
/// 2. `Bᵀ` along w: `hc[c]` from the four views, flat over every row;
/// 3. `Bᵀ` along h: tile row i reads padded rows 2i … 2i + 3 = even[i], odd[i], even[i + 1],
///    odd[i + 1], which for all tile rows at once are the flat even/odd arrays and the same shifted
///    by one row.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn input_plane<T: Float>(
    xc: &[T],
    h: usize,
    w: usize,
    tl: Tiles,
    vc: &mut [T],
    ld: usize,
    off: usize,
    buf: &mut Vec<T>,
) {
    let Tiles { th, tw } = tl;
    let z = T::zero();
    let half = (th + 1) * tw; // even (or odd) padded rows, tw columns each
    let need = 16 * half;
    let (views, hs) = sized(buf, need).split_at_mut(8 * half);
    for r in 0..2 * (th + 1) {
        let [e, e1, o, o1] = four_rows(views, (r % 2) * half + (r / 2) * tw, 2 * half, tw);
        let src = r.wrapping_sub(1);
        if src >= h {
            for v in [e, e1, o, o1] {
                v.fill(z);
            }
            continue;
        }
        let xr = &xc[src * w..(src + 1) * w];
        // o[j] = x[2j], e1[j] = x[2j + 1] (p[k] = x[k − 1]); zero past the row's end.
        split_row(xr, o, e1);
        e[0] = z;
        e[1..].copy_from_slice(&e1[..tw - 1]);
        o1[..tw - 1].copy_from_slice(&o[1..]);
        o1[tw - 1] = z;
    }
    let n = 2 * half;
    let (e, e1, o, o1) = (
        &views[..n],
        &views[n..2 * n],
        &views[2 * n..3 * n],
        &views[3 * n..],
    );
    zip4(four_rows(hs, 0, n, n), [e, e1, o, o1], |e, e1, o, o1| {
        [e - e1, o + e1, e1 - o, o - o1]
    });
    let t = th * tw;
    for c in 0..4 {
        let hc = &hs[c * n..(c + 1) * n];
        let (even, odd) = hc.split_at(half);
        let (e0, e1, o0, o1) = (&even[..t], &even[tw..tw + t], &odd[..t], &odd[tw..tw + t]);
        zip4(
            four_rows(vc, c * ld + off, 4 * ld, t),
            [e0, e1, o0, o1],
            |e0, e1, o0, o1| [e0 - e1, o0 + e1, e1 - o0, o0 - o1],
        );
    }
}

/// One output plane `yc` [h, w] from the 16 rows of `mc` (row stride `ld`), tile columns
/// `off..off + tiles`, plus `bias`: `Aᵀ` along h and then along w as flat loops over all tiles
/// (`ye`/`yo`: the even and odd output columns of both output rows of every tile), then one
/// interleaving copy per output row.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn output_plane<T: Float>(
    mc: &[T],
    ld: usize,
    off: usize,
    tl: Tiles,
    h: usize,
    w: usize,
    bias: T,
    yc: &mut [T],
    buf: &mut Vec<T>,
) {
    let Tiles { th, tw } = tl;
    let t = th * tw;
    let (s, y2) = sized(buf, 12 * t).split_at_mut(8 * t);
    // s[half·4 + c][t] = (Aᵀ M)[half][c]: rows 0+1+2 (half 0) and 1−2−3 (half 1).
    for c in 0..4 {
        let at = |a: usize| &mc[(4 * a + c) * ld + off..][..t];
        let (m0, m1, m2, m3) = (at(0), at(1), at(2), at(3));
        let (top, bottom) = s.split_at_mut(4 * t);
        let (s0, s1) = (&mut top[c * t..][..t], &mut bottom[c * t..][..t]);
        zip2(s0, s1, [m0, m1, m2, m3], |m0, m1, m2, m3| {
            [m0 + m1 + m2, m1 - m2 - m3]
        });
    }
    // y2[half·2 + parity][t]: output row 2i + half, column 2j + parity.
    for half in 0..2 {
        let sh = &s[half * 4 * t..][..4 * t];
        let (a, b, c, d) = (&sh[..t], &sh[t..2 * t], &sh[2 * t..3 * t], &sh[3 * t..]);
        let (ye, yo) = y2[half * 2 * t..][..2 * t].split_at_mut(t);
        zip2(ye, yo, [a, b, c, d], |a, b, c, d| {
            [a + b + c + bias, b - c - d + bias]
        });
    }
    let pairs = w / 2;
    for oh in 0..h {
        let (i, half) = (oh / 2, oh % 2);
        let ye = &y2[half * 2 * t + i * tw..][..tw];
        let yo = &y2[half * 2 * t + t + i * tw..][..tw];
        let yrow = &mut yc[oh * w..(oh + 1) * w];
        let (ye2, yo2) = (&ye[..pairs], &yo[..pairs]);
        let y2row = &mut yrow[..2 * pairs];
        for j in 0..pairs {
            y2row[2 * j] = ye2[j];
            y2row[2 * j + 1] = yo2[j];
        }
        if w % 2 == 1 {
            yrow[w - 1] = ye[pairs];
        }
    }
}

/// One gradient plane `src` [h, w] → `A dy Aᵀ` of its tiles at columns `off..` of the 16 rows of
/// `yc` (row stride `ld`); A applied to (p0, p1) is (p0, p0 + p1, p0 − p1, −p1). The plane is first
/// split into its four 2×2 phases (`q[2·(r % 2) + (col % 2)][tile]`, zero beyond h×w), after which
/// both passes are flat loops over all tiles.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn output_grad_plane<T: Float>(
    src: &[T],
    h: usize,
    w: usize,
    tl: Tiles,
    yc: &mut [T],
    ld: usize,
    off: usize,
    buf: &mut Vec<T>,
) {
    let Tiles { th, tw } = tl;
    let z = T::zero();
    let t = th * tw;
    let q = sized(buf, 4 * t);
    for r in 0..2 * th {
        let (even, odd) = q[2 * (r % 2) * t + (r / 2) * tw..].split_at_mut(t);
        let (even, odd) = (&mut even[..tw], &mut odd[..tw]);
        if r >= h {
            even.fill(z);
            odd.fill(z);
            continue;
        }
        split_row(&src[r * w..(r + 1) * w], even, odd);
    }
    let (p00, p01, p10, p11) = (&q[..t], &q[t..2 * t], &q[2 * t..3 * t], &q[3 * t..]);
    // A along h (row a) for the even and the odd column of each tile, then A along w.
    let rows: [fn(T, T) -> T; 4] = [|p0, _| p0, |p0, p1| p0 + p1, |p0, p1| p0 - p1, |_, p1| -p1];
    for (a, row) in rows.into_iter().enumerate() {
        zip4(
            four_rows(yc, 4 * a * ld + off, ld, t),
            [p00, p01, p10, p11],
            |p00, p01, p10, p11| {
                let (ue, uo) = (row(p00, p10), row(p01, p11));
                [ue, ue + uo, ue - uo, -uo]
            },
        );
    }
}

/// `input_plane` compiled for AVX2 (call only when `avx2()`).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2"))]
pub(super) unsafe fn input_plane_avx2<T: Float>(
    xc: &[T],
    h: usize,
    w: usize,
    tl: Tiles,
    vc: &mut [T],
    ld: usize,
    off: usize,
    buf: &mut Vec<T>,
) {
    input_plane(xc, h, w, tl, vc, ld, off, buf)
}

/// `output_plane` compiled for AVX2 (call only when `avx2()`).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2"))]
pub(super) unsafe fn output_plane_avx2<T: Float>(
    mc: &[T],
    ld: usize,
    off: usize,
    tl: Tiles,
    h: usize,
    w: usize,
    bias: T,
    yc: &mut [T],
    buf: &mut Vec<T>,
) {
    output_plane(mc, ld, off, tl, h, w, bias, yc, buf)
}

/// `output_grad_plane` compiled for AVX2 (call only when `avx2()`).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2"))]
pub(super) unsafe fn output_grad_plane_avx2<T: Float>(
    src: &[T],
    h: usize,
    w: usize,
    tl: Tiles,
    yc: &mut [T],
    ld: usize,
    off: usize,
    buf: &mut Vec<T>,
) {
    output_grad_plane(src, h, w, tl, yc, ld, off, buf)
}

/// `outs[c][m] = f(ins[0][m], …, ins[3][m])[c]` over the length of `outs[0]` (every slice is cut to
/// it first, so the loop has no bounds checks and vectorises).
#[inline(always)]
fn zip4<T: Float>(outs: [&mut [T]; 4], ins: [&[T]; 4], f: impl Fn(T, T, T, T) -> [T; 4]) {
    let [o0, o1, o2, o3] = outs;
    let n = o0.len();
    let (o1, o2, o3) = (&mut o1[..n], &mut o2[..n], &mut o3[..n]);
    let [a, b, c, d] = ins.map(|v| &v[..n]);
    for m in 0..n {
        let r = f(a[m], b[m], c[m], d[m]);
        o0[m] = r[0];
        o1[m] = r[1];
        o2[m] = r[2];
        o3[m] = r[3];
    }
}

/// `even[j] = row[2j]`, `odd[j] = row[2j + 1]` for the row's `ceil(len / 2)` pairs, the missing odd
/// element of an odd-length row being zero (`even` and `odd` hold at least that many).
#[inline(always)]
fn split_row<T: Float>(row: &[T], even: &mut [T], odd: &mut [T]) {
    let (w, pairs) = (row.len(), row.len() / 2);
    deinterleave(&row[..2 * pairs], &mut even[..pairs], &mut odd[..pairs]);
    if w % 2 == 1 {
        even[pairs] = row[w - 1];
        odd[pairs] = T::zero();
    }
}

/// `even[j] = v[2j]`, `odd[j] = v[2j + 1]` (`v.len() = 2·even.len() = 2·odd.len()`), written with
/// provably in-bounds indices so that it vectorises as a stride-2 load.
#[inline(always)]
fn deinterleave<T: Float>(v: &[T], even: &mut [T], odd: &mut [T]) {
    let n = even.len();
    let (v, odd) = (&v[..2 * n], &mut odd[..n]);
    for j in 0..n {
        even[j] = v[2 * j];
        odd[j] = v[2 * j + 1];
    }
}

/// `zip4` with two outputs.
#[inline(always)]
fn zip2<T: Float>(o0: &mut [T], o1: &mut [T], ins: [&[T]; 4], f: impl Fn(T, T, T, T) -> [T; 2]) {
    let n = o0.len();
    let o1 = &mut o1[..n];
    let [a, b, c, d] = ins.map(|v| &v[..n]);
    for m in 0..n {
        let r = f(a[m], b[m], c[m], d[m]);
        o0[m] = r[0];
        o1[m] = r[1];
    }
}

/// The four disjoint slices `v[start + a·stride ..][..len]`, a = 0..4 (`len ≤ stride`).
#[inline(always)]
fn four_rows<T>(v: &mut [T], start: usize, stride: usize, len: usize) -> [&mut [T]; 4] {
    let (_, rest) = v.split_at_mut(start);
    let (r0, rest) = rest.split_at_mut(stride);
    let (r1, rest) = rest.split_at_mut(stride);
    let (r2, r3) = rest.split_at_mut(stride);
    [
        &mut r0[..len],
        &mut r1[..len],
        &mut r2[..len],
        &mut r3[..len],
    ]
}
