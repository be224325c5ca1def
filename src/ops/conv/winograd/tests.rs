//! Winograd against an f64 definition of the convolution, its input gradient and its weight
//! gradient, in f64 and f32, through the public kernel structs (so the dispatch is tested too).

use super::*;
use crate::backend::CpuKernel;
use crate::ops::conv::{Conv2dBackwardInput, Conv2dBackwardWeight, Conv2dForward};
use rand::{Rng, SeedableRng};

fn geom(n: usize, cin: usize, cout: usize, h: usize, w: usize) -> Conv2dGeometry {
    Conv2dGeometry {
        n,
        cin,
        h,
        w,
        cout,
        kh: 3,
        kw: 3,
        ho: h,
        wo: w,
        stride: (1, 1),
        padding: (1, 1),
        dilation: (1, 1),
        groups: 1,
    }
}

/// x[n][ci][oh + ki − 1][ow + kj − 1], zero outside the image.
fn tap(g: &Conv2dGeometry, x: &[f64], n: usize, ci: usize, ih: isize, iw: isize) -> f64 {
    if ih < 0 || iw < 0 || ih >= g.h as isize || iw >= g.w as isize {
        return 0.0;
    }
    x[((n * g.cin + ci) * g.h + ih as usize) * g.w + iw as usize]
}

/// The definitions, in f64: y (with bias), dx and dw.
#[allow(clippy::needless_range_loop)]
fn definition(
    g: &Conv2dGeometry,
    x: &[f64],
    w: &[f64],
    bias: &[f64],
    dy: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut y = vec![0.0; g.n * g.out_image()];
    let mut dx = vec![0.0; g.n * g.in_image()];
    let mut dw = vec![0.0; g.weight_len()];
    for n in 0..g.n {
        for co in 0..g.cout {
            for oh in 0..g.h {
                for ow in 0..g.w {
                    let yi = ((n * g.cout + co) * g.h + oh) * g.w + ow;
                    let mut acc = bias[co];
                    for ci in 0..g.cin {
                        for k in 0..9 {
                            let (ih, iw) = ((oh + k / 3) as isize - 1, (ow + k % 3) as isize - 1);
                            let wi = (co * g.cin + ci) * 9 + k;
                            let xv = tap(g, x, n, ci, ih, iw);
                            acc += xv * w[wi];
                            dw[wi] += dy[yi] * xv;
                            if ih >= 0 && iw >= 0 && ih < g.h as isize && iw < g.w as isize {
                                let xi = ((n * g.cin + ci) * g.h + ih as usize) * g.w + iw as usize;
                                dx[xi] += dy[yi] * w[wi];
                            }
                        }
                    }
                    y[yi] = acc;
                }
            }
        }
    }
    (y, dx, dw)
}

fn close<T: Float>(what: &str, got: &[T], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let g = <T as crate::dtype::Element>::to_f64(*g);
        assert!(
            (g - w).abs() <= tol * scale,
            "{what}[{i}]: got {g}, want {w} (scale {scale})"
        );
    }
}

/// Forward (with and without bias), input gradient (through `as_forward`) and weight gradient
/// of the Winograd path equal the f64 definition: odd and even sizes (partial edge tiles), 1×1
/// and 2×n maps, batch 1 and small batches (one block, threaded gemms and transforms), and
/// batches split over threads into several blocks each.
#[test]
fn winograd_matches_the_definition_in_f64_and_f32() {
    // (n, cin, cout, h, w)
    let cases = [
        (16, 16, 16, 5, 7),
        (40, 16, 20, 4, 4),
        (520, 17, 16, 1, 1),
        (32, 16, 18, 2, 9),
        (96, 16, 16, 6, 3),
        (1, 24, 16, 23, 25),
        (4, 16, 16, 40, 40),
        (3, 64, 64, 14, 14),
        (12, 32, 48, 7, 7),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for (n, cin, cout, h, w) in cases {
        let g = geom(n, cin, cout, h, w);
        assert!(applies(&g), "{g:?} should take the Winograd path");
        let mut draw =
            |len: usize| -> Vec<f64> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let (x, wt, bias, dy) = (
            draw(n * g.in_image()),
            draw(g.weight_len()),
            draw(cout),
            draw(n * g.out_image()),
        );
        let (y, dx, dw) = definition(&g, &x, &wt, &bias, &dy);
        let no_bias = vec![0.0; cout];
        let (y0, _, _) = definition(&g, &x, &wt, &no_bias, &dy);
        let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let fwd = |has_bias| Conv2dForward {
            geom: g,
            has_bias,
            channels_last: false,
        };
        let bwd_in = Conv2dBackwardInput {
            geom: g,
            has_bias: false,
            channels_last: false,
        };
        let bwd_w = Conv2dBackwardWeight {
            geom: g,
            channels_last: false,
        };
        // f64: equal to rounding.
        let got = fwd(true).run::<f64>(&[&x, &wt, &bias]).unwrap();
        close("y f64", &got[0], &y, 1e-12);
        let got = fwd(false).run::<f64>(&[&x, &wt]).unwrap();
        close("y f64 no bias", &got[0], &y0, 1e-12);
        let got = bwd_in.run::<f64>(&[&dy, &wt]).unwrap();
        close("dx f64", &got[0], &dx, 1e-12);
        let got = bwd_w.run::<f64>(&[&x, &dy]).unwrap();
        close("dw f64", &got[0], &dw, 1e-12);
        // f32: within a few units of f32 rounding of the largest value.
        let (xs, ws, bs, dys) = (f32s(&x), f32s(&wt), f32s(&bias), f32s(&dy));
        let got = fwd(true).run::<f32>(&[&xs, &ws, &bs]).unwrap();
        close("y f32", &got[0], &y, 2e-6);
        let got = bwd_in.run::<f32>(&[&dys, &ws]).unwrap();
        close("dx f32", &got[0], &dx, 2e-6);
        let got = bwd_w.run::<f32>(&[&xs, &dys]).unwrap();
        close("dw f32", &got[0], &dw, 2e-6);
    }
}

#[test]
fn applies_only_to_3x3_stride1_pad1_ungrouped_convs_with_enough_channels_and_positions() {
    let g = geom(8, 16, 16, 8, 8);
    assert!(applies(&g));
    assert!(!applies(&Conv2dGeometry { n: 1, ..g }), "too few positions");
    assert!(!applies(&Conv2dGeometry { cin: 8, ..g }));
    assert!(!applies(&Conv2dGeometry {
        stride: (2, 2),
        ho: 4,
        wo: 4,
        ..g
    }));
    assert!(!applies(&Conv2dGeometry {
        padding: (0, 0),
        ho: 6,
        wo: 6,
        ..g
    }));
    assert!(!applies(&Conv2dGeometry { groups: 2, ..g }));
    assert!(!applies(&Conv2dGeometry {
        kh: 1,
        kw: 1,
        padding: (0, 0),
        ..g
    }));
}
