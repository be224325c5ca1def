//! Texture swap: a small stand-in for Stylized-ImageNet on images of one object on a dark, plain
//! background (Fashion-MNIST). Geirhos et al. remove texture as a cue by re-painting every training
//! image with AdaIN in the style of a random painting; without trained AdaIN weights (none can be
//! downloaded here) this module does the same job in pixel space for such images: the object's
//! silhouette and coarse internal structure stay, its own fine texture goes, and a crop of a real
//! texture photograph fills it.
//!
//! For each pixel, with `m` the object mask (luminance ramped from 0 at black to 1 at `MASK_RAMP`),
//! `b` the image after a 3×3 box blur (which removes the 1–2 px fabric texture), `μ` the mask-
//! weighted mean of `b` per channel and `t` the texture crop (all in [0, 1]):
//!
//! ```text
//! out = (1 − m)·x + m·clamp(t + w·(b − μ), 0, 1)        w = content_weight (0.5 by default)
//! ```
//!
//! so the background is untouched, the silhouette keeps its place, the object's large-scale shading
//! (seams, sleeves, soles) survives at weight `w`, and its brightness and texture come from `t`.
//!
//! Invariants: an image's texture draw (which texture, crop size and place) is a pure function of
//! (seed, stream, index), so a swapped dataset is fixed once made, like SIN on disk, and `--resume`
//! stays exact; training and validation use different streams. A blank image (no pixel above black)
//! is returned unchanged. Cue-conflict images for `engine shape-bias --cue texture-swap` use the
//! same formula with `t` a mirror-tiled patch from inside the object of an image of another class.

use super::folder::{decode_image, is_image_file};
use super::loader::mix_seed;
use super::{Dataset, Image};
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::Arc;

/// Luminance (in [0, 1]) from which a pixel counts fully as object; below it the mask ramps to 0.
pub const MASK_RAMP: f32 = 0.1;
/// Default weight of the object's own blurred shading on top of the texture.
pub const DEFAULT_CONTENT_WEIGHT: f32 = 0.5;
/// Textures are kept at most this many pixels on their shorter side (downscaled once at load).
const MAX_TEXTURE_SIDE: u32 = 256;
/// The largest texture crop, in output sides: crops span 1× to this × the output size.
const MAX_CROP_SCALE: usize = 4;
/// The cue-conflict texture patch: at most this fraction of the texture source's shorter side.
const PATCH_FRACTION: f32 = 0.4;
/// The cue-conflict texture patch shrinks (down to `PATCH_MIN_SIDE`) until this much of it is object.
const PATCH_MIN_COVER: f32 = 0.95;
const PATCH_MIN_SIDE: usize = 3;

/// A set of texture photographs and the seed of the draw.
pub struct TextureSwap {
    textures: Vec<(String, Image)>,
    seed: u64,
    content_weight: f32,
}

impl TextureSwap {
    /// Loads every image under `dir` (recursively) as a texture with `channels` channels (1 or 3).
    pub fn load(dir: &Path, channels: usize, seed: u64) -> Result<TextureSwap> {
        if !dir.is_dir() {
            return Err(Error::Msg(format!(
                "--texture-swap {}: not a folder; give a folder of texture photographs (e.g. \
                 tests/data/textures)",
                dir.display()
            )));
        }
        let mut files = Vec::new();
        super::folder::list_images(dir, &mut files)?;
        files.retain(|p| is_image_file(p));
        files.sort();
        let mut textures = Vec::new();
        for path in files {
            let img = decode_image(&path, channels)?;
            textures.push((path.display().to_string(), downscale(img)));
        }
        if textures.is_empty() {
            return Err(Error::Msg(format!(
                "--texture-swap {}: no images found (jpg, png, bmp, webp)",
                dir.display()
            )));
        }
        TextureSwap::from_images(textures, seed)
    }

    /// A texture set from decoded images (all with the same channel count).
    pub fn from_images(textures: Vec<(String, Image)>, seed: u64) -> Result<TextureSwap> {
        let Some((_, first)) = textures.first() else {
            return Err(Error::Msg("texture swap needs at least one texture".into()));
        };
        let c = first.channels;
        if let Some((name, t)) = textures.iter().find(|(_, t)| t.channels != c) {
            return Err(Error::Msg(format!(
                "texture {name} has {} channels, the first one {c}",
                t.channels
            )));
        }
        Ok(TextureSwap {
            textures,
            seed,
            content_weight: DEFAULT_CONTENT_WEIGHT,
        })
    }

    pub fn channels(&self) -> usize {
        self.textures[0].1.channels
    }

    /// The texture drawn for sample `index` of `stream`: which texture, and its crop resized to
    /// `width`×`height`, HWC in [0, 1].
    pub fn texture_for(
        &self,
        stream: u64,
        index: u64,
        width: usize,
        height: usize,
    ) -> (usize, Vec<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[self.seed, stream, index, 7]));
        let k = rng.random_range(0..self.textures.len());
        let tex = &self.textures[k].1;
        // Crop side along x in [width, MAX_CROP_SCALE·width], shrunk to fit the texture; the crop
        // keeps the output's aspect ratio.
        let fit = |side: usize| side.min(tex.width).min(tex.height * width / height.max(1));
        let lo = fit(width).max(1);
        let hi = fit(MAX_CROP_SCALE * width).max(lo);
        let cw = rng.random_range(lo..=hi);
        let ch = (cw * height / width.max(1)).clamp(1, tex.height);
        let x0 = rng.random_range(0..=tex.width - cw);
        let y0 = rng.random_range(0..=tex.height - ch);
        (k, area_resize(tex, x0, y0, cw, ch, width, height))
    }

    /// `img` with its object re-textured by the draw for (`stream`, `index`).
    pub fn apply(&self, img: &Image, stream: u64, index: u64) -> Result<Image> {
        if img.channels != self.channels() {
            return Err(Error::Msg(format!(
                "texture swap: image has {} channels, the textures {}",
                img.channels,
                self.channels()
            )));
        }
        let (_, t) = self.texture_for(stream, index, img.width, img.height);
        Ok(blend(img, &t, self.content_weight))
    }
}

/// Downscales a texture so its shorter side is at most `MAX_TEXTURE_SIDE` (area-averaged).
fn downscale(img: Image) -> Image {
    let short = img.width.min(img.height);
    if short <= MAX_TEXTURE_SIDE as usize {
        return img;
    }
    let (w, h) = (
        img.width * MAX_TEXTURE_SIDE as usize / short,
        img.height * MAX_TEXTURE_SIDE as usize / short,
    );
    let data = area_resize(&img, 0, 0, img.width, img.height, w, h)
        .into_iter()
        .map(|v| (v * 255.0).round() as u8)
        .collect();
    Image {
        width: w,
        height: h,
        channels: img.channels,
        data,
    }
}

/// The box (x0, y0, cw, ch) of `img` resized to `w`×`h` by averaging, for each output pixel, the
/// source pixels whose centres fall in its footprint (the nearest one when upscaling). HWC in [0, 1].
pub fn area_resize(
    img: &Image,
    x0: usize,
    y0: usize,
    cw: usize,
    ch: usize,
    w: usize,
    h: usize,
) -> Vec<f32> {
    let c = img.channels;
    let span = |i: usize, out: usize, src: usize| -> (usize, usize) {
        let a = i * src / out;
        let b = ((i + 1) * src / out).max(a + 1);
        (a, b.min(src))
    };
    let mut out = vec![0f32; w * h * c];
    for oy in 0..h {
        let (ya, yb) = span(oy, h, ch);
        for ox in 0..w {
            let (xa, xb) = span(ox, w, cw);
            let n = ((yb - ya) * (xb - xa)) as f32;
            for k in 0..c {
                let mut s = 0f32;
                for y in ya..yb {
                    let row = ((y0 + y) * img.width + x0) * c;
                    for x in xa..xb {
                        s += img.data[row + x * c + k] as f32;
                    }
                }
                out[(oy * w + ox) * c + k] = s / (n * 255.0);
            }
        }
    }
    out
}

/// Luminance of pixel `p` in [0, 1] (ITU-R 601 weights for RGB).
fn luminance(img: &Image, p: usize) -> f32 {
    let d = &img.data[p * img.channels..(p + 1) * img.channels];
    match img.channels {
        3 => (0.299 * d[0] as f32 + 0.587 * d[1] as f32 + 0.114 * d[2] as f32) / 255.0,
        _ => d[0] as f32 / 255.0,
    }
}

/// The object mask of `img`: luminance ramped from 0 (black) to 1 at `MASK_RAMP`.
pub fn object_mask(img: &Image) -> Vec<f32> {
    (0..img.width * img.height)
        .map(|p| (luminance(img, p) / MASK_RAMP).clamp(0.0, 1.0))
        .collect()
}

/// 3×3 box blur per channel (edges clamped), HWC in [0, 1].
fn box_blur(img: &Image) -> Vec<f32> {
    let (w, h, c) = (img.width as isize, img.height as isize, img.channels);
    let mut out = vec![0f32; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            for k in 0..c {
                let mut s = 0f32;
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let (yy, xx) = ((y + dy).clamp(0, h - 1), (x + dx).clamp(0, w - 1));
                        s += img.data[((yy * w + xx) as usize) * c + k] as f32;
                    }
                }
                out[((y * w + x) as usize) * c + k] = s / (9.0 * 255.0);
            }
        }
    }
    out
}

/// The module's formula: `img`'s object re-textured with `texture` (HWC in [0, 1], the image's size
/// and channels) keeping `content_weight` of its blurred shading. A blank image comes back as is.
pub fn blend(img: &Image, texture: &[f32], content_weight: f32) -> Image {
    let c = img.channels;
    assert_eq!(
        texture.len(),
        img.data.len(),
        "texture and image sizes differ"
    );
    let m = object_mask(img);
    let mass: f32 = m.iter().sum();
    if mass < 1e-3 {
        return img.clone();
    }
    let b = box_blur(img);
    let mean: Vec<f32> = (0..c)
        .map(|k| {
            m.iter()
                .enumerate()
                .map(|(p, mp)| mp * b[p * c + k])
                .sum::<f32>()
                / mass
        })
        .collect();
    let data = img
        .data
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let (p, k) = (i / c, i % c);
            let y = (texture[i] + content_weight * (b[i] - mean[k])).clamp(0.0, 1.0);
            let v = (1.0 - m[p]) * (x as f32 / 255.0) + m[p] * y;
            (v * 255.0).round().clamp(0.0, 255.0) as u8
        })
        .collect();
    Image {
        data,
        ..img.clone()
    }
}

/// The texture patch of `src`, mirror-tiled to `w`×`h`, HWC in [0, 1]: the texture of its object
/// without the outline. The patch is the square of side `PATCH_FRACTION` of the shorter side that
/// lies most inside the object (largest mask sum; the most central among equals), shrunk until it
/// is at least `PATCH_MIN_COVER` inside (thin objects such as sandal straps get small patches), so
/// that background pixels do not punch holes into the shape it is tiled over.
pub fn tiled_patch(src: &Image, w: usize, h: usize) -> Vec<f32> {
    let c = src.channels;
    let (sw, sh) = (src.width, src.height);
    let m = object_mask(src);
    // Integral image of the mask: sum over [0, y) × [0, x) at (y, x).
    let mut integral = vec![0f32; (sw + 1) * (sh + 1)];
    for y in 0..sh {
        for x in 0..sw {
            integral[(y + 1) * (sw + 1) + x + 1] =
                m[y * sw + x] + integral[y * (sw + 1) + x + 1] + integral[(y + 1) * (sw + 1) + x]
                    - integral[y * (sw + 1) + x];
        }
    }
    let cover = |x: usize, y: usize, p: usize| {
        integral[(y + p) * (sw + 1) + x + p]
            - integral[y * (sw + 1) + x + p]
            - integral[(y + p) * (sw + 1) + x]
            + integral[y * (sw + 1) + x]
    };
    let largest = ((sw.min(sh) as f32 * PATCH_FRACTION).round() as usize).max(1);
    let mut best = (largest, (sw - largest) / 2, (sh - largest) / 2);
    for p in (PATCH_MIN_SIDE.min(largest)..=largest).rev() {
        let mut pick: Option<(f32, usize, usize, usize)> = None;
        for y in 0..=sh - p {
            for x in 0..=sw - p {
                let (cx, cy) = (2 * x + p, 2 * y + p);
                let off_centre = cx.abs_diff(sw) + cy.abs_diff(sh);
                let v = cover(x, y, p);
                let better = match pick {
                    None => true,
                    Some((bv, bo, _, _)) => v > bv + 1e-3 || (v > bv - 1e-3 && off_centre < bo),
                };
                if better {
                    pick = Some((v, off_centre, x, y));
                }
            }
        }
        let (v, _, x, y) = pick.expect("p fits in the image");
        best = (p, x, y);
        if v >= PATCH_MIN_COVER * (p * p) as f32 {
            break;
        }
    }
    let (p, px, py) = best;
    // Mirror tiling: 0, 1, …, p−1, p−1, …, 0, 0, 1, … so neighbouring tiles meet without a seam.
    let mirror = |i: usize| {
        let r = i % (2 * p);
        if r < p {
            r
        } else {
            2 * p - 1 - r
        }
    };
    let mut out = vec![0f32; w * h * c];
    for y in 0..h {
        let sy = py + mirror(y);
        for x in 0..w {
            let sx = px + mirror(x);
            for k in 0..c {
                out[(y * w + x) * c + k] = src.data[(sy * src.width + sx) * c + k] as f32 / 255.0;
            }
        }
    }
    out
}

/// A cue-conflict image: the shape (silhouette and shading) of `shape` with the texture of
/// `texture_src` (its tiled texture patch). Both must have the same size and channels.
pub fn cue_conflict(shape: &Image, texture_src: &Image, content_weight: f32) -> Result<Image> {
    if (shape.width, shape.height, shape.channels)
        != (texture_src.width, texture_src.height, texture_src.channels)
    {
        return Err(Error::Msg(format!(
            "cue conflict: shape image {}×{}×{} and texture image {}×{}×{} differ",
            shape.width,
            shape.height,
            shape.channels,
            texture_src.width,
            texture_src.height,
            texture_src.channels
        )));
    }
    let t = tiled_patch(texture_src, shape.width, shape.height);
    Ok(blend(shape, &t, content_weight))
}

/// A dataset whose every image is re-textured (a fixed draw per index and stream).
pub struct TextureSwapped {
    inner: Arc<dyn Dataset>,
    swap: Arc<TextureSwap>,
    stream: u64,
}

impl TextureSwapped {
    pub fn new(
        inner: Arc<dyn Dataset>,
        swap: Arc<TextureSwap>,
        stream: u64,
    ) -> Result<TextureSwapped> {
        if inner.channels() != swap.channels() {
            return Err(Error::Msg(format!(
                "texture swap: the data has {} channels, the textures were loaded with {}",
                inner.channels(),
                swap.channels()
            )));
        }
        Ok(TextureSwapped {
            inner,
            swap,
            stream,
        })
    }
}

impl Dataset for TextureSwapped {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn class_names(&self) -> &[String] {
        self.inner.class_names()
    }
    fn channels(&self) -> usize {
        self.inner.channels()
    }
    fn label(&self, index: usize) -> usize {
        self.inner.label(index)
    }
    fn get(&self, index: usize) -> Result<Image> {
        self.swap
            .apply(&self.inner.get(index)?, self.stream, index as u64)
    }
    fn describe(&self, index: usize) -> String {
        format!("{} (texture-swapped)", self.inner.describe(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(w: usize, h: usize, mut f: impl FnMut(usize, usize) -> u8) -> Image {
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                data.push(f(x, y));
            }
        }
        Image {
            width: w,
            height: h,
            channels: 1,
            data,
        }
    }

    /// A seeded noise texture (not constant, so the crop position matters).
    fn noise_texture(w: usize, h: usize, seed: u64) -> Image {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        gray(w, h, |_, _| rng.random_range(0..=255u32) as u8)
    }

    /// A bright disc with a fine checkerboard "fabric" on black.
    fn object() -> Image {
        gray(28, 28, |x, y| {
            let (dx, dy) = (x as f32 - 13.5, y as f32 - 13.5);
            if dx * dx + dy * dy < 100.0 {
                if (x + y) % 2 == 0 {
                    200
                } else {
                    120
                }
            } else {
                0
            }
        })
    }

    #[test]
    fn background_is_untouched_and_the_object_takes_the_texture() {
        let img = object();
        let texture: Vec<f32> = (0..28 * 28)
            .map(|p| ((p * 37) % 100) as f32 / 100.0)
            .collect();
        let out = blend(&img, &texture, 0.0);
        for p in 0..28 * 28 {
            if img.data[p] == 0 {
                assert_eq!(out.data[p], 0, "background pixel {p} changed");
            } else {
                // Fully inside the mask (luminance ≥ MASK_RAMP): exactly the texture when w = 0.
                let want = (texture[p] * 255.0).round() as u8;
                assert_eq!(out.data[p], want, "object pixel {p}");
            }
        }
    }

    #[test]
    fn the_objects_own_fine_texture_is_removed_and_its_shading_kept() {
        let img = object();
        let flat = vec![0.5f32; 28 * 28];
        let out = blend(&img, &flat, DEFAULT_CONTENT_WEIGHT);
        // The checkerboard alternates by 80 levels; after the box blur inside the disc it is gone
        // (a 3×3 window holds 4 or 5 of each), so neighbours differ by at most 80/9·w + rounding.
        let at = |x: usize, y: usize| out.data[y * 28 + x] as i32;
        for y in 10..18 {
            for x in 10..17 {
                assert!(
                    (at(x, y) - at(x + 1, y)).abs() <= 6,
                    "({x},{y}) {} vs {}",
                    at(x, y),
                    at(x + 1, y)
                );
            }
        }
        // Brightness comes from the texture (0.5) not from the object (mean ≈ 160/255).
        // (The object's own mean would give ≈ 160; its shading adds a little at the centre.)
        assert!((at(13, 13) - 128).abs() <= 12, "centre {}", at(13, 13));
    }

    #[test]
    fn draws_are_a_function_of_seed_stream_and_index() {
        let tex = vec![
            ("a".to_string(), noise_texture(128, 128, 1)),
            ("b".to_string(), noise_texture(96, 160, 2)),
        ];
        let swap = TextureSwap::from_images(tex.clone(), 5).unwrap();
        let again = TextureSwap::from_images(tex.clone(), 5).unwrap();
        let other_seed = TextureSwap::from_images(tex, 6).unwrap();
        let img = object();
        let a = swap.apply(&img, 0, 42).unwrap();
        assert_eq!(
            a.data,
            again.apply(&img, 0, 42).unwrap().data,
            "same draw must repeat"
        );
        assert_ne!(
            a.data,
            swap.apply(&img, 0, 43).unwrap().data,
            "next index must differ"
        );
        assert_ne!(
            a.data,
            swap.apply(&img, 1, 42).unwrap().data,
            "val stream must differ"
        );
        assert_ne!(
            a.data,
            other_seed.apply(&img, 0, 42).unwrap().data,
            "seed must matter"
        );
        // Both textures get drawn over many indices.
        let used: std::collections::HashSet<usize> =
            (0..64).map(|i| swap.texture_for(0, i, 28, 28).0).collect();
        assert_eq!(used.len(), 2);
    }

    #[test]
    fn area_resize_averages_blocks() {
        // 4×4 source of known values → 2×2: each output is the mean of a 2×2 block.
        let src = gray(4, 4, |x, y| (10 * (x + 4 * y)) as u8);
        let out = area_resize(&src, 0, 0, 4, 4, 2, 2);
        let want = [25.0, 45.0, 105.0, 125.0].map(|v: f32| v / 255.0);
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-6, "{o} vs {w}");
        }
        // A crop: the box (1, 2, 2, 2) at its own size is the source pixels.
        let crop = area_resize(&src, 1, 2, 2, 2, 2, 2);
        assert_eq!(
            crop.iter()
                .map(|v| (v * 255.0).round() as u8)
                .collect::<Vec<_>>(),
            [90, 100, 130, 140]
        );
    }

    #[test]
    fn cue_conflict_keeps_the_shape_and_takes_the_other_images_texture() {
        let shape = object();
        // Texture source: vertical stripes everywhere (an object filling its frame).
        let stripes = gray(28, 28, |x, _| if x % 4 < 2 { 250 } else { 60 });
        let out = cue_conflict(&shape, &stripes, 0.0).unwrap();
        let t = tiled_patch(&stripes, 28, 28);
        for p in 0..28 * 28 {
            if shape.data[p] == 0 {
                assert_eq!(out.data[p], 0);
            } else {
                assert_eq!(out.data[p], (t[p] * 255.0).round() as u8);
            }
        }
        // The tiled patch holds only values of the source's central patch.
        assert!(t.iter().all(|&v| v == 250.0 / 255.0 || v == 60.0 / 255.0));
        let wrong = gray(14, 28, |_, _| 1);
        assert!(cue_conflict(&shape, &wrong, 0.5).is_err());
    }

    #[test]
    fn the_texture_patch_comes_from_inside_the_object_even_off_centre() {
        // A ring: its centre is background, so a central patch would tile black holes.
        let ring = gray(28, 28, |x, y| {
            let r2 = (x as f32 - 13.5).powi(2) + (y as f32 - 13.5).powi(2);
            if (25.0..169.0).contains(&r2) {
                90 + ((x * 7 + y * 3) % 5) as u8 * 30
            } else {
                0
            }
        });
        let t = tiled_patch(&ring, 28, 28);
        let dark = t.iter().filter(|&&v| v < MASK_RAMP).count();
        assert!(
            dark <= 28 * 28 / 20,
            "{dark} of 784 tiled pixels are background"
        );
        // A full-frame texture keeps the largest, central patch.
        let full = gray(28, 28, |x, y| 100 + (x + 28 * y) as u8 % 100);
        let t = tiled_patch(&full, 28, 28);
        assert_eq!(
            (t[0] * 255.0).round() as u8,
            full.data[8 * 28 + 8],
            "11-px patch at (8, 8)"
        );
    }

    #[test]
    fn blank_images_and_channel_mismatches() {
        let blank = gray(28, 28, |_, _| 0);
        let swap =
            TextureSwap::from_images(vec![("a".into(), noise_texture(64, 64, 3))], 0).unwrap();
        assert_eq!(swap.apply(&blank, 0, 1).unwrap().data, blank.data);
        let rgb = Image {
            width: 2,
            height: 2,
            channels: 3,
            data: vec![9; 12],
        };
        assert!(swap.apply(&rgb, 0, 0).is_err());
    }
}
