//! The AdaIN style-transfer network (Huang & Belongie 2017) as Stylized-ImageNet uses it: the
//! "normalised" VGG-19 encoder truncated after relu4_1, the mirrored decoder, adaptive instance
//! normalisation between them, several styles mixed by weight, the content/style trade-off α and
//! colour preservation by CORAL, all as in naoto0804/pytorch-AdaIN (`net.py`, `function.py`,
//! `test.py`), which `tools/fixtures/gen_stylizer.py` re-implements as the reference.
//!
//! Invariants:
//! - Parameter names are the state-dict keys of the reference `nn.Sequential`s: every entry
//!   (reflection pad, ReLU, max pool, upsample) occupies an index as it does there, so
//!   `vgg_normalised.pth` and `decoder.pth`, converted by `tools/convert_adain_weights.py`, load one
//!   to one. The encoder keeps entries 0–30 (through relu4_1); the later keys of the full VGG file
//!   (`32.weight` … `51.bias`) are ignored when loading. Missing or mis-shaped keys are errors that
//!   name the key and both shapes.
//! - Encoder inputs are RGB in [0, 1] (the leading 1×1 conv does the Caffe preprocessing). Its
//!   parameters are `ParamKind::Buffer`: never trained and no weight gradients computed, but
//!   gradients flow through it to its input (for the decoder's losses and input gradients).
//! - The decoder has no normalisation; its parameters are `Weight`/`Bias`, initialised as PyTorch's
//!   `nn.Conv2d` default. Every 3×3 conv of both nets is preceded by a reflection pad of 1.
//! - AdaIN statistics are per `(n, c)` over `H×W` with σ = sqrt(unbiased variance + 1e-5)
//!   (`Tensor::adain`, the reference's `calc_mean_std`); a style batch is `N` (one style per content
//!   image) or `1` (broadcast).
//! - `width` scales every channel count (64 for the real networks, small in tests): the encoder has
//!   w, 2w, 4w, 8w channels at relu1_1 … relu4_1 and the decoder mirrors it.
//! - Colour preservation (`coral`) is preprocessing of the style images on the host in f64; it
//!   records no gradient.

use crate::nn::init::Init;
use crate::nn::state::{load_into, load_tensors};
use crate::nn::{
    Conv2d, MaxPool2d, Mode, Module, Param, ParamKind, ReflectionPad2d, Relu, Sequential,
    UpsampleNearest2d,
};
use crate::{Conv2dParams, DType, Device, Error, Pool2dParams, Result, Tensor};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;

/// The ε of AdaIN's statistics (`calc_mean_std(feat, eps=1e-5)` in the reference).
pub const ADAIN_EPS: f64 = 1e-5;

/// Channel width of the first stage of the real VGG-19 (and of the decoder's last stage).
pub const VGG_WIDTH: usize = 64;

/// Names of the encoder's feature taps, in the order `VggEncoder::features` returns them.
pub const TAP_NAMES: [&str; 4] = ["relu1_1", "relu2_1", "relu3_1", "relu4_1"];

/// The encoder entries that end at each tap (the reference `Net`'s `enc_1` … `enc_4` slices).
const TAP_RANGES: [RangeInclusive<usize>; 4] = [0..=3, 4..=10, 11..=17, 18..=30];

/// How the reference Sequentials are written, in their order. A padded 3×3 conv is two entries
/// (`ReflectionPad2d`, then `Conv2d`); everything else is one.
#[derive(Clone, Copy)]
enum Step {
    /// 1×1 conv `cin → cout` (the encoder's preprocessing).
    Point(usize, usize),
    /// Reflection pad 1, then 3×3 conv `cin → cout`.
    Conv(usize, usize),
    Relu,
    /// 2×2 max pool, stride 2, ceil mode.
    Pool,
    /// ×2 nearest upsampling.
    Up,
}

fn encoder_steps(w: usize) -> Vec<Step> {
    use Step::*;
    vec![
        Point(3, 3),
        Conv(3, w),
        Relu, // 3: relu1_1
        Conv(w, w),
        Relu,
        Pool,
        Conv(w, 2 * w),
        Relu, // 10: relu2_1
        Conv(2 * w, 2 * w),
        Relu,
        Pool,
        Conv(2 * w, 4 * w),
        Relu, // 17: relu3_1
        Conv(4 * w, 4 * w),
        Relu,
        Conv(4 * w, 4 * w),
        Relu,
        Conv(4 * w, 4 * w),
        Relu,
        Pool,
        Conv(4 * w, 8 * w),
        Relu, // 30: relu4_1
    ]
}

fn decoder_steps(w: usize) -> Vec<Step> {
    use Step::*;
    vec![
        Conv(8 * w, 4 * w),
        Relu,
        Up,
        Conv(4 * w, 4 * w),
        Relu,
        Conv(4 * w, 4 * w),
        Relu,
        Conv(4 * w, 4 * w),
        Relu,
        Conv(4 * w, 2 * w),
        Relu,
        Up,
        Conv(2 * w, 2 * w),
        Relu,
        Conv(2 * w, w),
        Relu,
        Up,
        Conv(w, w),
        Relu,
        Conv(w, 3),
    ]
}

/// A conv with bias and PyTorch's default initialisation; `frozen` makes its parameters buffers.
fn conv(init: &mut Init, cin: usize, cout: usize, k: usize, frozen: bool) -> Result<Conv2d> {
    let mut c = Conv2d::new_default_init(init, cin, cout, k, Conv2dParams::new(1, 0), true)?;
    if frozen {
        c.weight = Param::new(c.weight.tensor, ParamKind::Buffer);
        c.bias = c.bias.map(|b| Param::new(b.tensor, ParamKind::Buffer));
    }
    Ok(c)
}

fn build(init: &mut Init, steps: &[Step], frozen: bool) -> Result<Sequential> {
    let mut net = Sequential::new();
    for &s in steps {
        net = match s {
            Step::Point(cin, cout) => net.push(conv(init, cin, cout, 1, frozen)?),
            Step::Conv(cin, cout) => net
                .push(ReflectionPad2d((1, 1, 1, 1)))
                .push(conv(init, cin, cout, 3, frozen)?),
            Step::Relu => net.push(Relu),
            Step::Pool => net.push(MaxPool2d(Pool2dParams::new(2, 2, 0).ceil())),
            Step::Up => net.push(UpsampleNearest2d(2)),
        };
    }
    Ok(net)
}

/// Reads a converted weight file onto the host, saying how to make one when it is missing or is
/// still a PyTorch pickle. `stem` names the reference file (`vgg_normalised`, `decoder`).
fn read_weights(path: &Path, stem: &str) -> Result<BTreeMap<String, Tensor>> {
    let advice = format!(
        "convert the reference weights with `python3 tools/convert_adain_weights.py {stem}.pth {}`",
        path.display()
    );
    let err = |msg: String| Error::Checkpoint {
        path: path.display().to_string(),
        msg,
    };
    if !path.is_file() {
        return Err(err(format!("no such file; {advice}")));
    }
    match load_tensors(path, Device::Cpu) {
        Ok((tensors, _)) => Ok(tensors),
        Err(Error::Checkpoint { msg, .. }) if msg.starts_with("not a safetensors file") => {
            Err(err(format!("{msg} (a PyTorch .pth? {advice})")))
        }
        Err(e) => Err(e),
    }
}

/// Runs `layers[range]` of a Sequential.
fn run(net: &Sequential, range: RangeInclusive<usize>, x: &Tensor) -> Result<Tensor> {
    let mut h = x.clone();
    for l in &net.layers[range] {
        h = l.forward(&h, Mode::EVAL)?;
    }
    Ok(h)
}

/// Checks an image batch is `[N, 3, H, W]`; returns `N`.
fn rgb_batch(op: &'static str, what: &str, x: &Tensor) -> Result<usize> {
    let (n, c, _, _) = x.shape().dims4(op)?;
    if c != 3 {
        return Err(Error::bad(
            op,
            format!(
                "{what} must be RGB images [N, 3, H, W], got shape {:?}",
                x.shape()
            ),
        ));
    }
    Ok(n)
}

/// One of the two reference Sequentials: its layout and how its weight file is read.
struct NetSpec {
    /// For errors.
    name: &'static str,
    steps: fn(usize) -> Vec<Step>,
    /// Parameters are buffers (never trained).
    frozen: bool,
    /// The reference weight file's stem, for the converter advice.
    stem: &'static str,
    /// The tensor of a weight file, and its dim, whose extent is the width.
    width_from: (&'static str, usize),
    /// The file must hold nothing else (not so the full VGG file, which goes on past relu4_1).
    strict: bool,
}

const ENCODER: NetSpec = NetSpec {
    name: "VggEncoder",
    steps: encoder_steps,
    frozen: true,
    stem: "vgg_normalised",
    width_from: ("2.weight", 0),
    strict: false,
};

const DECODER: NetSpec = NetSpec {
    name: "Decoder",
    steps: decoder_steps,
    frozen: false,
    stem: "decoder",
    width_from: ("28.weight", 1),
    strict: true,
};

struct Net {
    seq: Sequential,
    width: usize,
}

impl Net {
    fn new(spec: &NetSpec, init: &mut Init, width: usize) -> Result<Net> {
        if width == 0 {
            return Err(Error::bad(
                spec.name,
                "width must be at least 1 (64 for the real networks)",
            ));
        }
        Ok(Net {
            seq: build(init, &(spec.steps)(width), spec.frozen)?,
            width,
        })
    }

    fn load(spec: &NetSpec, path: &Path, dtype: DType, device: Device) -> Result<Net> {
        let tensors = read_weights(path, spec.stem)?;
        let (key, dim) = spec.width_from;
        let width = tensors
            .get(key)
            .and_then(|t| t.dims().get(dim).copied())
            .unwrap_or(VGG_WIDTH);
        let net = Net::new(spec, &mut Init::new(0, dtype, device), width)?;
        load_into(path, tensors, &net.seq, spec.strict)?;
        Ok(net)
    }
}

/// The normalised VGG-19 through relu4_1 (frozen), named as the reference `net.vgg`.
pub struct VggEncoder {
    net: Net,
}

impl VggEncoder {
    /// Random (PyTorch-default) weights; the real ones come from `load`.
    pub fn new(init: &mut Init, width: usize) -> Result<VggEncoder> {
        Ok(VggEncoder {
            net: Net::new(&ENCODER, init, width)?,
        })
    }

    /// Loads converted `vgg_normalised` weights (safetensors, any float dtype) as `dtype` on
    /// `device`. The width comes from the file (`2.weight`); keys past relu4_1 are ignored.
    pub fn load(path: &Path, dtype: DType, device: Device) -> Result<VggEncoder> {
        Ok(VggEncoder {
            net: Net::load(&ENCODER, path, dtype, device)?,
        })
    }

    pub fn width(&self) -> usize {
        self.net.width
    }

    /// relu1_1, relu2_1, relu3_1 and relu4_1 of RGB images `[N, 3, H, W]` in [0, 1].
    pub fn features(&self, x: &Tensor) -> Result<[Tensor; 4]> {
        rgb_batch(ENCODER.name, "the input", x)?;
        let seq = &self.net.seq;
        let r1 = run(seq, TAP_RANGES[0].clone(), x)?;
        let r2 = run(seq, TAP_RANGES[1].clone(), &r1)?;
        let r3 = run(seq, TAP_RANGES[2].clone(), &r2)?;
        let r4 = run(seq, TAP_RANGES[3].clone(), &r3)?;
        Ok([r1, r2, r3, r4])
    }

    /// relu4_1 of RGB images `[N, 3, H, W]` in [0, 1]: `[N, 8·width, ⌈H/8⌉, ⌈W/8⌉]`.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        rgb_batch(ENCODER.name, "the input", x)?;
        run(&self.net.seq, 0..=*TAP_RANGES[3].end(), x)
    }
}

impl Module for VggEncoder {
    /// `encode`.
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        self.encode(x)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        self.net.seq.visit(prefix, f);
    }
}

/// The decoder relu4_1 features → image, named as the reference `net.decoder`.
pub struct Decoder {
    net: Net,
}

impl Decoder {
    /// PyTorch's default initialisation (as the reference trains it from).
    pub fn new(init: &mut Init, width: usize) -> Result<Decoder> {
        Ok(Decoder {
            net: Net::new(&DECODER, init, width)?,
        })
    }

    /// Loads converted `decoder` weights (safetensors) as `dtype` on `device`; the width comes
    /// from the file (`28.weight`), and every key must be there and nothing else.
    pub fn load(path: &Path, dtype: DType, device: Device) -> Result<Decoder> {
        Ok(Decoder {
            net: Net::load(&DECODER, path, dtype, device)?,
        })
    }

    pub fn width(&self) -> usize {
        self.net.width
    }

    /// Features `[N, 8·width, h, w]` → images `[N, 3, 8h, 8w]` (not clamped).
    pub fn decode(&self, x: &Tensor) -> Result<Tensor> {
        self.net.seq.forward(x, Mode::EVAL)
    }
}

impl Module for Decoder {
    fn forward(&self, x: &Tensor, _mode: Mode) -> Result<Tensor> {
        self.decode(x)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param)) {
        self.net.seq.visit(prefix, f);
    }
}

/// `α·t + (1 − α)·content_feat` (α = 1 returns `t` itself).
fn blend(t: Tensor, content_feat: &Tensor, alpha: f64) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&alpha) {
        return Err(Error::bad(
            "stylize",
            format!("alpha must be in [0, 1], got {alpha}"),
        ));
    }
    if alpha == 1.0 {
        return Ok(t);
    }
    t.scale(alpha)?.add(&content_feat.scale(1.0 - alpha)?)
}

/// The AdaIN style-transfer network.
pub struct Stylizer {
    pub encoder: VggEncoder,
    pub decoder: Decoder,
}

impl Stylizer {
    /// Both nets with random weights (an untrained decoder, as training starts).
    pub fn new(init: &mut Init, width: usize) -> Result<Stylizer> {
        Ok(Stylizer {
            encoder: VggEncoder::new(init, width)?,
            decoder: Decoder::new(init, width)?,
        })
    }

    /// Loads the converted reference weights (`vgg_normalised.safetensors`,
    /// `decoder.safetensors`; see `tools/convert_adain_weights.py`).
    pub fn load(
        vgg_path: impl AsRef<Path>,
        decoder_path: impl AsRef<Path>,
        dtype: DType,
        device: Device,
    ) -> Result<Stylizer> {
        let (vgg_path, decoder_path) = (vgg_path.as_ref(), decoder_path.as_ref());
        let encoder = VggEncoder::load(vgg_path, dtype, device)?;
        let decoder = Decoder::load(decoder_path, dtype, device)?;
        if encoder.width() != decoder.width() {
            return Err(Error::Checkpoint {
                path: decoder_path.display().to_string(),
                msg: format!(
                    "the decoder takes {} channels but the encoder {} gives {}",
                    8 * decoder.width(),
                    vgg_path.display(),
                    8 * encoder.width()
                ),
            });
        }
        Ok(Stylizer { encoder, decoder })
    }

    /// Renders `content` `[N, 3, H, W]` (RGB in [0, 1]) in the mixed style of `styles`: pairs of a
    /// style batch (`[N, 3, Hs, Ws]`, one per content image, or `[1, 3, Hs, Ws]` for all) and a
    /// weight ≥ 0 (normalised to sum 1). The decoder sees `α·Σ wₖ·AdaIN(c, sₖ) + (1 − α)·c` on
    /// relu4_1 features, α in [0, 1]. With `preserve_color` each style image first gets the colour
    /// mean and covariance of its content image (`coral`). Returns `[N, 3, 8⌈H/8⌉, 8⌈W/8⌉]`,
    /// not clamped. Differentiable in `content` (and in the styles unless `preserve_color`); run
    /// it under `no_grad` for inference.
    pub fn stylize(
        &self,
        content: &Tensor,
        styles: &[(Tensor, f64)],
        alpha: f64,
        preserve_color: bool,
    ) -> Result<Tensor> {
        const OP: &str = "stylize";
        let n = rgb_batch(OP, "the content", content)?;
        if styles.is_empty() {
            return Err(Error::bad(OP, "needs at least one style"));
        }
        let mut total = 0.0;
        for (i, (s, w)) in styles.iter().enumerate() {
            let ns = rgb_batch(OP, "each style", s)?;
            if ns != n && ns != 1 {
                return Err(Error::bad(
                    OP,
                    format!(
                        "style {i} has batch {ns}; it must be 1 or the content's batch {n} \
                         (shapes {:?} and {:?})",
                        s.shape(),
                        content.shape()
                    ),
                ));
            }
            if !(w.is_finite() && *w >= 0.0) {
                return Err(Error::bad(
                    OP,
                    format!("style {i} has weight {w}; weights must be finite and ≥ 0"),
                ));
            }
            total += w;
        }
        if total <= 0.0 {
            return Err(Error::bad(OP, "the style weights sum to 0"));
        }
        let content_feat = self.encoder.encode(content)?;
        let mut target: Option<Tensor> = None;
        for (s, w) in styles {
            let s = if preserve_color {
                coral(s, content)?
            } else {
                s.clone()
            };
            let mut t = content_feat.adain(&self.encoder.encode(&s)?, ADAIN_EPS)?;
            if *w != total {
                t = t.scale(w / total)?;
            }
            target = Some(match target {
                Some(acc) => acc.add(&t)?,
                None => t,
            });
        }
        let t = blend(target.expect("at least one style"), &content_feat, alpha)?;
        self.decoder.decode(&t)
    }

    /// The reference training losses (`Net.forward`): with `t = α·AdaIN(f(c), f(s)) + (1 − α)·f(c)`
    /// and `g = decoder(t)`, the content loss `MSE(f(g), t)` (t as a constant target) and the style
    /// loss `Σ_taps MSE(μ(φ(g)), μ(φ(s))) + MSE(σ(φ(g)), σ(φ(s)))` over relu1_1 … relu4_1. `style`
    /// is `[N or 1, 3, Hs, Ws]`. The reference trains on `content + 10·style`.
    pub fn losses(&self, content: &Tensor, style: &Tensor, alpha: f64) -> Result<(Tensor, Tensor)> {
        let style_feats = self.encoder.features(style)?;
        let content_feat = self.encoder.encode(content)?;
        let t = content_feat.adain(&style_feats[3], ADAIN_EPS)?;
        let t = blend(t, &content_feat, alpha)?;
        let g_feats = self.encoder.features(&self.decoder.decode(&t)?)?;
        let loss_c = g_feats[3].mse_loss(&t.detach())?;
        let mut loss_s: Option<Tensor> = None;
        for (g, s) in g_feats.iter().zip(&style_feats) {
            let (gm, gs) = (g.channel_mean()?, g.channel_std(ADAIN_EPS)?);
            let sm = s.channel_mean()?.broadcast_to(gm.shape())?;
            let ss = s.channel_std(ADAIN_EPS)?.broadcast_to(gs.shape())?;
            let l = gm.mse_loss(&sm)?.add(&gs.mse_loss(&ss)?)?;
            loss_s = Some(match loss_s {
                Some(acc) => acc.add(&l)?,
                None => l,
            });
        }
        Ok((loss_c, loss_s.expect("four taps")))
    }
}

/// Mean, unbiased std and standardised values of each of the 3 channels of one image (`3 × m`
/// values), and `Z·Zᵀ + I` of the standardised values `Z` (the reference's "cov_eye").
struct ColourStats {
    mean: [f64; 3],
    std: [f64; 3],
    z: Vec<f64>,
    cov_eye: [[f64; 3]; 3],
}

fn colour_stats(x: &[f64], m: usize, which: &str) -> Result<ColourStats> {
    let mut mean = [0.0; 3];
    let mut std = [0.0; 3];
    let mut z = vec![0.0; 3 * m];
    for c in 0..3 {
        let p = &x[c * m..(c + 1) * m];
        let mu = p.iter().sum::<f64>() / m as f64;
        let var = p.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / (m as f64 - 1.0);
        let sd = var.sqrt();
        if !(sd > 0.0 && sd.is_finite()) {
            return Err(Error::bad(
                "coral",
                format!(
                    "channel {c} of the {which} image has std {sd}; colour transfer needs every \
                     channel to vary"
                ),
            ));
        }
        for (zi, v) in z[c * m..(c + 1) * m].iter_mut().zip(p) {
            *zi = (v - mu) / sd;
        }
        mean[c] = mu;
        std[c] = sd;
    }
    let mut cov_eye = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in i..3 {
            let (a, b) = (&z[i * m..(i + 1) * m], &z[j * m..(j + 1) * m]);
            let dot: f64 = a.iter().zip(b).map(|(u, v)| u * v).sum();
            cov_eye[i][j] = dot + if i == j { 1.0 } else { 0.0 };
            cov_eye[j][i] = cov_eye[i][j];
        }
    }
    Ok(ColourStats {
        mean,
        std,
        z,
        cov_eye,
    })
}

/// Eigenvalues and eigenvectors (the columns of the matrix) of a symmetric 3×3 matrix, by cyclic
/// Jacobi rotations: `a = V·diag(λ)·Vᵀ`.
fn sym_eigen3(mut a: [[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let scale: f64 = a.iter().flatten().map(|x| x * x).sum();
    for _sweep in 0..50 {
        let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
        if off <= 1e-32 * scale {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            // The rotation that zeroes a[p][q] (Numerical Recipes §11.1): a ← Jᵀ·a·J, v ← v·J.
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = if theta >= 0.0 { 1.0 } else { -1.0 } / (theta.abs() + theta.hypot(1.0));
            let c = 1.0 / t.hypot(1.0);
            let s = t * c;
            for row in a.iter_mut().chain(v.iter_mut()) {
                let (kp, kq) = (row[p], row[q]);
                row[p] = c * kp - s * kq;
                row[q] = s * kp + c * kq;
            }
            let (rp, rq) = (a[p], a[q]);
            a[p] = std::array::from_fn(|k| c * rp[k] - s * rq[k]);
            a[q] = std::array::from_fn(|k| s * rp[k] + c * rq[k]);
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}

/// `V·diag(f(λ))·Vᵀ` for a symmetric positive definite 3×3 matrix (the principal square root for
/// `f = √`, its inverse for `f = 1/√`), as the reference's SVD-based `_mat_sqrt`.
fn spd_function(a: [[f64; 3]; 3], f: impl Fn(f64) -> f64) -> Result<[[f64; 3]; 3]> {
    let (lambda, v) = sym_eigen3(a);
    if lambda.iter().any(|&l| !(l > 0.0 && l.is_finite())) {
        return Err(Error::bad(
            "coral",
            format!("colour covariance has eigenvalues {lambda:?}; it must be positive definite"),
        ));
    }
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, o) in row.iter_mut().enumerate() {
            *o = (0..3).map(|k| v[i][k] * f(lambda[k]) * v[j][k]).sum();
        }
    }
    Ok(out)
}

fn matmul3(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, o) in row.iter_mut().enumerate() {
            *o = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

/// CORAL colour transfer, the reference's `coral(source, target)`: gives each source image the
/// colour statistics of its target image. Per image, with channel means μ, unbiased stds σ,
/// standardised pixels `Z = (x − μ)/σ` (3 × pixels) and `C = Z·Zᵀ + I`:
/// `out = (C_t^{1/2} · C_s^{−1/2} · Z_s) · σ_t + μ_t`. Source `[Ns, 3, H, W]` and target
/// `[Nt, 3, H', W']` (sizes may differ; a batch of 1 is paired with every image of the other);
/// returns `[max(Ns, Nt), 3, H, W]` in the source's dtype and device. Computed on the host in f64;
/// not differentiable. Every channel of every image must vary (σ > 0).
pub fn coral(source: &Tensor, target: &Tensor) -> Result<Tensor> {
    const OP: &str = "coral";
    let ns = rgb_batch(OP, "the source", source)?;
    let nt = rgb_batch(OP, "the target", target)?;
    let n = ns.max(nt);
    if (ns != n && ns != 1) || (nt != n && nt != 1) {
        return Err(Error::shape(
            OP,
            source.shape(),
            target.shape(),
            "batches must be equal or one of them 1",
        ));
    }
    let (ms, mt) = (source.numel() / ns / 3, target.numel() / nt / 3);
    if ms < 2 || mt < 2 {
        return Err(Error::shape(
            OP,
            source.shape(),
            target.shape(),
            "images need at least 2 pixels for a std",
        ));
    }
    let (xs, xt) = (source.to_vec_f64()?, target.to_vec_f64()?);
    let mut out = Vec::with_capacity(n * 3 * ms);
    for i in 0..n {
        let (i_s, i_t) = (if ns == 1 { 0 } else { i }, if nt == 1 { 0 } else { i });
        let s = colour_stats(&xs[i_s * 3 * ms..(i_s + 1) * 3 * ms], ms, "source")?;
        let t = colour_stats(&xt[i_t * 3 * mt..(i_t + 1) * 3 * mt], mt, "target")?;
        let a = matmul3(
            &spd_function(t.cov_eye, f64::sqrt)?,
            &spd_function(s.cov_eye, |l| 1.0 / l.sqrt())?,
        );
        for (c, row) in a.iter().enumerate() {
            out.extend((0..ms).map(|p| {
                let z: f64 = (0..3).map(|k| row[k] * s.z[k * ms + p]).sum();
                z * t.std[c] + t.mean[c]
            }));
        }
    }
    let mut dims = source.dims().to_vec();
    dims[0] = n;
    Tensor::from_f64s(&out, dims, source.dtype(), source.device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_square_root_squares_back() {
        let a = [[4.0, 1.2, -0.7], [1.2, 3.0, 0.4], [-0.7, 0.4, 2.5]];
        let r = spd_function(a, f64::sqrt).unwrap();
        let back = matmul3(&r, &r);
        let inv = spd_function(a, |l| 1.0 / l.sqrt()).unwrap();
        let eye = matmul3(&r, &inv);
        for i in 0..3 {
            for j in 0..3 {
                assert!((back[i][j] - a[i][j]).abs() < 1e-13, "{back:?}");
                assert!((eye[i][j] - f64::from(u8::from(i == j))).abs() < 1e-13);
                assert!((r[i][j] - r[j][i]).abs() < 1e-14);
            }
        }
        // Already diagonal (no rotation) and repeated eigenvalues.
        let d = spd_function(
            [[9.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]],
            f64::sqrt,
        )
        .unwrap();
        assert_eq!(d, [[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]);
    }

    #[test]
    fn layouts_index_like_the_reference_sequentials() {
        let mut init = Init::new(0, DType::F32, Device::Cpu);
        let enc = VggEncoder::new(&mut init, 2).unwrap();
        assert_eq!(enc.net.seq.layers.len(), 31);
        let dec = Decoder::new(&mut init, 2).unwrap();
        assert_eq!(dec.net.seq.layers.len(), 29);
        let names: Vec<String> = crate::nn::named_params(&dec)
            .into_iter()
            .filter(|(n, _)| n.ends_with("weight"))
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            ["1", "5", "8", "11", "14", "18", "21", "25", "28"].map(|i| format!("{i}.weight"))
        );
    }
}
