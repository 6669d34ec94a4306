//! ML-KEM-1024 (FIPS 203) key encapsulation, the post-quantum half of PQXDH.

use std::fmt;

use ml_kem::array::Array;
use ml_kem::{Decapsulate, Encapsulate, KeyExport, MlKem1024};
use zeroize::{Zeroize, Zeroizing};

use super::Rng;

/// Length of an ML-KEM-1024 encapsulation (public) key.
pub const KEM_PUBLIC_LEN: usize = 1568;
/// Length of an ML-KEM-1024 ciphertext.
pub const KEM_CIPHERTEXT_LEN: usize = 1568;
/// Length of the shared secret.
pub const KEM_SHARED_LEN: usize = 32;
/// Length of the FIPS 203 seed `d || z` a decapsulation key is stored as.
pub const KEM_SEED_LEN: usize = 64;

type DecapsulationKey = ml_kem::DecapsulationKey<MlKem1024>;
type EncapsulationKey = ml_kem::EncapsulationKey<MlKem1024>;

/// Why an ML-KEM operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KemError {
    /// The encapsulation key fails the FIPS 203 section 7.2 modulus check.
    #[error("ML-KEM-1024 public key is invalid")]
    InvalidKey,
}

/// An ML-KEM-1024 encapsulation key that passed the FIPS 203 input check.
#[derive(Clone, PartialEq, Eq)]
pub struct KemPublicKey {
    key: Box<EncapsulationKey>,
    bytes: Box<[u8; KEM_PUBLIC_LEN]>,
}

impl KemPublicKey {
    /// Parses and validates an encapsulation key.
    pub fn from_bytes(bytes: &[u8; KEM_PUBLIC_LEN]) -> Result<Self, KemError> {
        let key = EncapsulationKey::new(&Array::from(*bytes)).map_err(|_| KemError::InvalidKey)?;
        Ok(Self {
            key: Box::new(key),
            bytes: Box::new(*bytes),
        })
    }

    /// The 1568-byte encoding.
    pub fn as_bytes(&self) -> &[u8; KEM_PUBLIC_LEN] {
        &self.bytes
    }

    /// Encapsulates a fresh shared secret to this key.
    pub fn encapsulate(
        &self,
        rng: &mut (impl Rng + ?Sized),
    ) -> (
        Box<[u8; KEM_CIPHERTEXT_LEN]>,
        Zeroizing<[u8; KEM_SHARED_LEN]>,
    ) {
        let (ct, mut ss) = self.key.encapsulate_with_rng(rng);
        let shared = Zeroizing::new(ss.0);
        ss.0.zeroize();
        (Box::new(ct.0), shared)
    }
}

impl fmt::Debug for KemPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KemPublicKey({})",
            crate::hex_prefix(self.bytes.as_slice())
        )
    }
}

/// An ML-KEM-1024 decapsulation key, kept as its 64-byte seed plus the expanded form.
#[derive(Clone)]
pub struct KemSecret {
    seed: Zeroizing<[u8; KEM_SEED_LEN]>,
    key: Box<DecapsulationKey>,
    public: KemPublicKey,
}

impl KemSecret {
    /// Generates a fresh key pair.
    pub fn generate(rng: &mut (impl Rng + ?Sized)) -> Self {
        let seed = Zeroizing::new(super::random_array::<KEM_SEED_LEN>(rng));
        Self::from_seed(&seed)
    }

    /// Expands a key pair from its FIPS 203 seed `d || z` (deterministic).
    pub fn from_seed(seed: &[u8; KEM_SEED_LEN]) -> Self {
        let key = DecapsulationKey::from_seed(Array::from(*seed));
        let ek = key.encapsulation_key();
        let bytes: [u8; KEM_PUBLIC_LEN] = ek.to_bytes().0;
        let public = KemPublicKey {
            key: Box::new(ek.clone()),
            bytes: Box::new(bytes),
        };
        Self {
            seed: Zeroizing::new(*seed),
            key: Box::new(key),
            public,
        }
    }

    /// The seed, for encrypted pickles only.
    pub fn seed(&self) -> &[u8; KEM_SEED_LEN] {
        &self.seed
    }

    /// The encapsulation key.
    pub fn public_key(&self) -> &KemPublicKey {
        &self.public
    }

    /// Decapsulates. ML-KEM uses implicit rejection: a forged ciphertext yields an unrelated
    /// pseudorandom secret rather than an error, and the AEAD that uses it then fails.
    pub fn decapsulate(
        &self,
        ciphertext: &[u8; KEM_CIPHERTEXT_LEN],
    ) -> Zeroizing<[u8; KEM_SHARED_LEN]> {
        let mut ss = self.key.decapsulate(&Array::from(*ciphertext));
        let shared = Zeroizing::new(ss.0);
        ss.0.zeroize();
        shared
    }
}

impl fmt::Debug for KemSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KemSecret")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}
