//! The perceptual loss over AdaIN's normalised VGG-19 (`PerceptualLoss::from_vgg`, pix2pix's
//! `--perceptual vgg:FILE`) with small random VGGs; its values and gradient against PyTorch with the
//! real weights are in tests/stylizer_real_weights.rs. Here:
//! - the loss is the weighted mean L1 distance of the encoder's relu1_1 … relu4_1 maps of the
//!   [0, 1]-mapped images (computed here on the host from `VggEncoder::features`);
//! - one-channel images count as grey RGB: loss and gradient equal those of the image repeated to
//!   three channels (the gradient summed over them);
//! - an f64 finite-difference check of the gradient w.r.t. the output image;
//! - the VGG is frozen; four tap weights are required; other channel counts are errors.
//!
//! pix2pix training with it: tests/pix2pix_cmd.rs.

use engine::models::{FeatureDistance, InputRange, PerceptualConfig, PerceptualLoss, VggEncoder};
use engine::nn::init::Init;
use engine::nn::{count_trainable, named_params};
use engine::testing::{check_gradients, randn_var};
use engine::{DType, Device, Tensor};

const TAPS: [f64; 4] = [1.0, 0.5, 0.25, 2.0];

fn config(taps: &[f64]) -> PerceptualConfig {
    PerceptualConfig {
        range: InputRange::MinusOneToOne,
        distance: FeatureDistance::L1,
        tap_weights: taps.to_vec(),
    }
}

fn vgg(width: usize, seed: u64) -> VggEncoder {
    VggEncoder::new(&mut Init::new(seed, DType::F64, Device::Cpu), width).unwrap()
}

/// Seeded images in [-1, 1] (tanh of normals).
fn image(dims: &[usize], seed: u64) -> Tensor {
    randn_var(dims, seed).detach().tanh().unwrap()
}

#[test]
fn loss_is_the_weighted_mean_distance_of_the_vgg_taps() {
    let (x, y) = (image(&[2, 3, 16, 16], 1), image(&[2, 3, 16, 16], 2));
    let loss = PerceptualLoss::with_vgg(vgg(2, 7), config(&TAPS)).unwrap();
    let got = loss.loss(&x, &y).unwrap().to_vec_f64().unwrap()[0];
    let reference = vgg(2, 7);
    let to01 = |t: &Tensor| t.scale(0.5).unwrap().add_scalar(0.5).unwrap();
    let fx = reference.features(&to01(&x)).unwrap();
    let fy = reference.features(&to01(&y)).unwrap();
    let mut want = 0.0;
    for ((a, b), w) in fx.iter().zip(&fy).zip(TAPS) {
        let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
        let mean = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).sum::<f64>() / a.len() as f64;
        want += w * mean;
    }
    assert!(want > 0.0);
    assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
    assert_eq!(loss.loss(&x, &x).unwrap().to_vec_f64().unwrap()[0], 0.0);
    assert_eq!(count_trainable(loss.network()), 0, "the VGG is frozen");
    assert_eq!(
        named_params(loss.network()).len(),
        2 * 10,
        "the 1×1 conv and nine 3×3 convs through relu4_1"
    );
}

#[test]
fn grey_images_count_as_rgb_and_the_gradient_checks_out() {
    let loss = PerceptualLoss::with_vgg(vgg(2, 3), config(&TAPS)).unwrap();
    let grey = image(&[1, 1, 16, 16], 4).var();
    let target = image(&[1, 1, 16, 16], 5);
    let rgb = Tensor::concat(&[&grey, &grey, &grey], 1)
        .unwrap()
        .detach()
        .var();
    let target_rgb = Tensor::concat(&[&target, &target, &target], 1).unwrap();
    let l1 = loss.loss(&grey, &target).unwrap();
    let l3 = loss.loss(&rgb, &target_rgb).unwrap();
    assert_eq!(l1.to_vec_f64().unwrap(), l3.to_vec_f64().unwrap());
    let g1 = l1
        .backward()
        .unwrap()
        .get(&grey)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let g3 = l3
        .backward()
        .unwrap()
        .get(&rgb)
        .unwrap()
        .to_vec_f64()
        .unwrap();
    let plane = g1.len();
    for (i, g) in g1.iter().enumerate() {
        let summed = g3[i] + g3[plane + i] + g3[2 * plane + i];
        assert!(
            (g - summed).abs() <= 1e-12 * (1.0 + summed.abs()),
            "{i}: {g} vs {summed}"
        );
    }
    // Central differences of the L1 distance: a probe that crosses a kink is off by the step only.
    check_gradients(
        "vgg perceptual loss",
        &[image(&[1, 3, 16, 16], 6).var()],
        |t| loss.loss(&t[0], &target_rgb),
        12,
        1e-6,
        1e-4,
    )
    .unwrap();
}

#[test]
fn tap_weights_and_channels_are_checked() {
    let err = |r: engine::Result<PerceptualLoss>| r.err().expect("an error").to_string();
    let e = err(PerceptualLoss::with_vgg(vgg(2, 0), config(&[1.0; 5])));
    assert!(e.contains("5 tap weights") && e.contains("4 taps"), "{e}");
    let e = err(PerceptualLoss::with_vgg(vgg(2, 0), config(&[0.0; 4])));
    assert!(e.contains("not all zero"), "{e}");
    let loss = PerceptualLoss::with_vgg(vgg(2, 0), config(&TAPS)).unwrap();
    let two = image(&[1, 2, 16, 16], 1);
    let e = loss.loss(&two, &two).err().unwrap().to_string();
    assert!(e.contains("takes 3 input channels"), "{e}");
}
