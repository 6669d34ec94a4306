//! The self-signed TLS certificate of a relay the daemon hosts on a `wss://` public URL
//! (`--host-relay ADDR --public-url wss://...`, SPEC.md 10.9 "Peer to peer").
//!
//! No authority signs it: contacts accept it by its pin, the SHA-256 of its DER encoding, which
//! the account's signed reachability record carries. So it must stay the same for as long as
//! possible: it is made once (an ECDSA P-256 key; the public URL's host, an IP address or a DNS
//! name, as its subject alternative name) and kept in the relay's state directory,
//! `<data dir>/relay/tls/cert.pem` and `key.pem` (the directory 0700, the files 0600). An
//! ephemeral daemon makes a new one at every start and keeps it in memory only. The key is
//! never logged, and its `Debug` leaves it out.
//!
//! Deleting both files makes a new certificate (and pin) at the next start; the account's
//! record then carries the new pin (`core::account::open`), and contacts that still hold the
//! old one refuse the relay until that record reaches them.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

/// The name of the directory, inside the hosted relay's state directory, that keeps the
/// certificate.
pub const TLS_DIR: &str = "tls";
const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

/// A certificate and its private key.
pub struct RelayCertificate {
    cert_der: Vec<u8>,
    key_pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for RelayCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayCertificate")
            .field("pin", &hex(&self.pin()))
            .field("key", &"<secret>")
            .finish()
    }
}

impl RelayCertificate {
    /// Makes a new self-signed certificate for `host` (an IP address, without brackets, or a
    /// DNS name).
    pub fn generate(host: &str) -> anyhow::Result<Self> {
        Ok(Self::generate_pem(host)?.0)
    }

    /// As [`Self::generate`], with the certificate and key in PEM.
    fn generate_pem(host: &str) -> anyhow::Result<(Self, String, Zeroizing<String>)> {
        let key = rcgen::KeyPair::generate().context("making the relay's TLS key")?;
        let mut params = rcgen::CertificateParams::new(vec![host.to_owned()])
            .with_context(|| format!("a certificate for {host:?}"))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "chatd hosted relay");
        let cert = params
            .self_signed(&key)
            .context("signing the relay's TLS certificate")?;
        let made = Self {
            cert_der: cert.der().to_vec(),
            key_pkcs8: Zeroizing::new(key.serialize_der()),
        };
        Ok((made, cert.pem(), Zeroizing::new(key.serialize_pem())))
    }

    /// The certificate kept in `state_dir` (`tls/cert.pem` and `tls/key.pem`), or a new one
    /// for `host` written there if neither file exists. One file without the other, or a file
    /// that does not parse, is an error that says which files to delete.
    pub fn load_or_generate(state_dir: &Path, host: &str) -> anyhow::Result<Self> {
        let dir = state_dir.join(TLS_DIR);
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => Self::load(&cert_path, &key_path).with_context(|| {
                format!(
                    "the hosted relay's certificate in {}: delete {CERT_FILE} and {KEY_FILE} \
                     there to make a new one (contacts then need the account's new record)",
                    dir.display()
                )
            }),
            (false, false) => {
                let (made, cert_pem, key_pem) = Self::generate_pem(host)?;
                crate::daemon::create_private_dir(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                // The key first: a crash between the two leaves no certificate without its key.
                write_private(&key_path, key_pem.as_bytes())?;
                write_private(&cert_path, cert_pem.as_bytes())?;
                tracing::info!(
                    dir = %dir.display(),
                    pin = %hex(&made.pin()),
                    "made a self-signed certificate for the hosted relay"
                );
                Ok(made)
            }
            (cert, _) => {
                let (there, missing) = if cert {
                    (&cert_path, &key_path)
                } else {
                    (&key_path, &cert_path)
                };
                anyhow::bail!(
                    "the hosted relay's certificate is incomplete: {} is there but {} is not; \
                     delete {} to make a new certificate (contacts then need the account's new \
                     record)",
                    there.display(),
                    missing.display(),
                    there.display()
                )
            }
        }
    }

    fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<Self> {
        let cert = CertificateDer::from_pem_file(cert_path)
            .with_context(|| format!("reading {}", cert_path.display()))?;
        // The file's text is a secret too: read into a buffer that is wiped.
        let key_pem = Zeroizing::new(
            std::fs::read(key_path).with_context(|| format!("reading {}", key_path.display()))?,
        );
        let key = PrivatePkcs8KeyDer::from_pem_slice(&key_pem).map_err(|_| {
            anyhow::anyhow!(
                "{} does not hold a PKCS#8 private key in PEM",
                key_path.display()
            )
        })?;
        Ok(Self {
            cert_der: cert.as_ref().to_vec(),
            key_pkcs8: Zeroizing::new(key.secret_pkcs8_der().to_vec()),
        })
    }

    /// SHA-256 of the certificate's DER encoding: the `tls_pin` of SPEC.md 10.9.
    pub fn pin(&self) -> [u8; 32] {
        protocol::crypto::kdf::sha256(&[&self.cert_der])
    }

    /// The certificate and key as the embedded relay takes them.
    pub fn identity(&self) -> chat_relay::TlsIdentity {
        chat_relay::TlsIdentity {
            cert_chain: vec![self.cert_der.clone()],
            key_pkcs8: self.key_pkcs8.clone(),
        }
    }
}

/// The host of a canonical relay binding (`wss://host[:port]/v1`), as a certificate names it:
/// an IPv6 address without its brackets.
pub fn binding_host(binding: &str) -> Option<&str> {
    let rest = binding.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    if let Some(inner) = authority.strip_prefix('[') {
        return inner.split_once(']').map(|(address, _)| address);
    }
    authority.split(':').next().filter(|host| !host.is_empty())
}

/// Writes `bytes` to `path` readable by the owner only, through a temporary file in the same
/// directory, so a crash leaves either the old file or the new one.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let temporary = PathBuf::from(format!("{}.new", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", temporary.display()))?;
    drop(file);
    std::fs::rename(&temporary, path)
        .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))?;
    // The rename is durable once the directory is.
    #[cfg(unix)]
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_of_a_binding_is_what_the_certificate_names() {
        assert_eq!(binding_host("wss://[fd00::1]:7420/v1"), Some("fd00::1"));
        assert_eq!(binding_host("wss://127.0.0.1:7420/v1"), Some("127.0.0.1"));
        assert_eq!(
            binding_host("wss://relay.example.org/v1"),
            Some("relay.example.org")
        );
        assert_eq!(binding_host("wss://:1/v1"), None);
        assert_eq!(binding_host("no scheme"), None);
    }

    #[test]
    fn the_certificate_is_kept_private_and_the_same_across_loads() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let state = dir.path().join("relay");
        let made = RelayCertificate::load_or_generate(&state, "fd00::1")
            .unwrap_or_else(|e| panic!("{e:#}"));
        let again = RelayCertificate::load_or_generate(&state, "fd00::1")
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(made.pin(), again.pin());
        assert_eq!(made.identity().key_pkcs8, again.identity().key_pkcs8);
        assert!(!format!("{made:?}").contains(&format!("{:?}", made.key_pkcs8.as_slice())));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &Path| {
                std::fs::metadata(path)
                    .map(|m| m.permissions().mode() & 0o777)
                    .unwrap_or_default()
            };
            assert_eq!(mode(&state.join(TLS_DIR)), 0o700);
            assert_eq!(mode(&state.join(TLS_DIR).join(CERT_FILE)), 0o600);
            assert_eq!(mode(&state.join(TLS_DIR).join(KEY_FILE)), 0o600);
        }
        // Without the key, no new certificate is made behind the user's back.
        std::fs::remove_file(state.join(TLS_DIR).join(KEY_FILE)).unwrap_or_else(|e| panic!("{e}"));
        let incomplete = RelayCertificate::load_or_generate(&state, "fd00::1");
        assert!(incomplete.is_err_and(|e| e.to_string().contains("incomplete")));
        // Without either file, a new one is made: a new pin.
        std::fs::remove_file(state.join(TLS_DIR).join(CERT_FILE)).unwrap_or_else(|e| panic!("{e}"));
        let new = RelayCertificate::load_or_generate(&state, "fd00::1")
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_ne!(new.pin(), made.pin());
    }
}
