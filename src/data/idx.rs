//! The IDX format (MNIST, Fashion-MNIST), plain or gzip-compressed: a big-endian header (two zero
//! bytes, a type code, the number of dims, each dim as u32) followed by the data. Only unsigned-byte
//! data (type 0x08) is supported, which is what every MNIST-family file uses.

use crate::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// An IDX array of bytes: its dims and data in row-major order.
#[derive(Debug, Clone)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file; `.gz` files are decompressed.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    let raw = std::fs::read(path).map_err(io)?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(io)?;
        out
    } else {
        raw
    };
    parse_idx(&bytes)
        .map_err(|msg| Error::Msg(format!("{}: not a valid IDX file: {msg}", path.display())))
}

/// Parses IDX bytes (already decompressed).
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<IdxArray, String> {
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err("missing the 0x0000 magic prefix".into());
    }
    if bytes[2] != 0x08 {
        return Err(format!(
            "element type 0x{:02x} is not unsigned byte (0x08)",
            bytes[2]
        ));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err("truncated header".into());
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize)
        .collect();
    let n: usize = dims.iter().product();
    if bytes.len() - header != n {
        return Err(format!(
            "dims {dims:?} need {n} bytes of data, file has {}",
            bytes.len() - header
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// Serialises an IDX byte array (for tests and tools).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend((d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

/// Images `[N, H, W]` as bytes and their labels.
#[derive(Debug, Clone)]
pub struct LabelledImages {
    pub images: Vec<u8>,
    pub labels: Vec<usize>,
    pub height: usize,
    pub width: usize,
    pub classes: Vec<String>,
}

impl LabelledImages {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST's class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The file `<split>-<stem>` of an MNIST-style folder, compressed (`.gz`) or not; an error that
/// says where Fashion-MNIST comes from when neither exists.
pub fn find_split_file(dir: &Path, split: &str, stem: &str) -> Result<PathBuf> {
    for name in [format!("{split}-{stem}.gz"), format!("{split}-{stem}")] {
        let p = dir.join(&name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(Error::Msg(format!(
        "{}: no {split}-{stem}[.gz]; for Fashion-MNIST install Debian's package (`apt-get install dataset-fashion-mnist`, files land in {FASHION_MNIST_DIR}) or pass the folder holding the IDX files",
        dir.display()
    )))
}

/// Loads an MNIST-style split (`train` or `t10k`) from `dir`, accepting `.gz` or plain files.
pub fn load_mnist_style(dir: &Path, split: &str, classes: &[&str]) -> Result<LabelledImages> {
    let find = |stem: &str| find_split_file(dir, split, stem);
    let images = read_idx(&find("images-idx3-ubyte")?)?;
    let labels = read_idx(&find("labels-idx1-ubyte")?)?;
    if images.dims.len() != 3 || labels.dims.len() != 1 || images.dims[0] != labels.dims[0] {
        return Err(Error::Msg(format!(
            "{}: image dims {:?} do not match label dims {:?}",
            dir.display(),
            images.dims,
            labels.dims
        )));
    }
    let labels: Vec<usize> = labels.data.iter().map(|&l| l as usize).collect();
    if let Some(&bad) = labels.iter().find(|&&l| l >= classes.len()) {
        return Err(Error::Msg(format!(
            "{}: label {bad} out of range for {} classes",
            dir.display(),
            classes.len()
        )));
    }
    Ok(LabelledImages {
        height: images.dims[1],
        width: images.dims[2],
        images: images.data,
        labels,
        classes: classes.iter().map(|s| s.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_files() {
        let data: Vec<u8> = (0..2 * 3 * 4).map(|i| (i * 7) as u8).collect();
        let bytes = encode_idx(&[2, 3, 4], &data);
        let a = parse_idx(&bytes).unwrap();
        assert_eq!(a.dims, vec![2, 3, 4]);
        assert_eq!(a.data, data);
        assert!(parse_idx(&bytes[..bytes.len() - 1])
            .unwrap_err()
            .contains("need 24 bytes"));
        let mut wrong_type = bytes.clone();
        wrong_type[2] = 0x0d;
        assert!(parse_idx(&wrong_type)
            .unwrap_err()
            .contains("not unsigned byte"));
    }

    #[test]
    fn reads_gzip_and_reports_missing_files() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("engine-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let imgs = encode_idx(&[3, 2, 2], &[1; 12]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&imgs).unwrap();
        std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(
            dir.join("train-labels-idx1-ubyte"),
            encode_idx(&[3], &[0, 2, 1]),
        )
        .unwrap();
        let d = load_mnist_style(&dir, "train", &["a", "b", "c"]).unwrap();
        assert_eq!((d.len(), d.height, d.width), (3, 2, 2));
        assert_eq!(d.labels, vec![0, 2, 1]);
        let err = load_mnist_style(&dir, "t10k", &["a", "b", "c"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t10k-images-idx3-ubyte") && err.contains("apt-get install"),
            "{err}"
        );
        assert!(load_mnist_style(&dir, "train", &["a", "b"])
            .unwrap_err()
            .to_string()
            .contains("label 2 out of range"));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Real data from Debian's package, when installed (scripts/setup.sh installs it).
    #[test]
    fn reads_debian_fashion_mnist_when_installed() {
        let dir = Path::new(FASHION_MNIST_DIR);
        if !dir.exists() {
            eprintln!("skipped: {FASHION_MNIST_DIR} not installed");
            return;
        }
        let test = load_mnist_style(dir, "t10k", &FASHION_MNIST_CLASSES).unwrap();
        assert_eq!((test.len(), test.height, test.width), (10_000, 28, 28));
        let mut counts = [0usize; 10];
        for &l in &test.labels {
            counts[l] += 1;
        }
        assert_eq!(
            counts, [1000; 10],
            "Fashion-MNIST's test split has 1000 images per class"
        );
    }
}
