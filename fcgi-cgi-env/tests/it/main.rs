//! fcgi-cgi-env's integration tests, one test binary: a module per area.

mod derive;
mod hostile;
