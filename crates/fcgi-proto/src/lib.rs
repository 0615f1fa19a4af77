//! FastCGI 1.0 wire codec (work in progress: filled in by the foundation issue).
