//! CGI/1.1 environment builder for FastCGI requests.
//!
//! Skeleton: the builder lands with the fcgi-cgi-env issue.
