//! Models built from `nn` layers: the ResNet family with the Bag of Tricks variants (`resnet`),
//! loading of torchvision-format ResNet weights (`pretrained`), the AdaIN stylizer (VGG-19 encoder,
//! decoder, style transfer; `stylizer`), the pix2pix networks (U-Net generator `unet`, PatchGAN
//! discriminator `patchgan`) and a perceptual loss over a frozen ResNet (`perceptual`).

pub mod patchgan;
pub mod perceptual;
pub mod pretrained;
pub mod resnet;
pub mod stylizer;
pub mod unet;

pub use patchgan::{PatchGan, PatchGanConfig};
pub use perceptual::{
    FeatureDistance, FeatureNet, InputRange, PerceptualConfig, PerceptualLoss, RESNET_TAPS,
    VGG_TAPS,
};
pub use pretrained::{load_pretrained_resnet, PretrainedResNet};
pub use resnet::{ResNet, ResNetConfig, Variant};
pub use stylizer::{coral, Decoder, Stylizer, VggEncoder};
pub use unet::{UnetConfig, UnetGenerator};
