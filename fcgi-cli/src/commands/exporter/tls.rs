//! `--tls-cert FILE --tls-key FILE`: the exporter over HTTPS (rustls with the ring provider;
//! ALPN `http/1.1`, the only protocol it serves). Both files are PEM: the certificate chain,
//! leaf first, and the private key (PKCS#8, PKCS#1 or SEC1).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::exit::{Exit, Failure};

/// The TLS acceptor for the two files; a failure names the file and what is wrong with it.
pub fn acceptor(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, Failure> {
    let unusable = |flag: &str, path: &Path, why: String| {
        Failure::new(Exit::Usage, format!("{flag} {}: {why}", path.display()))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|err| unusable("--tls-cert", cert_path, err.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|err| unusable("--tls-cert", cert_path, err.to_string()))?;
    if chain.is_empty() {
        return Err(unusable("--tls-cert", cert_path, "no PEM certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|err| unusable("--tls-key", key_path, err.to_string()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| Failure::new(Exit::Failure, format!("TLS set-up: {err}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|err| {
            Failure::new(Exit::Usage, format!("--tls-cert/--tls-key do not go together: {err}"))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
