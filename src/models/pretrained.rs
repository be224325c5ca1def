//! ResNet weights from outside the engine: a torchvision (or timm C/D-style) state dict saved as
//! safetensors by `tools/convert_torchvision.py`. The architecture is inferred from the tensor names
//! and shapes alone (depth from the blocks per stage, bottleneck from `conv3`, width from layer1's
//! input, stem from `conv1`, variant D from pooled shortcuts, pre-activation from the final BN), so
//! any such file loads without flags; a file that fits no engine ResNet is rejected by a strict load
//! that names every missing, unexpected or mis-shaped tensor. Class names come from the file's
//! `classes` metadata (a JSON list) when the converter wrote one.

use super::resnet::{ResNet, ResNetConfig, Variant};
use crate::nn::init::Init;
use crate::nn::state::{load_module, read_metadata, read_shapes};
use crate::{DType, Device, Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// A ResNet loaded from a plain weights file, with its class names (empty when the file has none).
pub struct PretrainedResNet {
    pub model: ResNet,
    pub config: ResNetConfig,
    pub class_names: Vec<String>,
}

fn bad(path: &Path, msg: String) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        msg: format!(
            "{msg}; expected a torchvision-style ResNet state dict (convert a .pth with tools/convert_torchvision.py)"
        ),
    }
}

/// The engine configuration of the ResNet whose state-dict shapes are `shapes`.
pub fn infer_resnet_config(
    shapes: &BTreeMap<String, Vec<usize>>,
    path: &Path,
) -> Result<ResNetConfig> {
    let get = |k: &str| {
        shapes
            .get(k)
            .ok_or_else(|| bad(path, format!("it has no tensor `{k}`")))
    };
    let mut blocks = [0usize; 4];
    for (stage, n) in blocks.iter_mut().enumerate() {
        while shapes.contains_key(&format!("layer{}.{}.conv1.weight", stage + 1, *n)) {
            *n += 1;
        }
    }
    let bottleneck = shapes.contains_key("layer1.0.conv3.weight");
    let depth = match (bottleneck, blocks) {
        (false, [2, 2, 2, 2]) => 18,
        (false, [3, 4, 6, 3]) => 34,
        (true, [3, 4, 6, 3]) => 50,
        (true, [3, 4, 23, 3]) => 101,
        (b, l) => {
            return Err(bad(
                path,
                format!(
                    "{} blocks per stage {l:?} match no ResNet-18/34/50/101",
                    if b { "bottleneck" } else { "basic" }
                ),
            ))
        }
    };
    let width = get("layer1.0.conv1.weight")?[1];
    let fc = get("fc.weight")?;
    let (deep_stem, stem) = match shapes.get("conv1.weight") {
        Some(s) => (false, s.clone()),
        None => (true, get("conv1.0.weight")?.clone()),
    };
    // ResNet-D's pooled shortcut puts the conv at `downsample.1` (4-d) where B/C have BN (1-d).
    let pooled = shapes
        .get("layer2.0.downsample.1.weight")
        .is_some_and(|s| s.len() == 4);
    let variant = match (deep_stem, pooled) {
        (false, _) => Variant::B,
        (true, false) => Variant::C,
        (true, true) => Variant::D,
    };
    let preact = get("bn1.weight")?[0] != width;
    Ok(ResNetConfig {
        depth,
        variant,
        preact,
        zero_gamma: false,
        small_input: !deep_stem && stem[2] == 3,
        in_channels: stem[1],
        num_classes: fc[0],
        width,
    })
}

/// Builds the ResNet a weights file describes, in `dtype` on `device`, and loads it strictly.
pub fn load_pretrained_resnet(
    path: &Path,
    dtype: DType,
    device: Device,
) -> Result<PretrainedResNet> {
    if !path.exists() {
        return Err(Error::Msg(format!(
            "{}: no such weights file (convert a PyTorch .pth with `python3 tools/convert_torchvision.py IN.pth {}`)",
            path.display(),
            path.display()
        )));
    }
    let shapes = read_shapes(path)?;
    let config = infer_resnet_config(&shapes, path)?;
    let model = ResNet::new(config.clone(), &mut Init::new(0, dtype, device))?;
    load_module(path, &model, true)?;
    let class_names = match read_metadata(path)?.get("classes") {
        Some(json) => serde_json::from_str::<Vec<String>>(json).map_err(|e| {
            bad(
                path,
                format!("its `classes` metadata is not a JSON list: {e}"),
            )
        })?,
        None => Vec::new(),
    };
    if !class_names.is_empty() && class_names.len() != config.num_classes {
        return Err(bad(
            path,
            format!(
                "{} class names for {} outputs",
                class_names.len(),
                config.num_classes
            ),
        ));
    }
    Ok(PretrainedResNet {
        model,
        config,
        class_names,
    })
}
