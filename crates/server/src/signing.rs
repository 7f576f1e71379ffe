//! The node's ed25519 key: created on first start (DATA/node.key, mode 0600), it signs every
//! receipt's hash; its public key is served at `GET /v1/node` so anyone can check receipts.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::{Signer, Verifier};
use rand::RngCore;
use tributary_ledger::store::ReceiptSigner;

pub struct NodeKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey({})", self.public_key_hex())
    }
}

impl NodeKey {
    /// Loads the key at `path`, or creates it there (readable by its owner only) if absent.
    pub fn load_or_create(path: &Path) -> std::io::Result<NodeKey> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes =
                    hex::decode(text.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(
                        || std::io::Error::other(format!("{} is not a 32-byte hex key", path.display())),
                    )?;
                Ok(NodeKey(ed25519_dalek::SigningKey::from_bytes(&bytes)))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                use std::os::unix::fs::OpenOptionsExt;
                let mut seed = [0u8; 32];
                rand::rng().fill_bytes(&mut seed);
                let mut file =
                    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
                writeln!(file, "{}", hex::encode(seed))?;
                file.sync_all()?;
                Ok(NodeKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
            }
            Err(error) => Err(error),
        }
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key())
    }
}

impl ReceiptSigner for NodeKey {
    fn sign(&self, hash: &[u8; 32]) -> [u8; 64] {
        self.0.sign(hash).to_bytes()
    }
}

/// Checks a receipt signature against a node's public key.
pub fn verify(public_key: &[u8; 32], hash: &[u8; 32], signature: &[u8; 64]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else { return false };
    key.verify(hash, &ed25519_dalek::Signature::from_bytes(signature)).is_ok()
}
