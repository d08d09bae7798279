//! Linux and macOS.

pub mod file;
pub mod own;
pub mod pipe;
pub mod process;
pub mod shutdown;
