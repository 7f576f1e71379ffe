//! Checking receipts on the client side: the hash recomputed from the signed body, and the node's
//! signature over it. Used by `tributary receipt verify` and the demo.

use anyhow::Context;

use crate::client::field;

/// Checks a receipt's hash and signature against the node's public key.
pub fn verify_receipt(receipt: &serde_json::Value, node: &serde_json::Value) -> anyhow::Result<bool> {
    let bytes = |name: &str, value: &serde_json::Value| -> anyhow::Result<Vec<u8>> {
        let text = value.as_str().with_context(|| format!("{name} missing"))?;
        (0..text.len())
            .step_by(2)
            .map(|i| {
                u8::from_str_radix(text.get(i..i + 2).unwrap_or("zz"), 16)
                    .with_context(|| format!("{name} is not hex"))
            })
            .collect()
    };
    let id: u64 = field(receipt, "id")?.trim_start_matches("rcpt_").parse()?;
    let prev: [u8; 32] = bytes("prev_hash", &receipt["prev_hash"])?
        .try_into()
        .map_err(|_| anyhow::anyhow!("prev_hash length"))?;
    let hash: [u8; 32] =
        bytes("hash", &receipt["hash"])?.try_into().map_err(|_| anyhow::anyhow!("hash length"))?;
    let signature: [u8; 64] = bytes("signature", &receipt["signature"])?
        .try_into()
        .map_err(|_| anyhow::anyhow!("signature length"))?;
    let key: [u8; 32] =
        bytes("public_key", &node["public_key"])?.try_into().map_err(|_| anyhow::anyhow!("key length"))?;
    let created = receipt["created_at_ms"].as_u64().context("created_at_ms missing")?;
    let recomputed = tributary_ledger::store::receipt_hash(id, created, &prev, &field(receipt, "body")?);
    Ok(recomputed == hash && tributary_server::signing::verify(&key, &hash, &signature))
}
