//! Placeholder; filled in with the handler.
