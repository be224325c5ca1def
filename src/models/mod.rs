//! Models built from `nn` layers: the ResNet family with the Bag of Tricks variants; the pix2pix
//! networks (U-Net generator, PatchGAN discriminator) and a perceptual loss over a frozen ResNet.

pub mod patchgan;
pub mod perceptual;
pub mod resnet;
pub mod unet;

pub use patchgan::{PatchGan, PatchGanConfig};
pub use perceptual::{FeatureDistance, InputRange, PerceptualConfig, PerceptualLoss};
pub use resnet::{ResNet, ResNetConfig, Variant};
pub use unet::{UnetConfig, UnetGenerator};
