//! The pix2pix objective (Isola et al. 2017, vanilla GAN with BCE on logits) plus an optional
//! perceptual term:
//! - discriminator: `loss_D = ½ (BCE(D(x, y), 1) + BCE(D(x, G(x).detach()), 0))`;
//! - generator: `loss_G = BCE(D(x, G(x)), 1) + λ_L1 · |G(x) − y|₁ + λ_perc · perc(G(x), y)`,
//!   every term a mean over its elements, `D` conditioned on the input by `forward_pair`.
//!
//! Invariants: the discriminator's loss never reaches the generator (the fake is detached); the
//! reported values are the unweighted terms (`G_L1` is the mean absolute error in [-1, 1] units), the
//! loss tensors the weighted sums; the perceptual network is frozen and must take the generator's
//! output channels (checked when it is loaded, with a message naming both).

use super::config::PerceptualSpec;
use crate::models::pretrained::infer_resnet_config;
use crate::models::{FeatureDistance, InputRange, PatchGan, PerceptualConfig, PerceptualLoss};
use crate::nn::state::{read_metadata, read_shapes};
use crate::nn::Mode;
use crate::{DType, Device, Error, Result, Tensor};

/// A frozen feature distance over [-1, 1] images (L1 between taps weighted by `taps`, one weight per
/// tap), from an engine checkpoint, torchvision safetensors or AdaIN's VGG, for images of
/// `channels` channels.
pub fn load_perceptual(
    spec: &PerceptualSpec,
    taps: &[f64],
    channels: usize,
    device: Device,
) -> Result<PerceptualLoss> {
    let path = spec.path();
    if !path.is_file() {
        return Err(Error::Msg(format!(
            "perceptual network {spec}: no such file"
        )));
    }
    let format = read_metadata(path)
        .map_err(|e| Error::Msg(format!("perceptual network {spec}: {e}")))?
        .get("format")
        .cloned()
        .unwrap_or_default();
    let config = PerceptualConfig {
        range: InputRange::MinusOneToOne,
        distance: FeatureDistance::L1,
        tap_weights: taps.to_vec(),
    };
    let loss = match spec {
        PerceptualSpec::Checkpoint(_) if format != crate::train::checkpoint::FORMAT => {
            let hint = match format.as_str() {
                "torchvision-state-dict" => {
                    format!(
                        "it holds torchvision weights: write torchvision:{}",
                        path.display()
                    )
                }
                super::checkpoint::FORMAT => {
                    "it is a pix2pix checkpoint (a generator), not a classifier".to_string()
                }
                "" => format!(
                    "it has no engine checkpoint metadata; for a torchvision state dict write \
                     torchvision:{}",
                    path.display()
                ),
                other => format!("its format is {other:?}"),
            };
            return Err(Error::Msg(format!(
                "--perceptual {}: not an `engine train` checkpoint of a ResNet classifier: {hint}",
                path.display()
            )));
        }
        PerceptualSpec::Checkpoint(_) => {
            crate::train::checkpoint::perceptual_loss(path, config, DType::F32, device)?
        }
        PerceptualSpec::Torchvision(_) => {
            if format == crate::train::checkpoint::FORMAT {
                return Err(Error::Msg(format!(
                    "--perceptual {spec}: this is an `engine train` checkpoint; pass it without the \
                     torchvision: prefix"
                )));
            }
            let resnet = infer_resnet_config(&read_shapes(path)?, path)?;
            PerceptualLoss::from_torchvision(path, resnet, config, DType::F32, device)?
        }
        PerceptualSpec::Vgg(_) => PerceptualLoss::from_vgg(path, config, DType::F32, device)
            .map_err(|e| Error::Msg(format!("--perceptual {spec}: {e}")))?,
    };
    let takes = loss.in_channels();
    if !loss.takes_channels(channels) {
        return Err(Error::Msg(format!(
            "perceptual network {spec} takes {takes}-channel images but the generator's outputs \
             have {channels} channel(s); use a network trained on {channels}-channel images or \
             set --output-nc {takes}"
        )));
    }
    Ok(loss)
}

/// The discriminator's loss and its two (unweighted) halves.
pub struct DiscriminatorLosses {
    pub loss: Tensor,
    /// `loss`'s value.
    pub value: f64,
    pub real: f64,
    pub fake: f64,
}

/// BCE with logits against a constant label, averaged over all patches.
fn gan_loss(logits: &Tensor, real: bool) -> Result<Tensor> {
    let target = if real {
        logits.ones_like()?
    } else {
        logits.zeros_like()?
    };
    logits.bce_with_logits(&target)
}

/// `½ (BCE(D(x, y), 1) + BCE(D(x, fake.detach()), 0))`, D in training mode.
pub fn discriminator_loss(
    d: &PatchGan,
    input: &Tensor,
    target: &Tensor,
    fake: &Tensor,
) -> Result<DiscriminatorLosses> {
    let fake_loss = gan_loss(&d.forward_pair(input, &fake.detach(), Mode::TRAIN)?, false)?;
    let real_loss = gan_loss(&d.forward_pair(input, target, Mode::TRAIN)?, true)?;
    let loss = real_loss.add(&fake_loss)?.scale(0.5)?;
    let v = Tensor::scalars(&[&loss, &real_loss, &fake_loss])?;
    Ok(DiscriminatorLosses {
        loss,
        value: v[0],
        real: v[1],
        fake: v[2],
    })
}

/// The generator's loss and its unweighted terms.
pub struct GeneratorLosses {
    pub loss: Tensor,
    /// `loss`'s value.
    pub value: f64,
    pub gan: f64,
    pub l1: f64,
    pub perceptual: Option<f64>,
}

/// `BCE(D(x, fake), 1) + λ_L1 · L1(fake, y) [+ λ_perc · perc(fake, y)]`, D in training mode.
pub fn generator_loss(
    d: &PatchGan,
    input: &Tensor,
    target: &Tensor,
    fake: &Tensor,
    lambda_l1: f64,
    perceptual: Option<(&PerceptualLoss, f64)>,
) -> Result<GeneratorLosses> {
    let gan = gan_loss(&d.forward_pair(input, fake, Mode::TRAIN)?, true)?;
    let l1 = fake.l1_loss(target)?;
    let mut loss = gan.add(&l1.scale(lambda_l1)?)?;
    let mut perc_term = None;
    if let Some((perc, weight)) = perceptual {
        let p = perc.loss(fake, target)?.to_dtype(loss.dtype())?;
        loss = loss.add(&p.scale(weight)?)?;
        perc_term = Some(p);
    }
    let mut parts = vec![&loss, &gan, &l1];
    parts.extend(perc_term.as_ref());
    let v = Tensor::scalars(&parts)?;
    Ok(GeneratorLosses {
        value: v[0],
        gan: v[1],
        l1: v[2],
        perceptual: v.get(3).copied(),
        loss,
    })
}
