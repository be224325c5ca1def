//! `Tensor`: a cheap handle (an `Arc`) to dense storage on one device, its shape, dtype and memory
//! format, and — when autograd is recording — the node that made it.
//!
//! Invariants:
//! - Storage is dense. Its element order is the row-major order of the logical shape (`Contiguous`),
//!   or, for 4-d tensors only, N-H-W-C order (`ChannelsLast`, the layout the CUDA backend prefers for
//!   f16 convolutions). The logical shape is always `[N, C, H, W]`-style, whatever the format.
//!   CPU kernels accept `Contiguous` inputs; `ops::apply` converts others first.
//! - A tensor is never mutated through its handle except by explicit in-place calls (`assign`, and
//!   the optimizers and batch-norm running statistics, which write through `storage_mut`). Views such
//!   as `reshape` share storage; every other op allocates its output.
//! - `node` is `Some` only for tensors computed from tensors that require grad, outside `no_grad`.

use crate::autograd::Node;
use crate::backend::{CpuStorage, Device, Storage};
use crate::dtype::{DType, Element};
use crate::shape::Shape;
use crate::{Error, Result};
use rand::SeedableRng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    fn fresh() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryFormat {
    /// Row-major in the logical shape (NCHW for images).
    Contiguous,
    /// 4-d tensors stored N, H, W, C.
    ChannelsLast,
}

pub(crate) struct Inner {
    pub(crate) id: TensorId,
    pub(crate) storage: Arc<RwLock<Storage>>,
    pub(crate) shape: Shape,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
    pub(crate) format: MemoryFormat,
    pub(crate) node: Option<Arc<Node>>,
    pub(crate) is_variable: bool,
}

#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor[{:?}, {}, {}]",
            self.shape(),
            self.dtype(),
            self.device()
        )
    }
}

impl Tensor {
    // ---------------------------------------------------------------- construction

    /// Wraps storage with no autograd history.
    pub fn from_storage(
        storage: Storage,
        shape: impl Into<Shape>,
        format: MemoryFormat,
    ) -> Result<Tensor> {
        let shape = shape.into();
        if storage.len() != shape.numel() {
            return Err(Error::bad(
                "from_storage",
                format!(
                    "storage holds {} elements but shape {:?} needs {}",
                    storage.len(),
                    shape,
                    shape.numel()
                ),
            ));
        }
        if format == MemoryFormat::ChannelsLast && shape.rank() != 4 {
            return Err(Error::bad(
                "from_storage",
                format!("channels-last needs a 4-d shape, got {:?}", shape),
            ));
        }
        Ok(Tensor(Arc::new(Inner {
            id: TensorId::fresh(),
            dtype: storage.dtype(),
            device: storage.device(),
            storage: Arc::new(RwLock::new(storage)),
            shape,
            format,
            node: None,
            is_variable: false,
        })))
    }

    pub fn from_vec<T: Element>(
        data: Vec<T>,
        shape: impl Into<Shape>,
        device: Device,
    ) -> Result<Tensor> {
        let storage = Storage::Cpu(CpuStorage::from_vec(data)).to_device(device)?;
        Tensor::from_storage(storage, shape, MemoryFormat::Contiguous)
    }

    /// Builds from f64 values, stored as `dtype`.
    pub fn from_f64s(
        data: &[f64],
        shape: impl Into<Shape>,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let cpu = CpuStorage::F64(data.to_vec()).to_dtype(dtype);
        Tensor::from_storage(
            Storage::Cpu(cpu).to_device(device)?,
            shape,
            MemoryFormat::Contiguous,
        )
    }

    pub fn full(
        value: f64,
        shape: impl Into<Shape>,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        if device.is_cpu() {
            return Tensor::from_f64s(&vec![value; shape.numel()], shape, dtype, device);
        }
        // Filled on the device: an upload in a step (the backward seed, a loss's constant target)
        // could make the host wait for the device's queue.
        let zeros = Tensor::from_storage(
            Storage::zeros(dtype, shape.numel(), device)?,
            shape,
            MemoryFormat::Contiguous,
        )?;
        // +0.0 only (-0.0 takes the add, which keeps its sign); an f16 value is rounded through
        // f32 by the kernel, so it may differ from the CPU's direct rounding by one ulp at a tie.
        match value.to_bits() {
            0 => Ok(zeros),
            _ => crate::no_grad(|| zeros.add_scalar(value)),
        }
    }
    pub fn zeros(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(0.0, shape, dtype, device)
    }
    pub fn ones(shape: impl Into<Shape>, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(1.0, shape, dtype, device)
    }
    pub fn scalar(value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        Tensor::full(value, (), dtype, device)
    }
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.shape().clone(), self.dtype(), self.device())
    }
    pub fn ones_like(&self) -> Result<Tensor> {
        Tensor::ones(self.shape().clone(), self.dtype(), self.device())
    }

    /// Normal(mean, std) samples from a ChaCha8 stream seeded with `seed` (reproducible everywhere).
    pub fn randn(
        shape: impl Into<Shape>,
        mean: f64,
        std: f64,
        seed: u64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        use rand_distr::Distribution;
        let shape = shape.into();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal =
            rand_distr::Normal::new(mean, std).map_err(|e| Error::bad("randn", e.to_string()))?;
        let v: Vec<f64> = (0..shape.numel())
            .map(|_| normal.sample(&mut rng))
            .collect();
        Tensor::from_f64s(&v, shape, dtype, device)
    }

    /// Uniform[lo, hi) samples from a ChaCha8 stream seeded with `seed`.
    pub fn rand_uniform(
        shape: impl Into<Shape>,
        lo: f64,
        hi: f64,
        seed: u64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        use rand::Rng;
        let shape = shape.into();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let v: Vec<f64> = (0..shape.numel())
            .map(|_| rng.random_range(lo..hi))
            .collect();
        Tensor::from_f64s(&v, shape, dtype, device)
    }

    // ---------------------------------------------------------------- accessors

    pub fn id(&self) -> TensorId {
        self.0.id
    }
    pub fn shape(&self) -> &Shape {
        &self.0.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.0.shape.dims()
    }
    pub fn rank(&self) -> usize {
        self.0.shape.rank()
    }
    pub fn numel(&self) -> usize {
        self.0.shape.numel()
    }
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    pub fn device(&self) -> Device {
        self.0.device
    }
    pub fn format(&self) -> MemoryFormat {
        self.0.format
    }
    pub fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.0.storage.read().expect("tensor storage lock poisoned")
    }
    /// Write access for in-place updates (optimizers, running statistics). Not recorded by autograd.
    pub fn storage_mut(&self) -> RwLockWriteGuard<'_, Storage> {
        self.0
            .storage
            .write()
            .expect("tensor storage lock poisoned")
    }
    /// True for leaves created with `var()` (parameters, inputs under a gradient check).
    pub fn is_variable(&self) -> bool {
        self.0.is_variable
    }
    /// True when gradients flow to this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.is_variable || self.0.node.is_some()
    }

    /// All values converted to `T`, in logical (contiguous) order.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let t = self.contiguous()?;
        let s = t.storage().to_cpu()?;
        Ok(s.to_vec())
    }
    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        self.to_vec::<f64>()
    }
    /// The value of a one-element tensor.
    pub fn to_scalar(&self) -> Result<f64> {
        if self.numel() != 1 {
            return Err(Error::bad(
                "to_scalar",
                format!("tensor has shape {:?}, not one element", self.shape()),
            ));
        }
        Ok(self.to_vec_f64()?[0])
    }

    /// The values of one-element tensors on one device, read back together: one read of device
    /// memory, where a `to_scalar` each would wait for a GPU's queue to drain once per value.
    pub fn scalars(ts: &[&Tensor]) -> Result<Vec<f64>> {
        if let Some(t) = ts.iter().find(|t| t.numel() != 1) {
            return Err(Error::bad(
                "scalars",
                format!("a tensor has shape {:?}, not one element", t.shape()),
            ));
        }
        if ts.is_empty() {
            return Ok(Vec::new());
        }
        crate::no_grad(|| {
            let flat: Vec<Tensor> = ts
                .iter()
                .map(|t| t.to_dtype(DType::F64)?.reshape([1]))
                .collect::<Result<_>>()?;
            Tensor::concat(&flat.iter().collect::<Vec<_>>(), 0)?.to_vec_f64()
        })
    }

    // ---------------------------------------------------------------- autograd handles

    /// A leaf that shares this tensor's storage and whose gradient `backward()` returns.
    pub fn var(&self) -> Tensor {
        self.rewrap(None, true)
    }
    /// Same storage, no history: gradients stop here.
    pub fn detach(&self) -> Tensor {
        self.rewrap(None, false)
    }
    /// Same storage with a recorded node (used by ops).
    pub(crate) fn with_node(&self, node: Node) -> Tensor {
        self.rewrap(Some(Arc::new(node)), false)
    }
    fn rewrap(&self, node: Option<Arc<Node>>, is_variable: bool) -> Tensor {
        Tensor(Arc::new(Inner {
            id: TensorId::fresh(),
            storage: self.0.storage.clone(),
            shape: self.0.shape.clone(),
            dtype: self.0.dtype,
            device: self.0.device,
            format: self.0.format,
            node,
            is_variable,
        }))
    }
    /// A new handle to the same storage with another shape of the same size (a view).
    pub(crate) fn view_as(&self, shape: Shape) -> Tensor {
        Tensor(Arc::new(Inner {
            id: TensorId::fresh(),
            storage: self.0.storage.clone(),
            shape,
            dtype: self.0.dtype,
            device: self.0.device,
            format: MemoryFormat::Contiguous,
            node: None,
            is_variable: false,
        }))
    }
    /// True when both handles share one storage buffer.
    pub fn same_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    /// Overwrites this tensor's values with `src`'s (same shape; converted to this dtype and format).
    /// In place and not recorded: for parameters, buffers and optimizer state.
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::shape(
                "assign",
                self.shape(),
                src.shape(),
                "assign needs equal shapes",
            ));
        }
        let src = src.to_dtype(self.dtype())?.to_format(self.format())?;
        let new = src.storage().to_device(self.device())?;
        *self.storage_mut() = new;
        Ok(())
    }

    /// A copy on `device` (no history kept across devices).
    pub fn to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let s = self.storage().to_device(device)?;
        Tensor::from_storage(s, self.shape().clone(), self.format())
    }

    /// `to_device` for a step's input (a batch, its targets): to a CUDA device the transfer runs on
    /// the copy stream, overlapping the kernels already queued (`Storage::to_device_input`).
    pub fn to_device_input(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        let s = self.storage().to_device_input(device)?;
        Tensor::from_storage(s, self.shape().clone(), self.format())
    }
}
