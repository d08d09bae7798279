//! Windows.

pub mod dialog;
pub mod file;
pub mod own;
pub mod pipe;
pub mod process;
pub mod shutdown;
