//! Native TLS (`wss://`) with rustls: from the PEM certificate chain and key named in the
//! configuration, or from a certificate and key an embedding program holds in memory
//! (`Config::tls_identity`). Deployments behind a TLS-terminating reverse proxy leave TLS unset.

use std::sync::Arc;

use anyhow::Context as _;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::{TlsConfig, TlsIdentity};

/// A TLS acceptor for the configured certificate and key files.
pub(crate) fn acceptor(config: &TlsConfig) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(&config.cert)
        .with_context(|| format!("reading {}", config.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", config.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", config.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&config.key)
        .with_context(|| format!("reading the private key {}", config.key.display()))?;
    serve(certs, key)
}

/// A TLS acceptor for a certificate chain and key held in memory.
pub(crate) fn acceptor_in_memory(identity: &TlsIdentity) -> anyhow::Result<TlsAcceptor> {
    if identity.cert_chain.is_empty() {
        anyhow::bail!("the in-memory TLS identity holds no certificate");
    }
    let certs = identity
        .cert_chain
        .iter()
        .map(|der| CertificateDer::from(der.clone()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_pkcs8.to_vec()));
    serve(certs, key)
}

fn serve(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> anyhow::Result<TlsAcceptor> {
    let server = ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the TLS certificate and key do not match")?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}
