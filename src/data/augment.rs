//! Per-sample preprocessing: training augmentation as in Bag of Tricks (random resized crop with area
//! 8–100% and aspect 3/4–4/3, horizontal flip, brightness/contrast/saturation jitter, optional hue,
//! PCA lighting noise with σ 0.1, mean/std normalisation), its small-image form (pad-and-crop + flip,
//! for 28–32 px data), and evaluation preprocessing (resize the shorter side, center crop).
//! Output is f32 CHW. All randomness comes from the RNG the caller passes (seeded per sample).

use super::Image;
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Preprocess {
    /// Training: pad by `pad` (zeros) then random `size` crop, optional flip (small images).
    PadCrop { pad: usize },
    /// Training: random resized crop to `size` (area and aspect ranges of the paper).
    RandomResizedCrop { min_area: f64 },
    /// Evaluation: resize the shorter side to `resize`, then center crop `size`.
    CenterCrop { resize: usize },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    pub size: usize,
    pub preprocess: Preprocess,
    pub flip: bool,
    /// Brightness, contrast and saturation factors drawn from [1 − j, 1 + j] (0.4 in the paper).
    pub jitter: f32,
    /// Hue jitter (off in the 2019 reproduction's best recipe).
    pub hue: bool,
    /// Standard deviation of AlexNet-style PCA lighting noise (0.1 in the paper; RGB only).
    pub lighting: f32,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl AugmentConfig {
    /// Evaluation preprocessing matching a training config.
    pub fn eval(&self, resize: usize) -> AugmentConfig {
        AugmentConfig {
            preprocess: Preprocess::CenterCrop { resize },
            flip: false,
            jitter: 0.0,
            hue: false,
            lighting: 0.0,
            ..self.clone()
        }
    }
}

/// ImageNet's RGB eigenvalues/vectors for PCA lighting (AlexNet; as used by GluonCV).
const EIGVAL: [f32; 3] = [0.2175, 0.0188, 0.0045];
const EIGVEC: [[f32; 3]; 3] = [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
];

/// Bilinear sample of channel `c` at continuous pixel coordinates (x, y), edges clamped.
fn sample(img: &Image, x: f32, y: f32, c: usize) -> f32 {
    let (w, h) = (img.width as isize, img.height as isize);
    let x0 = x.floor();
    let y0 = y.floor();
    let (fx, fy) = (x - x0, y - y0);
    let at = |xi: isize, yi: isize| -> f32 {
        let xi = xi.clamp(0, w - 1) as usize;
        let yi = yi.clamp(0, h - 1) as usize;
        img.data[(yi * img.width + xi) * img.channels + c] as f32
    };
    let (x0, y0) = (x0 as isize, y0 as isize);
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
    let bot = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
    top * (1.0 - fy) + bot * fy
}

/// Crops the box (x, y, w, h) of `img` and resizes it to `size`×`size` bilinearly, into CHW in [0,1].
fn crop_resize(
    img: &Image,
    bx: f32,
    by: f32,
    bw: f32,
    bh: f32,
    size: usize,
    flip: bool,
) -> Vec<f32> {
    let c = img.channels;
    let mut out = vec![0.0; c * size * size];
    let (sx, sy) = (bw / size as f32, bh / size as f32);
    for oy in 0..size {
        let y = by + (oy as f32 + 0.5) * sy - 0.5;
        for ox in 0..size {
            let ox_src = if flip { size - 1 - ox } else { ox };
            let x = bx + (ox_src as f32 + 0.5) * sx - 0.5;
            for ch in 0..c {
                out[(ch * size + oy) * size + ox] = sample(img, x, y, ch) / 255.0;
            }
        }
    }
    out
}

/// Applies `cfg` to one image, returning a normalised f32 CHW sample of `cfg.size`².
pub fn apply(img: &Image, cfg: &AugmentConfig, rng: &mut impl Rng) -> Vec<f32> {
    let size = cfg.size;
    let c = img.channels;
    let flip = cfg.flip && rng.random_bool(0.5);
    let mut out = match &cfg.preprocess {
        Preprocess::PadCrop { pad } => {
            let ox = rng.random_range(0..=2 * pad) as isize - *pad as isize;
            let oy = rng.random_range(0..=2 * pad) as isize - *pad as isize;
            let mut o = vec![0.0; c * size * size];
            for y in 0..size {
                for x in 0..size {
                    let sx = x as isize + ox;
                    let sy = y as isize + oy;
                    if sx < 0 || sy < 0 || sx >= img.width as isize || sy >= img.height as isize {
                        continue;
                    }
                    let dx = if flip { size - 1 - x } else { x };
                    for ch in 0..c {
                        o[(ch * size + y) * size + dx] =
                            img.data[(sy as usize * img.width + sx as usize) * c + ch] as f32
                                / 255.0;
                    }
                }
            }
            o
        }
        Preprocess::RandomResizedCrop { min_area } => {
            let (w, h) = (img.width as f64, img.height as f64);
            let mut bx = (0.0, 0.0, w, h);
            for _ in 0..10 {
                let area = w * h * rng.random_range(*min_area..=1.0);
                let log_ratio = rng.random_range((3.0f64 / 4.0).ln()..=(4.0f64 / 3.0).ln());
                let ratio = log_ratio.exp();
                let cw = (area * ratio).sqrt();
                let ch = (area / ratio).sqrt();
                if cw <= w && ch <= h {
                    bx = (
                        rng.random_range(0.0..=w - cw),
                        rng.random_range(0.0..=h - ch),
                        cw,
                        ch,
                    );
                    break;
                }
            }
            crop_resize(
                img,
                bx.0 as f32,
                bx.1 as f32,
                bx.2 as f32,
                bx.3 as f32,
                size,
                flip,
            )
        }
        Preprocess::CenterCrop { resize } => {
            // Resize the shorter side to `resize`, then take the central size×size: equivalently crop
            // the central (size/resize)·short side box of the original and resize it to size.
            let short = img.width.min(img.height) as f32;
            let side = short * size as f32 / *resize as f32;
            let bx = (img.width as f32 - side) / 2.0;
            let by = (img.height as f32 - side) / 2.0;
            crop_resize(img, bx, by, side, side, size, flip)
        }
    };
    let plane = size * size;
    if cfg.jitter > 0.0 {
        let j = cfg.jitter;
        let mut factors = [
            rng.random_range(1.0 - j..=1.0 + j),
            rng.random_range(1.0 - j..=1.0 + j),
            rng.random_range(1.0 - j..=1.0 + j),
        ];
        if c == 1 {
            factors[2] = 1.0;
        }
        // Brightness, contrast, saturation in a random order (as GluonCV does).
        let mut order = [0usize, 1, 2];
        for i in (1..3).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        for k in order {
            let f = factors[k];
            match k {
                0 => out.iter_mut().for_each(|v| *v *= f),
                1 => {
                    let gray_mean = gray(&out, c, plane).iter().sum::<f32>() / plane as f32;
                    out.iter_mut()
                        .for_each(|v| *v = *v * f + gray_mean * (1.0 - f));
                }
                _ => {
                    let g = gray(&out, c, plane);
                    for ch in 0..c {
                        for i in 0..plane {
                            out[ch * plane + i] = out[ch * plane + i] * f + g[i] * (1.0 - f);
                        }
                    }
                }
            }
        }
        if cfg.hue && c == 3 {
            rotate_hue(
                &mut out,
                plane,
                rng.random_range(-j..=j) * std::f32::consts::PI,
            );
        }
    }
    if cfg.lighting > 0.0 && c == 3 {
        let alpha: [f32; 3] = std::array::from_fn(|_| {
            use rand_distr::Distribution;
            rand_distr::Normal::new(0.0f32, cfg.lighting)
                .unwrap()
                .sample(rng)
        });
        for ch in 0..3 {
            let delta: f32 = (0..3).map(|k| EIGVEC[ch][k] * alpha[k] * EIGVAL[k]).sum();
            out[ch * plane..(ch + 1) * plane]
                .iter_mut()
                .for_each(|v| *v += delta);
        }
    }
    for ch in 0..c {
        let (m, s) = (
            cfg.mean[ch.min(cfg.mean.len() - 1)],
            cfg.std[ch.min(cfg.std.len() - 1)],
        );
        out[ch * plane..(ch + 1) * plane]
            .iter_mut()
            .for_each(|v| *v = (*v - m) / s);
    }
    out
}

fn gray(x: &[f32], c: usize, plane: usize) -> Vec<f32> {
    if c == 1 {
        return x.to_vec();
    }
    (0..plane)
        .map(|i| 0.299 * x[i] + 0.587 * x[plane + i] + 0.114 * x[2 * plane + i])
        .collect()
}

/// Rotates hue by `theta` radians in YIQ space.
fn rotate_hue(x: &mut [f32], plane: usize, theta: f32) {
    let (u, w) = (theta.cos(), theta.sin());
    let t = [
        [0.299, 0.587, 0.114],
        [0.596, -0.274, -0.321],
        [0.211, -0.523, 0.311],
    ];
    let it = [
        [1.0, 0.956, 0.621],
        [1.0, -0.272, -0.647],
        [1.0, -1.107, 1.705],
    ];
    let rot = [[1.0, 0.0, 0.0], [0.0, u, -w], [0.0, w, u]];
    let mut m = [[0.0f32; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            m[i][j] = (0..3)
                .map(|k| (0..3).map(|l| it[i][k] * rot[k][l] * t[l][j]).sum::<f32>())
                .sum();
        }
    }
    for p in 0..plane {
        let v = [x[p], x[plane + p], x[2 * plane + p]];
        for ch in 0..3 {
            x[ch * plane + p] = m[ch][0] * v[0] + m[ch][1] * v[1] + m[ch][2] * v[2];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp(w: usize, h: usize, c: usize) -> Image {
        Image {
            width: w,
            height: h,
            channels: c,
            data: (0..w * h * c).map(|i| (i * 5 % 256) as u8).collect(),
        }
    }

    fn plain(size: usize, preprocess: Preprocess) -> AugmentConfig {
        AugmentConfig {
            size,
            preprocess,
            flip: false,
            jitter: 0.0,
            hue: false,
            lighting: 0.0,
            mean: vec![0.0],
            std: vec![1.0],
        }
    }

    #[test]
    fn center_crop_of_same_size_is_identity_and_normalises() {
        let img = ramp(6, 6, 1);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let out = apply(
            &img,
            &plain(6, Preprocess::CenterCrop { resize: 6 }),
            &mut rng,
        );
        let expect: Vec<f32> = img.data.iter().map(|&v| v as f32 / 255.0).collect();
        for (a, b) in out.iter().zip(&expect) {
            assert!((a - b).abs() < 1e-5);
        }
        let mut cfg = plain(6, Preprocess::CenterCrop { resize: 6 });
        cfg.mean = vec![0.5];
        cfg.std = vec![0.25];
        let n = apply(&img, &cfg, &mut rng);
        assert!((n[7] - (expect[7] - 0.5) / 0.25).abs() < 1e-5);
    }

    #[test]
    fn pad_crop_shifts_and_flip_mirrors() {
        let img = ramp(5, 5, 1);
        let mut cfg = plain(5, Preprocess::PadCrop { pad: 0 });
        cfg.flip = true;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut saw_flip = false;
        for _ in 0..8 {
            let out = apply(&img, &cfg, &mut rng);
            let first_row: Vec<f32> = img.data[..5].iter().map(|&v| v as f32 / 255.0).collect();
            if (out[0] - first_row[4]).abs() < 1e-6 && (out[4] - first_row[0]).abs() < 1e-6 {
                saw_flip = true;
            } else {
                assert_eq!(&out[..5], &first_row[..]);
            }
        }
        assert!(saw_flip, "about half the samples are flipped");
    }

    #[test]
    fn random_resized_crop_and_colour_ops_are_seeded_and_bounded() {
        let img = ramp(40, 30, 3);
        let cfg = AugmentConfig {
            size: 16,
            preprocess: Preprocess::RandomResizedCrop { min_area: 0.08 },
            flip: true,
            jitter: 0.4,
            hue: true,
            lighting: 0.1,
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        };
        let a = apply(&img, &cfg, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        let b = apply(&img, &cfg, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        let c = apply(&img, &cfg, &mut rand_chacha::ChaCha8Rng::seed_from_u64(4));
        assert_eq!(a.len(), 3 * 16 * 16);
        assert_eq!(a, b, "same seed, same sample");
        assert_ne!(a, c);
        assert!(a.iter().all(|v| v.is_finite() && v.abs() < 10.0));
    }
}
