//! Models built from `nn` layers: the ResNet family with the Bag of Tricks variants (`resnet`) and
//! loading of torchvision-format ResNet weights (`pretrained`).

pub mod pretrained;
pub mod resnet;

pub use pretrained::{load_pretrained_resnet, PretrainedResNet};
pub use resnet::{ResNet, ResNetConfig, Variant};
