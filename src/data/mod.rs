//! Datasets and loaders: image-classification data as `u8` pixels plus labels, read from the formats
//! the engine supports (IDX as shipped by Debian's `dataset-fashion-mnist`; more formats join here).

pub mod idx;
