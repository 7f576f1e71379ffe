//! Node configuration: a TOML file, overridden by `TRIBUTARY_*` environment variables, overridden
//! by command-line flags. clap resolves flag-or-environment; this module layers the file beneath.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tributary_server::{ServerConfig, SignupPolicy};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "tributary-data";

/// The config file's shape. Every key is optional; unknown keys are an error so typos surface.
#[derive(serde::Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub signup: Option<SignupPolicy>,
    pub signups_per_minute: Option<u32>,
    pub log_format: Option<crate::LogFormat>,
    pub upstream_timeout_ms: Option<u64>,
    pub chain_rpc: Option<String>,
    pub chain_contract: Option<String>,
    pub chain_key_file: Option<PathBuf>,
    pub store: Option<String>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else { return Ok(FileConfig::default()) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
    }
}

/// The settings `serve` runs with, after layering.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub data: PathBuf,
    pub listen: SocketAddr,
    pub server: ServerConfig,
    /// Where epoch roots are published, if anywhere.
    pub chain: Option<ChainSettings>,
    pub store: StoreLocation,
}

/// Where the node keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// One SQLite file in the data directory: a single node, nothing to install.
    Embedded,
    /// A PostgreSQL database (a `postgres://` or `postgresql://` URL) that several nodes share;
    /// the data directory keeps this node's replica and keys.
    Postgres(String),
}

impl std::str::FromStr for StoreLocation {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<StoreLocation> {
        if text == "embedded" || text == "sqlite" {
            Ok(StoreLocation::Embedded)
        } else if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(StoreLocation::Postgres(text.to_owned()))
        } else {
            anyhow::bail!("store {text:?} is neither `embedded` nor a postgres:// URL")
        }
    }
}

/// An EVM chain to publish epoch roots to: all three settings, or none.
#[derive(Debug, Clone)]
pub struct ChainSettings {
    pub rpc: String,
    pub contract: tributary_core::EvmAddress,
    /// A file holding the hex private key of the contract's owner.
    pub key_file: PathBuf,
}

impl NodeSettings {
    pub fn resolve(flags: &crate::ServeArgs, file: FileConfig) -> anyhow::Result<NodeSettings> {
        let defaults = ServerConfig::default();
        let listen = match flags.listen.or(file.listen) {
            Some(listen) => listen,
            None => DEFAULT_LISTEN.parse().context("default listen address")?,
        };
        let signups_per_minute =
            flags.signups_per_minute.or(file.signups_per_minute).unwrap_or(defaults.signups_per_minute);
        let chain = match (
            flags.chain_rpc.clone().or(file.chain_rpc),
            flags.chain_contract.clone().or(file.chain_contract),
            flags.chain_key_file.clone().or(file.chain_key_file),
        ) {
            (None, None, None) => None,
            (Some(rpc), Some(contract), Some(key_file)) => Some(ChainSettings {
                rpc,
                contract: contract.parse().with_context(|| format!("chain contract {contract:?}"))?,
                key_file,
            }),
            _ => anyhow::bail!(
                "publishing roots on chain needs all of --chain-rpc, --chain-contract and --chain-key-file"
            ),
        };
        let store = match flags.store.clone().or(file.store) {
            Some(text) => text.parse()?,
            None => StoreLocation::Embedded,
        };
        Ok(NodeSettings {
            chain,
            store,
            data: flags.data.clone().or(file.data).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            listen,
            server: ServerConfig {
                signup: flags.signup.map(Into::into).or(file.signup).unwrap_or(defaults.signup),
                signups_per_minute,
                upstream_timeout_ms: flags
                    .upstream_timeout_ms
                    .or(file.upstream_timeout_ms)
                    .unwrap_or(defaults.upstream_timeout_ms),
                ..defaults
            },
        })
    }
}
