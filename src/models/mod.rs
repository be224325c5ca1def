//! Models built from `nn` layers: the ResNet family with the Bag of Tricks variants.

pub mod resnet;

pub use resnet::{ResNet, ResNetConfig, Variant};
