//! The input side of `snapwatch scan` as a library, so that the fuzz targets exercise the same
//! splitting code the binary runs.

pub mod input;
