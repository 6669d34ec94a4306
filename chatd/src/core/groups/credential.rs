//! A member's MLS credential is its chatd device certificate (SPEC.md 13.2): a basic credential
//! whose identity is the 174-byte `DeviceCertificate`, and whose leaf signature key is the
//! certificate's device signing key. So a member is a device, and the device key signs for it
//! in MLS too ([`DeviceSigner`]); MLS signatures are domain-separated from every chatd
//! signature by their `"MLS 1.0 "` label.

use openmls::prelude::{BasicCredential, Credential, CredentialType, CredentialWithKey};
use openmls_traits::signatures::{Signer, SignerError};
use openmls_traits::types::SignatureScheme;
use protocol::codec::{Decode, Encode};
use protocol::identity::{DeviceCertificate, LocalDevice, VerifiedDevice};

/// Why a member's credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Not a basic credential.
    #[error("the credential is not a basic credential")]
    NotBasic,
    /// The identity is not a device certificate.
    #[error("the credential is not a chatd device certificate")]
    NotACertificate,
    /// The certificate's signature does not verify under its identity key.
    #[error("the device certificate does not verify")]
    BadCertificate,
    /// The leaf's signature key is not the certificate's device signing key.
    #[error("the member's signature key is not its certified device key")]
    KeyMismatch,
}

/// This device's credential and the key it signs with.
pub fn own_credential(local: &LocalDevice) -> CredentialWithKey {
    let certificate = local.cert.certificate().to_bytes();
    CredentialWithKey {
        credential: BasicCredential::new(certificate).into(),
        signature_key: local.cert.signing_key().as_bytes().to_vec().into(),
    }
}

/// The device a member's credential certifies, checked: the credential is a basic one holding
/// a device certificate that verifies under its identity key, and `signature_key` (the leaf's)
/// is the certified device signing key.
pub fn verify_member(
    credential: &Credential,
    signature_key: &[u8],
) -> Result<VerifiedDevice, CredentialError> {
    if credential.credential_type() != CredentialType::Basic {
        return Err(CredentialError::NotBasic);
    }
    let certificate = DeviceCertificate::from_bytes(credential.serialized_content())
        .map_err(|_| CredentialError::NotACertificate)?;
    let device = certificate
        .verify()
        .map_err(|_| CredentialError::BadCertificate)?;
    if device.signing_key().as_bytes().as_slice() != signature_key {
        return Err(CredentialError::KeyMismatch);
    }
    Ok(device)
}

/// Signs MLS messages with this device's signing key (Ed25519, the suite's signature scheme).
pub struct DeviceSigner<'a>(pub &'a LocalDevice);

impl std::fmt::Debug for DeviceSigner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceSigner")
            .field("device", &self.0.cert.device_id())
            .finish_non_exhaustive()
    }
}

impl Signer for DeviceSigner<'_> {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignerError> {
        Ok(self.0.keys.signing().sign(payload).0.to_vec())
    }

    fn signature_scheme(&self) -> SignatureScheme {
        SignatureScheme::ED25519
    }
}
