//! Models built from `nn` layers: the ResNet family with the Bag of Tricks variants (`resnet`),
//! loading of torchvision-format ResNet weights (`pretrained`), and the AdaIN stylizer (VGG-19
//! encoder, decoder, style transfer; `stylizer`).

pub mod pretrained;
pub mod resnet;
pub mod stylizer;

pub use pretrained::{load_pretrained_resnet, PretrainedResNet};
pub use resnet::{ResNet, ResNetConfig, Variant};
pub use stylizer::{coral, Decoder, Stylizer, VggEncoder};
