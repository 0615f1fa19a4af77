//! Which server to talk to: `--socket`, `--connect`, or `$FCGI_ADDRESS`.

use std::time::Duration;

use fcgi_mux::Address;

use crate::cli::TargetArgs;
use crate::exit::{Exit, Failure};

/// The environment variable naming the default server address.
pub const ADDRESS_VAR: &str = "FCGI_ADDRESS";
/// php-fpm-healthcheck's name for it, honoured when [`ADDRESS_VAR`] is unset (compatibility:
/// its users' Dockerfiles and pod specs set it).
pub const CONNECT_VAR: &str = "FCGI_CONNECT";

/// A resolved target with its timeouts.
#[derive(Clone, Debug)]
pub struct Target {
    /// The server's address.
    pub address: Address,
    /// Time allowed to connect.
    pub connect_timeout: Duration,
    /// Time allowed for the whole operation.
    pub max_time: Duration,
}

impl Target {
    /// Resolves the flags, falling back to `$FCGI_ADDRESS`; `default_max_time` applies when
    /// `--max-time` was not given.
    pub fn from_args(args: &TargetArgs, default_max_time: Duration) -> Result<Target, Failure> {
        let address = if let Some(path) = &args.socket {
            Address::Unix(path.clone())
        } else {
            let text = match &args.connect {
                Some(text) => text.clone(),
                None => std::env::var(ADDRESS_VAR).or_else(|_| std::env::var(CONNECT_VAR)).map_err(|_| {
                    Failure::new(
                        Exit::Usage,
                        format!("no FastCGI server given: use --socket PATH, --connect HOST:PORT or set {ADDRESS_VAR}"),
                    )
                })?,
            };
            if let Some(message) = crate::messages::url_scheme(&text) {
                return Err(Failure::new(Exit::Usage, message));
            }
            text.parse::<Address>().map_err(|err| Failure::new(Exit::Usage, err.to_string()))?
        };
        let max_time = args.max_time.unwrap_or(default_max_time);
        // Connecting is part of the operation: it cannot take longer than the whole.
        let connect_timeout = args.connect_timeout.min(max_time);
        Ok(Target { address, connect_timeout, max_time })
    }
}
