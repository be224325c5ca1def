//! Models built from `nn` layers: the ResNet family with the Bag of Tricks variants, and the AdaIN
//! stylizer (VGG-19 encoder, decoder, style transfer).

pub mod resnet;
pub mod stylizer;

pub use resnet::{ResNet, ResNetConfig, Variant};
pub use stylizer::{coral, Decoder, Stylizer, VggEncoder};
