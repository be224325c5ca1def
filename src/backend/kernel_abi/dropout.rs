//! The calls of the kernels of cuda/dropout.cu (kernel names and argument lists; see call.rs).
//! (Being filled in: the launchers still write their own argument lists.)
