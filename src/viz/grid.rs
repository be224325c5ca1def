//! Images out of tensors: `tensor_to_rgb8` turns one image of an NCHW batch (1 or 3 channels, values
//! in [0, 1] or [-1, 1]) into RGB8 pixels, `ImageGrid` tiles rows of such images with a gap between
//! them (for sample grids), `save_png` writes RGB8 pixels atomically. Images of a grid row may
//! differ in size; each cell is as large as the largest image of the grid, images sit top-left.

use crate::nn::state::write_atomic;
use crate::{DType, Error, Result, Tensor};
use std::path::Path;

/// The value range of an image tensor: [0, 1] (the stylizer) or [-1, 1] (pix2pix's tanh output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelRange {
    ZeroOne,
    MinusOneOne,
}

/// An RGB8 image.
#[derive(Clone, Debug)]
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    /// Row-major, 3 bytes a pixel.
    pub data: Vec<u8>,
}

/// Image `index` of an NCHW tensor (1 or 3 channels) as RGB8, values clamped to the range.
pub fn tensor_to_rgb8(t: &Tensor, index: usize, range: PixelRange) -> Result<Rgb8> {
    let (n, c, h, w) = t.shape().dims4("tensor_to_rgb8")?;
    if index >= n || (c != 1 && c != 3) {
        return Err(Error::bad(
            "tensor_to_rgb8",
            format!("image {index} of a batch of {n} with {c} channels (want 1 or 3)"),
        ));
    }
    let img = t.narrow(0, index, 1)?.to_dtype(DType::F32)?.contiguous()?;
    let v: Vec<f32> = img.to_vec()?;
    let plane = h * w;
    let mut data = vec![0u8; plane * 3];
    for i in 0..plane {
        for ch in 0..3 {
            let x = v[(if c == 1 { 0 } else { ch }) * plane + i];
            let x = match range {
                PixelRange::ZeroOne => x,
                PixelRange::MinusOneOne => (x + 1.0) * 0.5,
            };
            data[i * 3 + ch] = (x.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    Ok(Rgb8 {
        width: w,
        height: h,
        data,
    })
}

/// Rows of images tiled into one picture.
#[derive(Default)]
pub struct ImageGrid {
    rows: Vec<Vec<Rgb8>>,
    /// Cells are enlarged by an integer factor (nearest neighbour) until their shorter side is at
    /// least this (0: as they are), so that 28–32 px samples are visible.
    min_cell: usize,
}

/// The cell side small-image grids (pix2pix samples, cue conflicts) are enlarged to.
pub const GRID_MIN_CELL: usize = 96;

/// Pixels between cells, filled white.
const GAP: usize = 4;

impl ImageGrid {
    pub fn new() -> ImageGrid {
        ImageGrid::default()
    }
    /// A grid whose cells are enlarged (integer factor, nearest) to at least `side` pixels.
    pub fn with_min_cell(side: usize) -> ImageGrid {
        ImageGrid {
            rows: Vec::new(),
            min_cell: side,
        }
    }
    pub fn push_row(&mut self, row: Vec<Rgb8>) {
        self.rows.push(row);
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// The tiled picture.
    pub fn render(&self) -> Rgb8 {
        let cell_w = self
            .rows
            .iter()
            .flatten()
            .map(|i| i.width)
            .max()
            .unwrap_or(1);
        let cell_h = self
            .rows
            .iter()
            .flatten()
            .map(|i| i.height)
            .max()
            .unwrap_or(1);
        let k = (self.min_cell / cell_w.min(cell_h).max(1)).max(1);
        let (cell_w, cell_h) = (cell_w * k, cell_h * k);
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let rows = self.rows.len().max(1);
        let width = cols * cell_w + (cols + 1) * GAP;
        let height = rows * cell_h + (rows + 1) * GAP;
        let mut data = vec![255u8; width * height * 3];
        for (r, row) in self.rows.iter().enumerate() {
            for (c, img) in row.iter().enumerate() {
                let (x0, y0) = (GAP + c * (cell_w + GAP), GAP + r * (cell_h + GAP));
                for y in 0..img.height * k {
                    let src = &img.data[(y / k) * img.width * 3..(y / k + 1) * img.width * 3];
                    let at = ((y0 + y) * width + x0) * 3;
                    for (x, px) in src.chunks(3).enumerate() {
                        for j in 0..k {
                            let o = at + (x * k + j) * 3;
                            data[o..o + 3].copy_from_slice(px);
                        }
                    }
                }
            }
        }
        Rgb8 {
            width,
            height,
            data,
        }
    }

    /// Renders and writes the grid as a PNG, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_png(path, &self.render())
    }
}

/// PNG bytes of an RGB8 buffer.
pub fn encode_png(width: usize, height: usize, rgb: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            rgb,
            width as u32,
            height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Msg(format!("encoding a PNG: {e}")))?;
    Ok(out)
}

use image::ImageEncoder;

/// Writes an RGB8 image to `path` as a PNG, atomically (temp file, then rename).
pub fn save_png(path: &Path, img: &Rgb8) -> Result<()> {
    write_atomic(path, &encode_png(img.width, img.height, &img.data)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Device;

    #[test]
    fn grid_places_each_image_in_its_cell() {
        // Batch of two 3×2×3 images: image 0 all 0.0 (black), image 1 all 1.0 (white); and a
        // [-1, 1] gray image.
        let mut v = vec![0.0f32; 18];
        v.extend(vec![1.0f32; 18]);
        let t = Tensor::from_vec(v, [2, 3, 2, 3], Device::Cpu).unwrap();
        let black = tensor_to_rgb8(&t, 0, PixelRange::ZeroOne).unwrap();
        let white = tensor_to_rgb8(&t, 1, PixelRange::ZeroOne).unwrap();
        let g = Tensor::from_vec(vec![0.0f32; 6], [1, 1, 2, 3], Device::Cpu).unwrap();
        let gray = tensor_to_rgb8(&g, 0, PixelRange::MinusOneOne).unwrap();
        assert_eq!(gray.data[0], 128);
        let mut grid = ImageGrid::new();
        grid.push_row(vec![black.clone(), white]);
        grid.push_row(vec![gray]);
        let img = grid.render();
        assert_eq!((img.width, img.height), (2 * 3 + 3 * GAP, 2 * 2 + 3 * GAP));
        let px = |x: usize, y: usize| img.data[(y * img.width + x) * 3];
        assert_eq!(px(GAP, GAP), 0); // black cell
        assert_eq!(px(2 * GAP + 3, GAP), 255); // white cell
        assert_eq!(px(GAP, 2 * GAP + 2), 128); // gray cell, second row
        assert!(tensor_to_rgb8(&t, 2, PixelRange::ZeroOne).is_err());
        // Enlarged cells: 3 wide × 2 high images with a minimum side of 5 → factor 5 / 2 = 2,
        // each pixel a 2×2 block.
        let white = tensor_to_rgb8(&t, 1, PixelRange::ZeroOne).unwrap();
        let mut big = ImageGrid::with_min_cell(5);
        big.push_row(vec![black, white]);
        let r = big.render();
        assert_eq!((r.width, r.height), (2 * 6 + 3 * GAP, 4 + 2 * GAP));
        let px = |x: usize, y: usize| r.data[(y * r.width + x) * 3];
        assert_eq!(
            px(GAP + 5, GAP + 3),
            0,
            "last enlarged pixel of the black cell"
        );
        assert_eq!(
            px(2 * GAP + 6, GAP),
            255,
            "second cell starts at its enlarged offset"
        );
    }
}
