//! `tributary epoch`, `claim`, `verify-proof` and `chain`: settlement from the command line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tributary_core::EvmAddress;
use tributary_settlement::chain::Wallet;
use tributary_settlement::tree::{payout_leaf, receipt_leaf, verify};
use tributary_settlement::{Claim, parse_hex32};

use crate::client::Client;

#[derive(Subcommand, Debug)]
pub enum EpochCommand {
    /// Close the current epoch (operator): pay out earnings, build the trees, publish the root.
    Close,
    /// Show one epoch, or the latest.
    Show { epoch: Option<u64> },
    /// List closed epochs, newest first.
    List {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Print an epoch's whole payout tree in OpenZeppelin's standard-v1 format.
    Tree { epoch: u64 },
    /// Publish a closed epoch's root again after a failure (operator).
    Publish { epoch: u64 },
}

/// The chain a command talks to directly.
#[derive(Args, Debug, Clone)]
pub struct ChainArgs {
    /// The chain's JSON-RPC URL.
    #[arg(long, env = "TRIBUTARY_CHAIN_RPC")]
    pub chain_rpc: String,
    /// A file holding the hex private key that signs the transactions.
    #[arg(long, env = "TRIBUTARY_CHAIN_KEY_FILE")]
    pub chain_key_file: PathBuf,
}

impl ChainArgs {
    fn wallet(&self) -> anyhow::Result<Wallet> {
        let key = std::fs::read_to_string(&self.chain_key_file)
            .with_context(|| format!("reading {}", self.chain_key_file.display()))?;
        Ok(Wallet::new(&self.chain_rpc, &key)?)
    }
}

#[derive(Subcommand, Debug)]
pub enum ChainCommand {
    /// Deploy the CumulativeDistributor (and, with --test-token, a test ERC-20 for it to pay).
    Deploy {
        #[command(flatten)]
        chain: ChainArgs,
        /// The ERC-20 the contract pays out.
        #[arg(long, required_unless_present = "test_token")]
        token: Option<String>,
        /// Deploy the repository's TestToken first and pay in it (local chains and demos).
        #[arg(long, conflicts_with = "token")]
        test_token: bool,
        /// Who may publish roots; defaults to the deploying key's address.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Mint test tokens (TestToken only; the deployer mints).
    Mint {
        #[command(flatten)]
        chain: ChainArgs,
        #[arg(long)]
        token: String,
        #[arg(long)]
        to: String,
        amount: String,
    },
    /// The contract's current epoch, root, token and funds, and what an address has claimed.
    Status {
        #[arg(long, env = "TRIBUTARY_CHAIN_RPC")]
        chain_rpc: String,
        #[arg(long)]
        contract: String,
        /// Also show what this address has claimed and holds.
        #[arg(long)]
        address: Option<String>,
    },
}

fn address(text: &str) -> anyhow::Result<EvmAddress> {
    text.parse().with_context(|| format!("{text:?} is not an EVM address"))
}

pub async fn epoch(client: &Client, action: EpochCommand) -> anyhow::Result<Value> {
    match action {
        EpochCommand::Close => client.post("/v1/epochs", json!({})).await,
        EpochCommand::Show { epoch: Some(epoch) } => client.get(&format!("/v1/epochs/{epoch}")).await,
        EpochCommand::Show { epoch: None } => {
            let list = client.get("/v1/epochs?limit=1").await?;
            list["data"].get(0).cloned().context("no epoch has closed yet")
        }
        EpochCommand::List { limit } => client.get(&format!("/v1/epochs?limit={limit}")).await,
        EpochCommand::Tree { epoch } => client.get(&format!("/v1/epochs/{epoch}/tree")).await,
        EpochCommand::Publish { epoch } => {
            client.post(&format!("/v1/epochs/{epoch}/publish"), json!({})).await
        }
    }
}

/// The `proof` array of a claim or receipt proof as the node serves it.
fn parse_proof(value: &Value) -> anyhow::Result<Vec<tributary_settlement::Hash>> {
    value["proof"]
        .as_array()
        .context("the JSON has no proof array")?
        .iter()
        .map(|hash| hash.as_str().and_then(parse_hex32).context("a proof entry is not 0x and 64 hex digits"))
        .collect()
}

/// A claim as the node serves it, parsed and checked.
pub fn parse_claim(value: &Value) -> anyhow::Result<Claim> {
    let text = |name: &str| value[name].as_str().with_context(|| format!("the claim has no {name}"));
    let proof = parse_proof(value)?;
    Ok(Claim {
        address: address(text("address")?)?,
        cumulative_amount: text("cumulative_amount")?
            .parse()
            .context("cumulative_amount is not an integer")?,
        proof,
        root: parse_hex32(text("root")?).context("root is not 0x and 64 hex digits")?,
    })
}

/// Fetches the proof for ACCOUNT (an account id or an address) and prints it, or sends the claim.
pub async fn claim(
    client: &Client,
    account: &str,
    epoch: Option<u64>,
    send: Option<&ChainArgs>,
    contract: Option<&str>,
) -> anyhow::Result<Value> {
    let epoch_record = match epoch {
        Some(epoch) => client.get(&format!("/v1/epochs/{epoch}")).await?,
        None => {
            let list = client.get("/v1/epochs?limit=1").await?;
            list["data"].get(0).cloned().context("no epoch has closed yet")?
        }
    };
    let epoch = epoch_record["epoch"].as_u64().context("the node's epoch has no number")?;
    let served = client.get(&format!("/v1/epochs/{epoch}/claims/{account}")).await?;
    let claim = parse_claim(&served)?;
    anyhow::ensure!(
        verify(&claim.root, &payout_leaf(&claim.address, claim.cumulative_amount), &claim.proof),
        "the node served a proof that does not verify against its own root; do not use it"
    );
    let Some(chain) = send else { return Ok(served) };
    let contract = match contract.or(epoch_record["contract"].as_str()) {
        Some(contract) => address(contract)?,
        None => anyhow::bail!("the node names no contract; pass --contract"),
    };
    let distributor = chain.wallet()?.distributor(&contract);
    let before = distributor.claimed(&claim.address).await?;
    let mined = distributor.claim(&claim).await?;
    Ok(json!({
        "epoch": epoch,
        "address": claim.address.to_string(),
        "cumulative_amount": claim.cumulative_amount.to_string(),
        "paid": (claim.cumulative_amount - before).to_string(),
        "tx_hash": mined.tx_hash,
        "gas_used": mined.gas_used,
    }))
}

/// Checks a proof offline: a claim (`address`, `cumulative_amount`, `proof`, `root`) or a receipt
/// proof (`receipt`, `receipt_hash`, `proof`, `receipts_root`), as the node serves them.
pub fn verify_proof(file: &str, root: Option<&str>) -> anyhow::Result<bool> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(Path::new(file)).with_context(|| format!("reading {file}"))?
    };
    let value: Value = serde_json::from_str(&text).context("the proof is not JSON")?;
    let expected_root =
        root.map(|r| parse_hex32(r).context("--root is not 0x and 64 hex digits")).transpose()?;
    let valid = if value.get("receipts_root").is_some() {
        let id: u64 = value["receipt"]
            .as_str()
            .and_then(|r| r.strip_prefix("rcpt_"))
            .and_then(|n| n.parse().ok())
            .context("receipt is not rcpt_N")?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(value["receipt_hash"].as_str().context("no receipt_hash")?, &mut hash)
            .context("receipt_hash is not 64 hex digits")?;
        let proof = parse_proof(&value)?;
        let served_root =
            value["receipts_root"].as_str().and_then(parse_hex32).context("bad receipts_root")?;
        let root = expected_root.unwrap_or(served_root);
        let valid = verify(&root, &receipt_leaf(id, &hash), &proof);
        println!(
            "receipt rcpt_{id} in receipts root {}: {}",
            tributary_settlement::hex32(&root),
            verdict(valid)
        );
        valid
    } else {
        let claim = parse_claim(&value)?;
        let root = expected_root.unwrap_or(claim.root);
        let valid = verify(&root, &payout_leaf(&claim.address, claim.cumulative_amount), &claim.proof);
        println!(
            "{} with cumulative amount {} in root {}: {}",
            claim.address,
            claim.cumulative_amount,
            tributary_settlement::hex32(&root),
            verdict(valid)
        );
        valid
    };
    Ok(valid)
}

fn verdict(valid: bool) -> &'static str {
    if valid { "valid" } else { "INVALID" }
}

pub async fn chain(action: ChainCommand) -> anyhow::Result<Value> {
    match action {
        ChainCommand::Deploy { chain, token, test_token, owner } => {
            let wallet = chain.wallet()?;
            let token = match (token, test_token) {
                (Some(token), _) => address(&token)?,
                (None, true) => wallet.deploy_test_token().await?,
                (None, false) => anyhow::bail!("pass --token ADDRESS or --test-token"),
            };
            let owner = owner.as_deref().map(address).transpose()?.unwrap_or(wallet.address());
            let contract = wallet.deploy_distributor(&token, &owner).await?;
            Ok(json!({
                "chain_id": wallet.chain_id().await?,
                "contract": contract.to_string(),
                "token": token.to_string(),
                "owner": owner.to_string(),
            }))
        }
        ChainCommand::Mint { chain, token, to, amount } => {
            let amount: u128 =
                amount.parse().context("the amount is an integer in the token's smallest units")?;
            let mined = chain.wallet()?.mint_test_token(&address(&token)?, &address(&to)?, amount).await?;
            Ok(json!({"tx_hash": mined.tx_hash}))
        }
        ChainCommand::Status { chain_rpc, contract, address: who } => {
            // Reading needs no key; any well-formed key will do for the provider.
            let wallet = Wallet::new(&chain_rpc, &format!("0x{}", "11".repeat(32)))?;
            let distributor = wallet.distributor(&address(&contract)?);
            let (epoch, root) = distributor.current().await?;
            let token = distributor.token().await?;
            let funds = wallet.token_balance(&token, &distributor.address()).await?;
            let mut status = json!({
                "chain_id": wallet.chain_id().await?,
                "contract": distributor.address().to_string(),
                "epoch": epoch,
                "root": tributary_settlement::hex32(&root),
                "token": token.to_string(),
                "funds": funds.to_string(),
            });
            if let Some(who) = who {
                let who = address(&who)?;
                status["claimed"] = json!(distributor.claimed(&who).await?.to_string());
                status["balance"] = json!(wallet.token_balance(&token, &who).await?.to_string());
            }
            Ok(status)
        }
    }
}
