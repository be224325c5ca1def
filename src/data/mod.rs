//! Datasets and loaders. A `Dataset` hands out decoded `u8` images (HWC) and labels; `augment`
//! turns one into a normalised f32 CHW sample (training augmentation or evaluation preprocessing);
//! `loader` batches samples on worker threads with prefetch, seeded so that a batch depends only on
//! (seed, epoch, batch index), never on thread timing — which is what makes `--resume` exact.
//!
//! Formats: IDX files (`idx`, Fashion-MNIST), CIFAR binary batches (`cifar`), ImageNet-style folder
//! trees (`folder`); `ConcatDataset` joins several datasets with the same classes.

pub mod ahead;
pub mod augment;
pub mod cifar;
pub mod concat;
pub mod folder;
pub mod idx;
pub mod loader;
pub mod texture_swap;

pub use augment::{AugmentConfig, Preprocess};
pub use cifar::CifarDataset;
pub use concat::ConcatDataset;
pub use folder::ImageFolder;
pub use loader::{Batch, Loader, LoaderConfig};
pub use texture_swap::{TextureSwap, TextureSwapped};

use crate::Result;

/// A decoded image, `u8` in height × width × channels order.
#[derive(Clone, Debug)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

pub trait Dataset: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn class_names(&self) -> &[String];
    fn channels(&self) -> usize;
    /// Label of sample `index` (cheap: no decoding).
    fn label(&self, index: usize) -> usize;
    /// Decodes sample `index`. An error (a corrupt file) makes the loader skip and report it.
    fn get(&self, index: usize) -> Result<Image>;
    /// A name for sample `index` in logs (its path, or its index).
    fn describe(&self, index: usize) -> String {
        format!("#{index}")
    }
}

/// A shared dataset is a dataset (so `Subset` and `ConcatDataset` can hold `Arc<dyn Dataset>`).
impl<D: Dataset + ?Sized> Dataset for std::sync::Arc<D> {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn class_names(&self) -> &[String] {
        (**self).class_names()
    }
    fn channels(&self) -> usize {
        (**self).channels()
    }
    fn label(&self, index: usize) -> usize {
        (**self).label(index)
    }
    fn get(&self, index: usize) -> Result<Image> {
        (**self).get(index)
    }
    fn describe(&self, index: usize) -> String {
        (**self).describe(index)
    }
}

/// An in-memory array of equally sized grayscale images (IDX files).
pub struct ArrayDataset {
    pub data: idx::LabelledImages,
}

impl Dataset for ArrayDataset {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn class_names(&self) -> &[String] {
        &self.data.classes
    }
    fn channels(&self) -> usize {
        1
    }
    fn label(&self, index: usize) -> usize {
        self.data.labels[index]
    }
    fn get(&self, index: usize) -> Result<Image> {
        let (h, w) = (self.data.height, self.data.width);
        Ok(Image {
            width: w,
            height: h,
            channels: 1,
            data: self.data.images[index * h * w..(index + 1) * h * w].to_vec(),
        })
    }
}

/// A subset of another dataset by indices (for short runs and held-out splits).
pub struct Subset<D: Dataset> {
    pub inner: D,
    pub indices: Vec<usize>,
}

impl<D: Dataset> Dataset for Subset<D> {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn class_names(&self) -> &[String] {
        self.inner.class_names()
    }
    fn channels(&self) -> usize {
        self.inner.channels()
    }
    fn label(&self, index: usize) -> usize {
        self.inner.label(self.indices[index])
    }
    fn get(&self, index: usize) -> Result<Image> {
        self.inner.get(self.indices[index])
    }
    fn describe(&self, index: usize) -> String {
        self.inner.describe(self.indices[index])
    }
}
