//! The backends that only the real-peer matrix uses (`fcgi-cli/tests/it/peer_matrix.rs`,
//! docs/PEERS.md), started by [`crate::backends::Backends::start`] after the others:
//!
//! | peer                      | module                | serves                                   |
//! |---------------------------|-----------------------|------------------------------------------|
//! | uWSGI `--fastcgi-socket`  | [`crate::uwsgi`]      | `tests/backends/uwsgi_app.py` (WSGI)     |
//! | Go net/http/fcgi          | [`crate::go_fcgi`]    | `tests/backends/go/` (built by xtask)    |
//! | Perl FCGI under spawn-fcgi | [`crate::perl_fcgi`] | `tests/backends/perl/peer.pl`, 3 roles   |
//! | `php-cgi -b`              | [`crate::php_cgi`]    | the php-fpm docroot (`tests/php/`)       |
//! | lighttpd (authorizer mode) | [`crate::lighttpd`]  | HTTP in front of fcgiwrap: the reference Authorizer reading |

use std::path::Path;

use anyhow::{Context, Result};

use crate::backends::backend_env;
use crate::fcgiwrap::Fcgiwrap;
use crate::service::Service;
use crate::{go_fcgi, lighttpd, perl_fcgi, php_cgi, uwsgi};

/// The running matrix-only backends.
pub struct Peers {
    /// uWSGI.
    pub uwsgi: Service,
    /// The Go server.
    pub go: Service,
    /// Perl FCGI under spawn-fcgi.
    pub perl: Service,
    /// php-cgi.
    pub php_cgi: Service,
    /// lighttpd, authorizing with fcgiwrap.
    pub lighttpd: Service,
}

impl Peers {
    /// Installs what is missing, builds the Go server, starts every peer with its socket and log
    /// in `dir` (lighttpd in front of `fcgiwrap`). Those started are stopped again (dropped) when
    /// a later one fails.
    pub fn start(dir: &Path, fcgiwrap: &Fcgiwrap) -> Result<Peers> {
        let uwsgi_binary = uwsgi::PROGRAM.find_or_install()?;
        let go = go_fcgi::PROGRAM.find_or_install()?;
        let spawn_fcgi = perl_fcgi::find_or_install()?;
        let php_cgi_binary = php_cgi::PROGRAM.find_or_install()?;
        let lighttpd_binary = lighttpd::PROGRAM.find_or_install()?;
        let go_binary = go_fcgi::build(&go)?;

        let uwsgi = uwsgi::start(&uwsgi_binary, dir).context("starting uWSGI")?;
        let go = go_fcgi::start(&go_binary, dir).context("starting the Go server")?;
        let perl = perl_fcgi::start(&spawn_fcgi, dir).context("starting Perl FCGI")?;
        let php_cgi = php_cgi::start(&php_cgi_binary, dir).context("starting php-cgi")?;
        let lighttpd = lighttpd::start(&lighttpd_binary, dir, &fcgiwrap.service.socket, &fcgiwrap.cgi_dir)
            .context("starting lighttpd")?;
        let peers = Peers { uwsgi, go, perl, php_cgi, lighttpd };
        for service in peers.services() {
            println!("xtask: {} ready (pid {}, {})", service.name(), service.pid(), service.socket.display());
        }
        Ok(peers)
    }

    /// Their part of the environment contract.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (backend_env::UWSGI_SOCKET, self.uwsgi.socket.display().to_string()),
            (backend_env::GO_SOCKET, self.go.socket.display().to_string()),
            (backend_env::PERL_SOCKET, self.perl.socket.display().to_string()),
            (backend_env::PHP_CGI_SOCKET, self.php_cgi.socket.display().to_string()),
            (backend_env::LIGHTTPD_AUTH_SOCKET, self.lighttpd.socket.display().to_string()),
        ]
    }

    /// Fails if any has exited.
    pub fn check_running(&mut self) -> Result<()> {
        self.uwsgi.check_running()?;
        self.go.check_running()?;
        self.perl.check_running()?;
        self.lighttpd.check_running()?;
        self.php_cgi.check_running()
    }

    /// Every one, for logs.
    pub fn services(&self) -> [&Service; 5] {
        [&self.uwsgi, &self.go, &self.perl, &self.php_cgi, &self.lighttpd]
    }
}
