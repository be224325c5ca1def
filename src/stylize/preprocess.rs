//! Stylized-ImageNet preprocessing of decoded RGB `u8` images, as the reference pipeline does it with
//! torchvision transforms on PIL images: a content image is resized so that its shorter side is
//! `content_size` (256) and center-cropped to `crop`×`crop` (224); a style image is center-cropped
//! to a square and resized to `style_size`×`style_size` (224). A size of 0 leaves that step out.
//! `batch_tensor` turns equally sized images into the stylizer's `[N, 3, H, W]` input in [0, 1].
//!
//! Invariants:
//! - Resizing is bilinear with antialiasing (the `image` crate's triangle filter, as PIL's
//!   `BILINEAR` used by torchvision on PIL images), not the training augmentation's point-sampled
//!   bilinear: a stylized dataset is kept, so downscaled paintings must not alias.
//! - The longer side after a shorter-side resize is `⌊size·long/short⌋` (torchvision's `Resize(int)`);
//!   an image whose shorter side already has that size is left as it is. Crops are centred with the
//!   offset `⌊(side − crop)/2⌋`.
//! - Everything here is a pure function of its inputs (no threads, no randomness), so the same file
//!   gives the same pixels on every run; the stylized output is then deterministic on the CPU.

use crate::data::Image;
use crate::{DType, Device, Error, Result, Tensor};
use image::imageops::FilterType;

fn to_rgb(img: &Image) -> image::RgbImage {
    assert_eq!(img.channels, 3, "stylize preprocessing takes RGB images");
    image::RgbImage::from_raw(img.width as u32, img.height as u32, img.data.clone())
        .expect("an Image holds width·height·3 bytes")
}

fn from_rgb(img: image::RgbImage) -> Image {
    Image {
        width: img.width() as usize,
        height: img.height() as usize,
        channels: 3,
        data: img.into_raw(),
    }
}

/// Resizes `img` to `width`×`height` (antialiased bilinear); the same size returns a copy.
pub fn resize(img: &Image, width: usize, height: usize) -> Image {
    if (img.width, img.height) == (width, height) {
        return img.clone();
    }
    from_rgb(image::imageops::resize(
        &to_rgb(img),
        width as u32,
        height as u32,
        FilterType::Triangle,
    ))
}

/// Resizes `img` so that its shorter side is `side` (torchvision's `Resize(side)`).
pub fn resize_shorter(img: &Image, side: usize) -> Image {
    let (w, h) = (img.width, img.height);
    if w.min(h) == side {
        return img.clone();
    }
    let long = |l: usize, s: usize| (side * l / s).max(1);
    if w <= h {
        resize(img, side, long(h, w))
    } else {
        resize(img, long(w, h), side)
    }
}

/// The central `width`×`height` pixels of `img` (which must be at least that large).
pub fn center_crop(img: &Image, width: usize, height: usize) -> Image {
    assert!(
        width <= img.width && height <= img.height,
        "crop larger than the image"
    );
    let (x0, y0) = ((img.width - width) / 2, (img.height - height) / 2);
    let c = img.channels;
    let mut data = Vec::with_capacity(width * height * c);
    for y in y0..y0 + height {
        let row = (y * img.width + x0) * c;
        data.extend_from_slice(&img.data[row..row + width * c]);
    }
    Image {
        width,
        height,
        channels: c,
        data,
    }
}

/// A content image for the stylizer: shorter side resized to `content_size`, then the central
/// `crop`×`crop` (either 0: left out). Errors (a message for the skip list) when the image is
/// smaller than the crop.
pub fn prepare_content(
    img: &Image,
    content_size: usize,
    crop: usize,
) -> std::result::Result<Image, String> {
    let img = if content_size > 0 {
        resize_shorter(img, content_size)
    } else {
        img.clone()
    };
    if crop == 0 {
        return Ok(img);
    }
    if img.width.min(img.height) < crop {
        return Err(format!(
            "image too small for the crop: {}×{} px, the shorter side must be at least {crop} px \
             (--crop)",
            img.width, img.height
        ));
    }
    Ok(center_crop(&img, crop, crop))
}

/// A style image for the stylizer: the central square, resized to `style_size`² (0: the image as
/// it is).
pub fn prepare_style(img: &Image, style_size: usize) -> Image {
    if style_size == 0 {
        return img.clone();
    }
    let side = img.width.min(img.height);
    resize(&center_crop(img, side, side), style_size, style_size)
}

/// Whether every channel of `img` takes more than one value (colour preservation needs a
/// non-zero standard deviation per channel).
pub fn channels_vary(img: &Image) -> bool {
    let c = img.channels;
    (0..c).all(|ch| {
        let first = img.data[ch];
        img.data.iter().skip(ch).step_by(c).any(|&v| v != first)
    })
}

/// Equally sized RGB images as one `[N, 3, H, W]` tensor with values `v / 255`, in `dtype` on
/// `device`.
pub fn batch_tensor(images: &[&Image], dtype: DType, device: Device) -> Result<Tensor> {
    let first = images
        .first()
        .ok_or_else(|| Error::bad("batch_tensor", "needs at least one image"))?;
    let (w, h) = (first.width, first.height);
    let plane = w * h;
    let mut data = Vec::with_capacity(images.len() * 3 * plane);
    for img in images {
        if (img.width, img.height, img.channels) != (w, h, 3) {
            return Err(Error::bad(
                "batch_tensor",
                format!(
                    "images must be RGB and of one size: {}×{}×{} after {w}×{h}×3",
                    img.width, img.height, img.channels
                ),
            ));
        }
        for ch in 0..3 {
            data.extend((0..plane).map(|i| f32::from(img.data[i * 3 + ch]) / 255.0));
        }
    }
    Tensor::from_vec(data, [images.len(), 3, h, w], device)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(width: usize, height: usize) -> Image {
        Image {
            width,
            height,
            channels: 3,
            data: (0..width * height * 3)
                .map(|i| (i * 7 % 256) as u8)
                .collect(),
        }
    }

    #[test]
    fn sin_sizes() {
        let c = prepare_content(&ramp(300, 200), 256, 224).unwrap();
        assert_eq!((c.width, c.height), (224, 224));
        let r = resize_shorter(&ramp(300, 200), 256);
        assert_eq!((r.width, r.height), (384, 256));
        let r = resize_shorter(&ramp(100, 333), 64);
        assert_eq!((r.width, r.height), (64, 213));
        let s = prepare_style(&ramp(90, 130), 56);
        assert_eq!((s.width, s.height), (56, 56));
        let keep = prepare_content(&ramp(30, 20), 0, 0).unwrap();
        assert_eq!(keep.data, ramp(30, 20).data);
        assert!(prepare_content(&ramp(30, 20), 0, 24).is_err());
    }

    #[test]
    fn center_crop_takes_the_middle() {
        let img = ramp(5, 4);
        let c = center_crop(&img, 3, 2);
        // Offset (1, 1): row 1, columns 1..4.
        assert_eq!(&c.data[..9], &img.data[(5 + 1) * 3..(5 + 4) * 3]);
        let t = batch_tensor(&[&c, &c], DType::F32, Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[2, 3, 2, 3]);
        let v: Vec<f32> = t.to_vec().unwrap();
        assert_eq!(v[1], f32::from(c.data[3]) / 255.0, "CHW order");
        assert!(channels_vary(&img));
        let flat = Image {
            data: vec![9; 5 * 4 * 3],
            ..img
        };
        assert!(!channels_vary(&flat));
    }
}
