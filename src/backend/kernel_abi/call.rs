//! A kernel launch minus its grid: which `cuda/<module>.cu` kernel, and its arguments in the order
//! and types of the kernel's C signature. The one place an argument list is written down.
//!
//! Each family module of `kernel_abi` has a function per kernel (or kernel family) that builds its
//! [`KernelCall`] from sizes, op parameters and device pointers. The pointer type is generic: the CUDA
//! launchers build calls over `u64` device addresses and hand them to `Gpu::launch`, the emulator
//! tests build the very same calls over host addresses (`usize`) and hand them to the emulator. So a
//! swapped argument, a wrong scalar type or a wrong kernel name in a builder fails the emulator tests
//! (which compare with the CPU backend) before it reaches a GPU.
//!
//! Invariants: `args` is in signature order; integers and floats are the C types' exact widths
//! (`int` → [`KArg::I32`], `long long` → [`KArg::I64`], `unsigned` → [`KArg::U32`], `float` →
//! [`KArg::F32`], `double` → [`KArg::F64`]); a struct passed by value is its `#[repr(C)]` bytes
//! ([`KArg::Pod`], at most [`MAX_POD_BYTES`]); pointers are device addresses of buffers the launcher
//! checked to be big enough for the launch plan.

/// The largest `#[repr(C)]` struct a kernel takes by value (`StridedArgs` is 136 bytes).
pub const MAX_POD_BYTES: usize = 256;

/// One kernel argument, by value, as `cuLaunchKernel` takes it; `P` is a device pointer.
#[derive(Clone, Debug, PartialEq)]
pub enum KArg<P> {
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    F32(f32),
    F64(f64),
    /// A device pointer.
    Ptr(P),
    /// A `#[repr(C)]` struct passed by value, as its bytes.
    Pod(Vec<u8>),
}

impl<P> KArg<P> {
    /// A `#[repr(C)]` descriptor (`StridedArgs`, `PoolArgs`, …) passed by value.
    pub fn pod<T: bytemuck::Pod>(v: &T) -> KArg<P> {
        let bytes = bytemuck::bytes_of(v);
        assert!(
            bytes.len() <= MAX_POD_BYTES,
            "a kernel argument struct of {} bytes exceeds MAX_POD_BYTES",
            bytes.len()
        );
        KArg::Pod(bytes.to_vec())
    }

    /// The same argument with its pointer (if any) converted by `f` (device address → host address).
    pub fn map_ptr<Q>(&self, f: impl Fn(&P) -> Q) -> KArg<Q> {
        match self {
            KArg::I32(v) => KArg::I32(*v),
            KArg::U32(v) => KArg::U32(*v),
            KArg::I64(v) => KArg::I64(*v),
            KArg::U64(v) => KArg::U64(*v),
            KArg::F32(v) => KArg::F32(*v),
            KArg::F64(v) => KArg::F64(*v),
            KArg::Ptr(p) => KArg::Ptr(f(p)),
            KArg::Pod(b) => KArg::Pod(b.clone()),
        }
    }
}

/// Kernel `name` of module `module` (a `cuda/<module>.cu` stem) with its arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelCall<P> {
    pub module: &'static str,
    pub name: String,
    pub args: Vec<KArg<P>>,
}

impl<P> KernelCall<P> {
    /// A call with no arguments yet; the typed pushes below add them in signature order.
    pub fn new(module: &'static str, name: impl Into<String>) -> KernelCall<P> {
        KernelCall {
            module,
            name: name.into(),
            args: Vec::new(),
        }
    }
    /// `int`.
    pub fn i32(mut self, v: i32) -> Self {
        self.args.push(KArg::I32(v));
        self
    }
    /// `unsigned int`.
    pub fn u32(mut self, v: u32) -> Self {
        self.args.push(KArg::U32(v));
        self
    }
    /// `long long` (`int64_t`), from a size or index.
    pub fn i64(mut self, v: usize) -> Self {
        self.args
            .push(KArg::I64(i64::try_from(v).expect("size fits in i64")));
        self
    }
    /// `long long` that may be negative.
    pub fn signed(mut self, v: i64) -> Self {
        self.args.push(KArg::I64(v));
        self
    }
    /// `unsigned long long`.
    pub fn u64(mut self, v: u64) -> Self {
        self.args.push(KArg::U64(v));
        self
    }
    /// `float`.
    pub fn f32(mut self, v: f32) -> Self {
        self.args.push(KArg::F32(v));
        self
    }
    /// `double`.
    pub fn f64(mut self, v: f64) -> Self {
        self.args.push(KArg::F64(v));
        self
    }
    /// A device pointer (`T*` or `const T*`).
    pub fn ptr(mut self, p: P) -> Self {
        self.args.push(KArg::Ptr(p));
        self
    }
    /// A `#[repr(C)]` struct by value.
    pub fn pod<T: bytemuck::Pod>(mut self, v: &T) -> Self {
        self.args.push(KArg::pod(v));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_keep_signature_order_and_widths() {
        let c: KernelCall<usize> = KernelCall::new("m", "k_f32")
            .i64(3)
            .i32(-1)
            .f64(0.5)
            .ptr(16)
            .pod(&[1u32, 2u32]);
        assert_eq!(c.name, "k_f32");
        assert_eq!(
            c.args,
            vec![
                KArg::I64(3),
                KArg::I32(-1),
                KArg::F64(0.5),
                KArg::Ptr(16),
                KArg::Pod(bytemuck::bytes_of(&[1u32, 2u32]).to_vec()),
            ]
        );
    }

    #[test]
    #[should_panic(expected = "MAX_POD_BYTES")]
    fn oversized_structs_are_refused() {
        let _ = KArg::<usize>::pod(&[0u64; 64]);
    }
}
