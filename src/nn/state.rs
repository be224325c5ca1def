//! Named tensors on disk as safetensors: whole modules (`save_module` / `load_module`) and any named
//! set of tensors (`save_tensors` / `load_tensors`). Writes are atomic — a temporary file in the same
//! folder, flushed and synced, then renamed over the target — so a crash never leaves a torn file.
//! Loading checks names and shapes and reports every missing, unexpected or mis-shaped tensor at once.
//! torchvision's integer `num_batches_tracked` buffers are accepted and ignored.

use super::{named_params, Module};
use crate::backend::{CpuStorage, Device, Storage};
use crate::{DType, Error, MemoryFormat, Result, Tensor};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

struct HostTensor {
    dtype: safetensors::Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl safetensors::View for &HostTensor {
    fn dtype(&self) -> safetensors::Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn to_st_dtype(d: DType) -> safetensors::Dtype {
    match d {
        DType::F16 => safetensors::Dtype::F16,
        DType::F32 => safetensors::Dtype::F32,
        DType::F64 => safetensors::Dtype::F64,
    }
}

/// Writes `bytes` to `path` atomically (temp file + fsync + rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// Saves named tensors (any device; copied to the host) with string metadata.
pub fn save_tensors(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut host = BTreeMap::new();
    for (name, t) in tensors {
        let t = t.contiguous()?;
        let cpu = t.storage().to_cpu()?;
        host.insert(
            name.clone(),
            HostTensor {
                dtype: to_st_dtype(cpu.dtype()),
                shape: t.dims().to_vec(),
                bytes: cpu.as_bytes().to_vec(),
            },
        );
    }
    let meta: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let bytes = safetensors::serialize(host.iter().map(|(k, v)| (k.as_str(), v)), Some(meta))
        .map_err(|e| Error::Checkpoint {
            path: path.display().to_string(),
            msg: e.to_string(),
        })?;
    write_atomic(path, &bytes)
}

/// Loads every floating-point tensor of a safetensors file onto `device`, plus its metadata.
/// Integer tensors (such as `num_batches_tracked`) are skipped.
pub fn load_tensors(
    path: &Path,
    device: Device,
) -> Result<(BTreeMap<String, Tensor>, BTreeMap<String, String>)> {
    let err = |msg: String| Error::Checkpoint {
        path: path.display().to_string(),
        msg,
    };
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| err(format!("not a safetensors file: {e}")))?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let storage = match view.dtype() {
            safetensors::Dtype::F16 => CpuStorage::F16(bytemuck::pod_collect_to_vec(data)),
            safetensors::Dtype::F32 => CpuStorage::F32(bytemuck::pod_collect_to_vec(data)),
            safetensors::Dtype::F64 => CpuStorage::F64(bytemuck::pod_collect_to_vec(data)),
            safetensors::Dtype::BF16 => {
                let v: Vec<half::bf16> = bytemuck::pod_collect_to_vec(data);
                CpuStorage::F32(v.iter().map(|x| x.to_f32()).collect())
            }
            _ => continue,
        };
        let t = Tensor::from_storage(
            Storage::Cpu(storage).to_device(device)?,
            view.shape().to_vec(),
            MemoryFormat::Contiguous,
        )?;
        out.insert(name, t);
    }
    Ok((out, metadata))
}

/// A safetensors file's JSON header (tensor entries and `__metadata__`), read without the tensor data.
fn read_header(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    use std::io::Read;
    let io = |e: std::io::Error| Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    let err = |msg: String| Error::Checkpoint {
        path: path.display().to_string(),
        msg,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let total = f.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| err("not a safetensors file: shorter than its header".into()))?;
    let len = u64::from_le_bytes(len);
    if len > total.saturating_sub(8) || len > 100 << 20 {
        return Err(err(format!(
            "not a safetensors file: header length {len} does not fit the file"
        )));
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).map_err(io)?;
    match serde_json::from_slice(&header) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err(err(
            "not a safetensors file: the header is not an object".into()
        )),
        Err(e) => Err(err(format!("not a safetensors file: {e}"))),
    }
}

/// A safetensors file's string metadata, reading only its header (not the tensor data): for
/// checkpoints whose run state decides how to build the model before the weights are loaded.
pub fn read_metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    Ok(read_header(path)?
        .get("__metadata__")
        .and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

/// The name and shape of every tensor of a safetensors file, reading only its header: for weight
/// files whose architecture is inferred from their shapes.
pub fn read_shapes(path: &Path) -> Result<BTreeMap<String, Vec<usize>>> {
    Ok(read_header(path)?
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .filter_map(|(k, v)| {
            let shape = v.get("shape")?.as_array()?;
            Some((
                k,
                shape
                    .iter()
                    .filter_map(|d| d.as_u64())
                    .map(|d| d as usize)
                    .collect(),
            ))
        })
        .collect())
}

/// Saves every parameter and buffer of `module` under its PyTorch name.
pub fn save_module(
    path: &Path,
    module: &dyn Module,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let named: Vec<(String, Tensor)> = named_params(module)
        .into_iter()
        .map(|(n, p)| (n, p.tensor))
        .collect();
    save_tensors(path, &named, metadata)
}

/// Copies a file's tensors into `module` (converting dtype and device). With `strict`, tensors in
/// the file that the module lacks are an error too. Missing and mis-shaped tensors always are.
pub fn load_module(
    path: &Path,
    module: &dyn Module,
    strict: bool,
) -> Result<BTreeMap<String, String>> {
    // Read on the host: `assign` moves each used tensor to its parameter's device, so tensors the
    // module does not use never reach the device.
    let (tensors, metadata) = load_tensors(path, Device::Cpu)?;
    load_into(path, tensors, module, strict)?;
    Ok(metadata)
}

/// Copies named tensors (as `load_tensors` returns them) into `module`'s parameters and buffers,
/// converting dtype and device. Missing and mis-shaped tensors are errors, all reported at once and
/// attributed to `source`, the file they came from; with `strict`, so are tensors the module lacks.
/// Without it they are ignored (e.g. the layers of a full VGG-19 beyond a truncated encoder's).
pub fn load_into(
    source: &Path,
    mut tensors: BTreeMap<String, Tensor>,
    module: &dyn Module,
    strict: bool,
) -> Result<()> {
    let mut problems = Vec::new();
    let mut assignments = Vec::new();
    for (name, p) in named_params(module) {
        match tensors.remove(&name) {
            None => problems.push(format!(
                "missing {name} (expected shape {:?})",
                p.tensor.shape()
            )),
            Some(t) if t.shape() != p.tensor.shape() => problems.push(format!(
                "{name}: file has shape {:?}, model expects {:?}",
                t.shape(),
                p.tensor.shape()
            )),
            Some(t) => assignments.push((p, t)),
        }
    }
    if strict {
        for name in tensors
            .keys()
            .filter(|n| !n.ends_with("num_batches_tracked"))
        {
            problems.push(format!("unexpected {name} (not a parameter of this model)"));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Checkpoint {
            path: source.display().to_string(),
            msg: format!(
                "does not fit this model ({} problems): {}",
                problems.len(),
                problems.join("; ")
            ),
        });
    }
    for (p, t) in assignments {
        p.tensor.assign(&t)?;
    }
    Ok(())
}
