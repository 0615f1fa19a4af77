//! Test support for the fcgi workspace.
