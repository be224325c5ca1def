//! CIFAR-10 and CIFAR-100 in their binary form. CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin`
//! and `test_batch.bin`, records of 1 label byte + 3072 pixel bytes (32×32, R plane, G plane,
//! B plane), class names in `batches.meta.txt`. CIFAR-100: `train.bin` and `test.bin`, records of a
//! coarse label byte, a fine label byte and the 3072 pixel bytes; the fine label (100 classes) is used,
//! names from `fine_label_names.txt`. The folder may be the one holding the files or its parent (as
//! the archives unpack: `cifar-10-batches-bin/`, `cifar-100-binary/`). Loaded into memory, HWC.

use super::{Dataset, Image};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

const SIDE: usize = 32;
const PIXELS: usize = SIDE * SIDE * 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    Cifar10,
    Cifar100,
}

/// An in-memory CIFAR split: 32×32 RGB images.
#[derive(Clone, Debug)]
pub struct CifarDataset {
    pub kind: CifarKind,
    /// `[N, 32, 32, 3]` bytes.
    pub images: Vec<u8>,
    pub labels: Vec<usize>,
    pub classes: Vec<String>,
}

/// Finds the folder holding the CIFAR files and which CIFAR it is.
pub fn locate(dir: &Path) -> Result<(PathBuf, CifarKind)> {
    if !dir.is_dir() {
        return Err(Error::Msg(format!(
            "CIFAR folder {} does not exist",
            dir.display()
        )));
    }
    for d in [
        dir.to_path_buf(),
        dir.join("cifar-10-batches-bin"),
        dir.join("cifar-100-binary"),
    ] {
        if d.join("data_batch_1.bin").exists() || d.join("test_batch.bin").exists() {
            return Ok((d, CifarKind::Cifar10));
        }
        if d.join("train.bin").exists() || d.join("test.bin").exists() {
            return Ok((d, CifarKind::Cifar100));
        }
    }
    Err(Error::Msg(format!(
        "{}: no CIFAR binary files (CIFAR-10: data_batch_1.bin … data_batch_5.bin, test_batch.bin; CIFAR-100: train.bin, test.bin)",
        dir.display()
    )))
}

fn read_names(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    (!names.is_empty()).then_some(names)
}

/// The class names of the CIFAR in `dir` (from its meta file, else the known CIFAR-10 names or
/// numbers for CIFAR-100).
pub fn class_names(dir: &Path) -> Result<Vec<String>> {
    let (d, kind) = locate(dir)?;
    Ok(match kind {
        CifarKind::Cifar10 => read_names(&d.join("batches.meta.txt"))
            .unwrap_or_else(|| CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect()),
        CifarKind::Cifar100 => read_names(&d.join("fine_label_names.txt"))
            .unwrap_or_else(|| (0..100).map(|i| format!("class {i}")).collect()),
    })
}

/// Parses CIFAR records (`label_bytes` label bytes, the last one used, then CHW pixels) into HWC
/// images and labels.
pub fn parse_records(
    bytes: &[u8],
    label_bytes: usize,
    images: &mut Vec<u8>,
    labels: &mut Vec<usize>,
) -> std::result::Result<(), String> {
    let rec = label_bytes + PIXELS;
    if bytes.is_empty() || bytes.len() % rec != 0 {
        return Err(format!(
            "{} bytes is not a whole number of {rec}-byte records",
            bytes.len()
        ));
    }
    let plane = SIDE * SIDE;
    for r in bytes.chunks_exact(rec) {
        labels.push(r[label_bytes - 1] as usize);
        let px = &r[label_bytes..];
        for i in 0..plane {
            images.extend_from_slice(&[px[i], px[plane + i], px[2 * plane + i]]);
        }
    }
    Ok(())
}

/// Loads the training (`train` true) or test split of the CIFAR-10 or CIFAR-100 in `dir`.
pub fn load_cifar(dir: &Path, train: bool) -> Result<CifarDataset> {
    let (d, kind) = locate(dir)?;
    let classes = class_names(dir)?;
    let (files, label_bytes): (Vec<String>, usize) = match (kind, train) {
        (CifarKind::Cifar10, true) => ((1..=5).map(|i| format!("data_batch_{i}.bin")).collect(), 1),
        (CifarKind::Cifar10, false) => (vec!["test_batch.bin".into()], 1),
        (CifarKind::Cifar100, true) => (vec!["train.bin".into()], 2),
        (CifarKind::Cifar100, false) => (vec!["test.bin".into()], 2),
    };
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for f in &files {
        let path = d.join(f);
        if !path.exists() {
            return Err(Error::Msg(format!(
                "{}: missing {f} (a {} split needs {})",
                d.display(),
                if train { "training" } else { "test" },
                files.join(", ")
            )));
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        parse_records(&bytes, label_bytes, &mut images, &mut labels).map_err(|m| {
            Error::Msg(format!("{}: not a CIFAR binary batch: {m}", path.display()))
        })?;
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= classes.len()) {
        return Err(Error::Msg(format!(
            "{}: label {bad} out of range for {} classes",
            d.display(),
            classes.len()
        )));
    }
    Ok(CifarDataset {
        kind,
        images,
        labels,
        classes,
    })
}

/// Serialises images (HWC, 32×32×3 each) and labels as CIFAR records (for tests and tools). With
/// `coarse` given the records are CIFAR-100's (coarse label, fine label).
pub fn encode_records(images: &[u8], labels: &[usize], coarse: Option<&[usize]>) -> Vec<u8> {
    let plane = SIDE * SIDE;
    let mut out = Vec::new();
    for (n, &l) in labels.iter().enumerate() {
        if let Some(c) = coarse {
            out.push(c[n] as u8);
        }
        out.push(l as u8);
        let img = &images[n * PIXELS..(n + 1) * PIXELS];
        for ch in 0..3 {
            out.extend((0..plane).map(|i| img[i * 3 + ch]));
        }
    }
    out
}

impl Dataset for CifarDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn class_names(&self) -> &[String] {
        &self.classes
    }
    fn channels(&self) -> usize {
        3
    }
    fn label(&self, index: usize) -> usize {
        self.labels[index]
    }
    fn get(&self, index: usize) -> Result<Image> {
        Ok(Image {
            width: SIDE,
            height: SIDE,
            channels: 3,
            data: self.images[index * PIXELS..(index + 1) * PIXELS].to_vec(),
        })
    }
}
