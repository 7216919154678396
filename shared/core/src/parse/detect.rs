//! Record format detection (filled in with the engine).
