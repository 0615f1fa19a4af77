//! The backends that only the real-peer matrix uses (`fcgi-cli/tests/it/peer_matrix.rs`,
//! docs/PEERS.md), started by [`crate::backends::Backends::start`] after the others:
//!
//! | peer                       | module               | serves                                   |
//! |----------------------------|----------------------|------------------------------------------|
//! | uWSGI `--fastcgi-socket`   | [`crate::uwsgi`]     | `tests/backends/uwsgi_app.py` (WSGI)     |
//! | Go net/http/fcgi           | [`crate::go_fcgi`]   | `tests/backends/go/` (built by xtask)    |
//! | Perl FCGI under spawn-fcgi | [`crate::perl_fcgi`] | `tests/backends/perl/peer.pl`, 3 roles   |
//! | `php-cgi -b`               | [`crate::php_cgi`]   | the php-fpm docroot (`tests/php/`)       |
//! | lighttpd (authorizer mode) | [`crate::lighttpd`]  | HTTP in front of fcgiwrap: the reference Authorizer reading |

use std::path::Path;

use anyhow::Result;

use crate::backends::backend_env;
use crate::service::Service;
use crate::{go_fcgi, lighttpd, perl_fcgi, php_cgi, uwsgi};

/// Installs what is missing, builds the Go server, starts every peer with its socket and log in
/// `dir` (lighttpd in front of the fcgiwrap on `fcgiwrap_socket`, running `cgi_dir`'s scripts).
/// Each comes with the variable naming its socket. Those started are stopped again (dropped) when
/// a later one fails.
pub fn start(dir: &Path, fcgiwrap_socket: &Path, cgi_dir: &Path) -> Result<Vec<(&'static str, Service)>> {
    let uwsgi = uwsgi::PROGRAM.find_or_install()?;
    let go = go_fcgi::PROGRAM.find_or_install()?;
    let spawn_fcgi = perl_fcgi::PROGRAM.find_or_install()?;
    let php_cgi = php_cgi::PROGRAM.find_or_install()?;
    let lighttpd = lighttpd::PROGRAM.find_or_install()?;
    let go_server = go_fcgi::build(&go)?;
    Ok(vec![
        (backend_env::UWSGI_SOCKET, uwsgi::start(&uwsgi, dir)?),
        (backend_env::GO_SOCKET, go_fcgi::start(&go_server, dir)?),
        (backend_env::PERL_SOCKET, perl_fcgi::start(&spawn_fcgi, dir)?),
        (backend_env::PHP_CGI_SOCKET, php_cgi::start(&php_cgi, dir)?),
        (backend_env::LIGHTTPD_AUTH_SOCKET, lighttpd::start(&lighttpd, dir, fcgiwrap_socket, cgi_dir)?),
    ])
}
