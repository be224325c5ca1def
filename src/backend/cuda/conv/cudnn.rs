//! RAII wrappers over raw cuDNN handles and descriptors, and `CuGeom`: a convolution's
//! geometry as cuDNN sees it (every extent an `int`, output extents from cuDNN's formula).
//! See the design notes in `mod.rs`.

use super::*;

// ------------------------------------------------------------------------------------------------
// RAII wrappers over raw cuDNN objects

pub(super) fn cudnn_err(op: &str, what: &str, e: CudnnError) -> Error {
    Error::Msg(format!("cuda {op} (cuDNN {what}): {:?}", e.0))
}

pub(super) struct Handle(pub(super) sys::cudnnHandle_t);
impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by `create_handle` and destroyed once, here.
        let _ = unsafe { cr::destroy_handle(self.0) };
    }
}

pub(super) struct TensorDesc(pub(super) sys::cudnnTensorDescriptor_t);
impl TensorDesc {
    pub(super) fn new(
        format: sys::cudnnTensorFormat_t,
        dt: sys::cudnnDataType_t,
        dims: [c_int; 4],
    ) -> std::result::Result<Self, CudnnError> {
        let d = TensorDesc(cr::create_tensor_descriptor()?);
        // SAFETY: `d.0` was just created and is owned by `d`.
        unsafe { cr::set_tensor4d_descriptor(d.0, format, dt, dims) }?;
        Ok(d)
    }
}
impl Drop for TensorDesc {
    fn drop(&mut self) {
        // SAFETY: created by `create_tensor_descriptor`, destroyed once.
        let _ = unsafe { cr::destroy_tensor_descriptor(self.0) };
    }
}

pub(super) struct FilterDesc(pub(super) sys::cudnnFilterDescriptor_t);
impl FilterDesc {
    pub(super) fn new(
        format: sys::cudnnTensorFormat_t,
        dt: sys::cudnnDataType_t,
        dims: [c_int; 4],
    ) -> std::result::Result<Self, CudnnError> {
        let d = FilterDesc(cr::create_filter_descriptor()?);
        // SAFETY: `d.0` was just created and is owned by `d`.
        unsafe { cr::set_filter4d_descriptor(d.0, dt, format, dims) }?;
        Ok(d)
    }
}
impl Drop for FilterDesc {
    fn drop(&mut self) {
        // SAFETY: created by `create_filter_descriptor`, destroyed once.
        let _ = unsafe { cr::destroy_filter_descriptor(self.0) };
    }
}

pub(super) struct ConvDesc(pub(super) sys::cudnnConvolutionDescriptor_t);
impl ConvDesc {
    pub(super) fn new(
        g: &CuGeom,
        compute: sys::cudnnDataType_t,
        math: sys::cudnnMathType_t,
    ) -> std::result::Result<Self, CudnnError> {
        let d = ConvDesc(cr::create_convolution_descriptor()?);
        // SAFETY: `d.0` was just created and is owned by `d`.
        unsafe {
            cr::set_convolution2d_descriptor(
                d.0,
                g.pad[0],
                g.pad[1],
                g.stride[0],
                g.stride[1],
                g.dil[0],
                g.dil[1],
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                compute,
            )?;
            cr::set_convolution_group_count(d.0, g.groups)?;
            cr::set_convolution_math_type(d.0, math)?;
        }
        Ok(d)
    }
}
impl Drop for ConvDesc {
    fn drop(&mut self) {
        // SAFETY: created by `create_convolution_descriptor`, destroyed once.
        let _ = unsafe { cr::destroy_convolution_descriptor(self.0) };
    }
}

// ------------------------------------------------------------------------------------------------
// Geometry
