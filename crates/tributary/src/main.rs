//! `tributary`: run a node, talk to one, see a demo, measure the ledger. Argument parsing and wiring
//! only; the work happens in the library crates.

mod bench;
mod bench_cluster;
mod bench_index;
mod bench_inference;
mod bench_ingest;
mod bench_settlement;
mod client;
mod config;
mod demo;
mod index_cli;
mod node;
mod receipts;
mod settle_cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::client::Client;

#[derive(Parser, Debug)]
#[command(
    name = "tributary",
    version,
    about = "A node for payable AI: metered inference, attribution, fair splits."
)]
struct Cli {
    /// Log format for the node's structured logs.
    #[arg(long, global = true, env = "TRIBUTARY_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Commands,
}

#[derive(Clone, Copy, Debug, ValueEnum, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Run a node.
    Serve(ServeArgs),
    /// Start a throwaway node and walk through accounts, a datanet, a model and payments.
    Demo,
    /// Measure the node.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Accounts and API keys.
    Account {
        #[command(flatten)]
        node: NodeArgs,
        #[command(subcommand)]
        action: AccountCommand,
    },
    /// Credit an account with outside money (operator).
    Deposit {
        #[command(flatten)]
        node: NodeArgs,
        account: String,
        amount: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Pay another account from your balance.
    Transfer {
        #[command(flatten)]
        node: NodeArgs,
        to: String,
        amount: String,
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Read one transfer.
    ShowTransfer {
        #[command(flatten)]
        node: NodeArgs,
        id: String,
    },
    /// Place, post or void holds.
    Hold {
        #[command(flatten)]
        node: NodeArgs,
        #[command(subcommand)]
        action: HoldCommand,
    },
    /// Datanets and their contributions.
    Datanet {
        #[command(flatten)]
        node: NodeArgs,
        #[command(subcommand)]
        action: DatanetCommand,
    },
    /// Contribute text files to a datanet (one contribution per file).
    Contribute {
        #[command(flatten)]
        node: NodeArgs,
        datanet: String,
        files: Vec<PathBuf>,
        #[arg(long)]
        source: Option<String>,
    },
    /// Read one contribution.
    Contribution {
        #[command(flatten)]
        node: NodeArgs,
        id: String,
    },
    /// Models.
    Model {
        #[command(flatten)]
        node: NodeArgs,
        #[command(subcommand)]
        action: ModelCommand,
    },
    /// Build, inspect and check the corpus index of a data directory (build needs the node stopped).
    Index {
        #[command(subcommand)]
        action: IndexCommand,
    },
    /// Nodes on PostgreSQL: seed a new node's replica from an existing node's.
    Replica {
        #[command(subcommand)]
        action: ReplicaCommand,
    },
    /// Which contributions a text came from (spans and shares), through a running node.
    Attribute {
        #[command(flatten)]
        node: NodeArgs,
        /// Datanets to attribute over (repeat the flag).
        #[arg(long = "datanet", required_unless_present = "model")]
        datanets: Vec<String>,
        /// A model whose datanets to attribute over.
        #[arg(long, conflicts_with = "datanets")]
        model: Option<String>,
        /// The text's file, or - for standard input.
        file: String,
        /// Print the API's JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Receipts of paid inferences.
    Receipt {
        #[command(flatten)]
        node: NodeArgs,
        #[command(subcommand)]
        action: ReceiptCommand,
    },
    /// Ledger-wide totals (operator).
    Ledger {
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Settlement epochs: close, show, list, the payout tree.
    Epoch {
        #[command(flatten)]
        node: NodeArgs,
        #[command(subcommand)]
        action: settle_cli::EpochCommand,
    },
    /// Print the proof ACCOUNT (an account id or a payout address) claims with; with --send,
    /// send the claim transaction.
    Claim {
        #[command(flatten)]
        node: NodeArgs,
        account: String,
        /// The epoch to claim in (default: the latest; the contract only takes the latest root).
        #[arg(long)]
        epoch: Option<u64>,
        /// Send the claim on chain (needs --chain-rpc and --chain-key-file; any key may pay the
        /// gas, the tokens always go to the payout address).
        #[arg(long, requires = "chain_rpc")]
        send: bool,
        #[arg(long, env = "TRIBUTARY_CHAIN_RPC")]
        chain_rpc: Option<String>,
        #[arg(long, env = "TRIBUTARY_CHAIN_KEY_FILE")]
        chain_key_file: Option<PathBuf>,
        /// The distributor contract (default: the one the node publishes to).
        #[arg(long)]
        contract: Option<String>,
    },
    /// Check a claim or receipt proof (JSON as the node serves it, from FILE or -) offline.
    VerifyProof {
        file: String,
        /// Check against this root (say, read from the contract) instead of the one in the file.
        #[arg(long)]
        root: Option<String>,
    },
    /// Deploy and inspect the settlement contract on an EVM chain.
    Chain {
        #[command(subcommand)]
        action: settle_cli::ChainCommand,
    },
    /// Stake on datanets and review their contributions.
    Validator {
        #[command(flatten)]
        node: NodeArgs,
        #[command(subcommand)]
        action: ValidatorCommand,
    },
    /// Dispute accepted contributions and decide disputes.
    Dispute {
        #[command(flatten)]
        node: NodeArgs,
        #[command(subcommand)]
        action: DisputeCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ValidatorCommand {
    /// Lock AMOUNT of your balance as stake in DATANET (added to your stake there).
    Stake { datanet: String, amount: String },
    /// Release your whole stake in DATANET.
    Unstake { datanet: String },
    /// Approve or reject a pending or flagged contribution.
    Vote {
        contribution: String,
        #[arg(long, conflicts_with = "reject", required_unless_present = "reject")]
        approve: bool,
        #[arg(long)]
        reject: bool,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// A datanet's validators and stakes.
    List { datanet: String },
}

#[derive(Subcommand, Debug)]
enum DisputeCommand {
    /// Dispute an accepted contribution, with an earlier contribution it copies or a validator's claim.
    Open {
        contribution: String,
        #[arg(long)]
        evidence: Option<String>,
        #[arg(long, default_value = "")]
        claim: String,
    },
    /// Vote to uphold or dismiss a dispute (validators of the datanet).
    Vote {
        id: String,
        #[arg(long, conflicts_with = "dismiss", required_unless_present = "dismiss")]
        uphold: bool,
        #[arg(long)]
        dismiss: bool,
    },
    /// Show a dispute, its votes and what it slashed.
    Show { id: String },
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Directory for the database and the operator key.
    #[arg(long, env = "TRIBUTARY_DATA")]
    data: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "TRIBUTARY_LISTEN")]
    listen: Option<SocketAddr>,
    /// TOML config file; flags and TRIBUTARY_* variables override it.
    #[arg(long, env = "TRIBUTARY_CONFIG")]
    config: Option<PathBuf>,
    /// Who may open accounts.
    #[arg(long, env = "TRIBUTARY_SIGNUP", value_enum)]
    signup: Option<SignupArg>,
    /// Anonymous sign-ups allowed per client address per minute.
    #[arg(long, env = "TRIBUTARY_SIGNUPS_PER_MINUTE")]
    signups_per_minute: Option<u32>,
    /// Longest wait for an upstream model's answer, in milliseconds (default 30000).
    #[arg(long, env = "TRIBUTARY_UPSTREAM_TIMEOUT_MS")]
    upstream_timeout_ms: Option<u64>,
    /// JSON-RPC URL of the EVM chain epoch roots are published to (with --chain-contract and
    /// --chain-key-file; without them epochs still close and proofs are still served).
    #[arg(long, env = "TRIBUTARY_CHAIN_RPC")]
    chain_rpc: Option<String>,
    /// Address of the CumulativeDistributor contract (`tributary chain deploy` makes one).
    #[arg(long, env = "TRIBUTARY_CHAIN_CONTRACT")]
    chain_contract: Option<String>,
    /// File holding the hex private key that owns the contract.
    #[arg(long, env = "TRIBUTARY_CHAIN_KEY_FILE")]
    chain_key_file: Option<PathBuf>,
    /// Where the data lives: `embedded` (default: SQLite in the data directory) or a
    /// postgres:// URL shared by several nodes (which must share DATA/node.key too).
    #[arg(long, env = "TRIBUTARY_STORE", hide_env_values = true)]
    store: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SignupArg {
    Open,
    OperatorOnly,
}

impl From<SignupArg> for tributary_server::SignupPolicy {
    fn from(arg: SignupArg) -> Self {
        match arg {
            SignupArg::Open => tributary_server::SignupPolicy::Open,
            SignupArg::OperatorOnly => tributary_server::SignupPolicy::OperatorOnly,
        }
    }
}

#[derive(Args, Debug, Clone)]
struct NodeArgs {
    /// The node's base URL.
    #[arg(long, global = true, env = "TRIBUTARY_NODE", default_value = "http://127.0.0.1:8080")]
    node: String,
    /// Your API key.
    #[arg(long, global = true, env = "TRIBUTARY_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// A file holding your API key (such as DATA/operator.key).
    #[arg(long, global = true, env = "TRIBUTARY_API_KEY_FILE")]
    key_file: Option<PathBuf>,
}

impl NodeArgs {
    fn client(&self) -> anyhow::Result<Client> {
        let key = match (&self.key, &self.key_file) {
            (Some(key), _) => Some(key.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading key file {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        Ok(Client::new(&self.node, key))
    }
}

#[derive(Subcommand, Debug)]
enum AccountCommand {
    /// Open an account; prints its id and API key.
    Create {
        name: String,
        #[arg(long)]
        payout_address: Option<String>,
    },
    /// Show an account's balance.
    Show { id: String },
    /// Set your payout address (an EVM address), or remove it with --clear.
    SetPayout {
        id: String,
        address: Option<String>,
        #[arg(long, conflicts_with = "address")]
        clear: bool,
    },
    /// What an account earned from paid inferences: totals and lines, newest first.
    Earnings {
        id: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Receipt id to page from (the previous page's next_before).
        #[arg(long)]
        before: Option<String>,
    },
    /// List an account's transfers, newest first.
    Transfers {
        id: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Subcommand, Debug)]
enum HoldCommand {
    /// Hold AMOUNT of your money payable to TO.
    Place {
        to: String,
        amount: String,
        #[arg(long, default_value_t = 60_000)]
        timeout_ms: u64,
    },
    /// Pay (part of) a hold you placed.
    Post {
        id: String,
        #[arg(long)]
        amount: Option<String>,
    },
    /// Release a hold.
    Void { id: String },
}

#[derive(Subcommand, Debug)]
enum DatanetCommand {
    Create {
        name: String,
        #[arg(long)]
        license: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    List,
    Show {
        id: String,
    },
    /// Replace a datanet's validation rules (owner): a JSON object, e.g.
    /// '{"policy":"review","approvals_required":2,"bond":"100","min_words":20}'; absent fields take defaults.
    Rules {
        id: String,
        rules: String,
    },
}

#[derive(Subcommand, Debug)]
enum ModelCommand {
    /// Register a model over datanets.
    Create {
        name: String,
        /// Datanet ids the model draws on (repeat the flag).
        #[arg(long = "datanet")]
        datanets: Vec<String>,
        /// infinigram, retrieval, or openai (with --base-url and --upstream-model).
        #[arg(long, default_value = "infinigram")]
        backend: String,
        #[arg(long)]
        base_url: Option<String>,
        #[arg(long)]
        upstream_model: Option<String>,
        #[arg(long, default_value = "0")]
        price_input_per_1k: String,
        #[arg(long, default_value = "0")]
        price_output_per_1k: String,
        #[arg(long, default_value = "0")]
        price_request: String,
        /// Basis points owner,data,validators,protocol summing to 10000.
        #[arg(long, default_value = "5000,3500,1000,500")]
        split: String,
    },
    List,
    Show {
        id: String,
    },
}

#[derive(Subcommand, Debug)]
enum ReceiptCommand {
    /// Show a receipt (as its caller, a payee or the operator).
    Show { id: String },
    /// Check a receipt: its hash, the node's signature, its link to the previous receipt (when
    /// that one is visible to your key), and optionally the answer you received.
    Verify {
        id: String,
        /// A file holding the answer text you received, checked against the receipt's answer hash.
        #[arg(long)]
        answer: Option<PathBuf>,
        /// A file holding the prompt as the model saw it: the node re-runs the inference at the
        /// receipt's index version and checks that the answer and the attribution match.
        #[arg(long)]
        prompt: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum IndexCommand {
    /// Rebuild every datanet's index from its accepted contributions.
    Build {
        #[arg(long, env = "TRIBUTARY_DATA", default_value = config::DEFAULT_DATA_DIR)]
        data: PathBuf,
    },
    /// Each datanet's index: contributions indexed and pending, segments, size, version.
    Status {
        #[arg(long, env = "TRIBUTARY_DATA", default_value = config::DEFAULT_DATA_DIR)]
        data: PathBuf,
    },
    /// Check every byte of every segment against its checksum.
    Verify {
        #[arg(long, env = "TRIBUTARY_DATA", default_value = config::DEFAULT_DATA_DIR)]
        data: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum ReplicaCommand {
    /// Copy a node's replica (safe while it runs) and its receipt key into a new node's data
    /// directory, so that the new node replays only the log after the copy instead of all of it.
    Seed {
        /// The existing node's data directory.
        #[arg(long)]
        from: PathBuf,
        /// The new node's data directory.
        #[arg(long)]
        into: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Durable transfers per second: embedded store at batch sizes 1, 100, 8190, a plain SQLite
    /// loop as the baseline, and transfers through the HTTP API with concurrent clients.
    Ledger(bench::LedgerBenchArgs),
    /// Index build throughput (next to libsais alone), bytes per token, open time, and span
    /// attribution latency for 512-word answers, on a generated corpus.
    Index(bench_index::IndexBenchArgs),
    /// Paid requests per second on the built-in ∞-gram model, and the gateway's own overhead at a
    /// fixed request rate.
    Inference(bench_inference::InferenceBenchArgs),
    /// Epoch payout trees (next to OpenZeppelin's JavaScript library), a whole epoch close through
    /// the embedded store, and gas on a local chain with the cost of per-inference versus epoch
    /// settlement.
    Settlement(bench_settlement::SettlementBenchArgs),
    /// Contribution ingest through the whole validation pipeline (MB/s, contributions/s) into a
    /// datanet of 10^5 contributions, and near-duplicate lookup latency next to a brute-force scan.
    Ingest(bench_ingest::IngestBenchArgs),
    /// The PostgreSQL backend with one and two nodes next to the embedded store: batched
    /// transfers per second through the store, and paid requests per second over HTTP.
    Cluster(bench_cluster::ClusterBenchArgs),
}

fn init_logging(format: Option<LogFormat>) {
    let level = std::env::var("TRIBUTARY_LOG")
        .ok()
        .and_then(|level| level.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    let builder = tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr);
    if format == Some(LogFormat::Json) {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string()));
}

fn split_arg(text: &str) -> anyhow::Result<Value> {
    let parts: Vec<u16> = text
        .split(',')
        .map(|part| part.trim().parse::<u16>())
        .collect::<Result<_, _>>()
        .context("--split takes four integers: owner,data,validators,protocol basis points")?;
    let [owner_bps, data_bps, validators_bps, protocol_bps] = parts[..] else {
        anyhow::bail!("--split takes exactly four integers: owner,data,validators,protocol basis points");
    };
    Ok(
        json!({"owner_bps": owner_bps, "data_bps": data_bps, "validators_bps": validators_bps, "protocol_bps": protocol_bps}),
    )
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Commands::Serve(args) => {
            let file = config::FileConfig::load(args.config.as_deref())?;
            init_logging(cli.log_format.or(file.log_format));
            let settings = config::NodeSettings::resolve(&args, file)?;
            let node = node::start(
                &settings.data,
                settings.listen,
                &settings.store,
                settings.server.clone(),
                settings.chain.as_ref(),
            )
            .await?;
            if let Some(key) = &node.new_operator_key {
                println!(
                    "operator API key (shown once, also saved to {}):",
                    settings.data.join(node::OPERATOR_KEY_FILE).display()
                );
                println!("{key}");
            }
            println!("tributary listening on http://{}", node.address);
            tracing::info!(address = %node.address, data = %settings.data.display(), "node started");
            node.serve(node::shutdown_signal()).await?;
            tracing::info!("node stopped cleanly");
            Ok(())
        }
        Commands::Demo => demo::run().await,
        Commands::Bench { what: BenchCommand::Ledger(args) } => bench::ledger(args).await,
        Commands::Bench { what: BenchCommand::Inference(args) } => bench_inference::inference(args).await,
        Commands::Bench { what: BenchCommand::Settlement(args) } => bench_settlement::settlement(args).await,
        Commands::Bench { what: BenchCommand::Ingest(args) } => bench_ingest::ingest(args).await,
        Commands::Bench { what: BenchCommand::Cluster(args) } => bench_cluster::cluster(args).await,
        Commands::Bench { what: BenchCommand::Index(args) } => {
            tokio::task::spawn_blocking(move || bench_index::index(args)).await?
        }
        Commands::Account { node, action } => {
            let client = node.client()?;
            let value = match action {
                AccountCommand::Create { name, payout_address } => {
                    client
                        .post("/v1/accounts", json!({"name": name, "payout_address": payout_address}))
                        .await?
                }
                AccountCommand::Show { id } => client.get(&format!("/v1/accounts/{id}")).await?,
                AccountCommand::SetPayout { id, address, clear } => {
                    if address.is_none() && !clear {
                        anyhow::bail!("give an address, or --clear to remove it");
                    }
                    client.patch(&format!("/v1/accounts/{id}"), json!({"payout_address": address})).await?
                }
                AccountCommand::Earnings { id, limit, before } => {
                    let page = before.map(|b| format!("&before={b}")).unwrap_or_default();
                    client.get(&format!("/v1/accounts/{id}/earnings?limit={limit}{page}")).await?
                }
                AccountCommand::Transfers { id, limit } => {
                    client.get(&format!("/v1/accounts/{id}/transfers?limit={limit}")).await?
                }
            };
            print_json(&value);
            Ok(())
        }
        Commands::Deposit { node, account, amount, idempotency_key } => {
            let body = json!({"account": account, "amount": amount});
            print_json(&node.client()?.post_keyed("/v1/deposits", body, idempotency_key.as_deref()).await?);
            Ok(())
        }
        Commands::Transfer { node, to, amount, idempotency_key } => {
            let body = json!({"to": to, "amount": amount});
            print_json(&node.client()?.post_keyed("/v1/transfers", body, idempotency_key.as_deref()).await?);
            Ok(())
        }
        Commands::ShowTransfer { node, id } => {
            print_json(&node.client()?.get(&format!("/v1/transfers/{id}")).await?);
            Ok(())
        }
        Commands::Hold { node, action } => {
            let client = node.client()?;
            let value = match action {
                HoldCommand::Place { to, amount, timeout_ms } => {
                    client
                        .post("/v1/holds", json!({"to": to, "amount": amount, "timeout_ms": timeout_ms}))
                        .await?
                }
                HoldCommand::Post { id, amount } => {
                    let body = match amount {
                        Some(amount) => json!({"amount": amount}),
                        None => json!({}),
                    };
                    client.post(&format!("/v1/holds/{id}/post"), body).await?
                }
                HoldCommand::Void { id } => client.post(&format!("/v1/holds/{id}/void"), json!({})).await?,
            };
            print_json(&value);
            Ok(())
        }
        Commands::Datanet { node, action } => {
            let client = node.client()?;
            let value = match action {
                DatanetCommand::Create { name, license, description } => {
                    client
                        .post(
                            "/v1/datanets",
                            json!({"name": name, "license": license, "description": description}),
                        )
                        .await?
                }
                DatanetCommand::List => client.get("/v1/datanets").await?,
                DatanetCommand::Show { id } => client.get(&format!("/v1/datanets/{id}")).await?,
                DatanetCommand::Rules { id, rules } => {
                    let rules: Value = serde_json::from_str(&rules).context("rules must be a JSON object")?;
                    client.put(&format!("/v1/datanets/{id}/rules"), rules).await?
                }
            };
            print_json(&value);
            Ok(())
        }
        Commands::Contribute { node, datanet, files, source } => {
            if files.is_empty() {
                anyhow::bail!("name at least one file to contribute");
            }
            let mut items = Vec::new();
            for path in &files {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("reading {} (contributions must be UTF-8 text)", path.display())
                })?;
                let title = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                items.push(json!({"title": title, "text": text, "source": source}));
            }
            let client = node.client()?;
            for chunk in items.chunks(tributary_server::limits::BATCH_ITEMS_MAX) {
                print_json(
                    &client
                        .post(
                            &format!("/v1/datanets/{datanet}/contributions/batch"),
                            Value::Array(chunk.to_vec()),
                        )
                        .await?,
                );
            }
            Ok(())
        }
        Commands::Validator { node, action } => {
            let client = node.client()?;
            let value = match action {
                ValidatorCommand::Stake { datanet, amount } => {
                    client.post(&format!("/v1/datanets/{datanet}/stake"), json!({"amount": amount})).await?
                }
                ValidatorCommand::Unstake { datanet } => {
                    client.post(&format!("/v1/datanets/{datanet}/unstake"), json!({})).await?
                }
                ValidatorCommand::Vote { contribution, approve, reject: _, reason } => {
                    client
                        .post(
                            &format!("/v1/contributions/{contribution}/votes"),
                            json!({"approve": approve, "reason": reason}),
                        )
                        .await?
                }
                ValidatorCommand::List { datanet } => {
                    client.get(&format!("/v1/datanets/{datanet}/validators")).await?
                }
            };
            print_json(&value);
            Ok(())
        }
        Commands::Dispute { node, action } => {
            let client = node.client()?;
            let value = match action {
                DisputeCommand::Open { contribution, evidence, claim } => {
                    client
                        .post(
                            "/v1/disputes",
                            json!({"contribution": contribution, "evidence": evidence, "claim": claim}),
                        )
                        .await?
                }
                DisputeCommand::Vote { id, uphold, dismiss: _ } => {
                    client.post(&format!("/v1/disputes/{id}/votes"), json!({"uphold": uphold})).await?
                }
                DisputeCommand::Show { id } => client.get(&format!("/v1/disputes/{id}")).await?,
            };
            print_json(&value);
            Ok(())
        }
        Commands::Contribution { node, id } => {
            print_json(&node.client()?.get(&format!("/v1/contributions/{id}")).await?);
            Ok(())
        }
        Commands::Model { node, action } => {
            let client = node.client()?;
            let value = match action {
                ModelCommand::Create {
                    name,
                    datanets,
                    backend,
                    base_url,
                    upstream_model,
                    price_input_per_1k,
                    price_output_per_1k,
                    price_request,
                    split,
                } => {
                    let backend = match backend.as_str() {
                        "openai" => json!({"kind": "openai", "base_url": base_url, "model": upstream_model}),
                        kind => json!({"kind": kind}),
                    };
                    let body = json!({
                        "name": name,
                        "datanets": datanets,
                        "backend": backend,
                        "price": {"input_per_1k": price_input_per_1k, "output_per_1k": price_output_per_1k, "request": price_request},
                        "split": split_arg(&split)?,
                    });
                    client.post("/v1/models", body).await?
                }
                ModelCommand::List => client.get("/v1/models").await?,
                ModelCommand::Show { id } => client.get(&format!("/v1/models/{id}")).await?,
            };
            print_json(&value);
            Ok(())
        }
        Commands::Index { action } => match action {
            IndexCommand::Build { data } => index_cli::build(&data).await,
            IndexCommand::Status { data } => index_cli::status(&data).await,
            IndexCommand::Verify { data } => index_cli::verify(&data).await,
        },
        Commands::Replica { action: ReplicaCommand::Seed { from, into } } => seed_replica(&from, &into),
        Commands::Attribute { node, datanets, model, file, json } => {
            index_cli::attribute(&node.client()?, &datanets, model.as_deref(), &file, json).await
        }
        Commands::Receipt { node, action } => {
            let client = node.client()?;
            match action {
                ReceiptCommand::Show { id } => {
                    print_json(&client.get(&format!("/v1/receipts/{id}")).await?);
                    Ok(())
                }
                ReceiptCommand::Verify { id, answer, prompt } => {
                    let receipt = client.get(&format!("/v1/receipts/{id}")).await?;
                    let node_info = client.get("/v1/node").await?;
                    let signed = receipts::verify_receipt(&receipt, &node_info)?;
                    println!("hash and signature: {}", if signed { "valid" } else { "INVALID" });
                    let number: u64 =
                        id.trim_start_matches("rcpt_").parse().context("receipt ids look like rcpt_12")?;
                    let chain = if number == 1 {
                        let first = receipt["prev_hash"].as_str() == Some(&"0".repeat(64));
                        println!(
                            "chain: the first receipt, prev_hash {}",
                            if first { "is zero as it must be" } else { "is NOT zero" }
                        );
                        first
                    } else {
                        match client.get(&format!("/v1/receipts/rcpt_{}", number - 1)).await {
                            Ok(previous) => {
                                let linked = previous["hash"] == receipt["prev_hash"];
                                println!(
                                    "chain: prev_hash {} the hash of rcpt_{}",
                                    if linked { "matches" } else { "does NOT match" },
                                    number - 1
                                );
                                linked
                            }
                            Err(_) => {
                                println!(
                                    "chain: rcpt_{} is not visible to this key; not checked",
                                    number - 1
                                );
                                true
                            }
                        }
                    };
                    let read = |path: &PathBuf| -> anyhow::Result<String> {
                        let text = std::fs::read_to_string(path)
                            .with_context(|| format!("reading {}", path.display()))?;
                        Ok(text.strip_suffix('\n').unwrap_or(&text).to_owned())
                    };
                    let replayed = match &prompt {
                        Some(path) => {
                            let mut body = json!({"prompt": read(path)?});
                            if let Some(answer) = &answer {
                                body["answer"] = json!(read(answer)?);
                            }
                            let replay = client.post(&format!("/v1/receipts/{id}/replay"), body).await?;
                            let (answer_ok, attribution_ok) = (
                                replay["answer_matches"] == json!(true),
                                replay["attribution_matches"] == json!(true),
                            );
                            println!(
                                "replay at index version {}: answer {}, attribution {}",
                                replay["index_version"].as_str().unwrap_or("?"),
                                if answer_ok { "matches" } else { "does NOT match" },
                                if attribution_ok { "matches" } else { "does NOT match" }
                            );
                            answer_ok && attribution_ok
                        }
                        None => true,
                    };
                    let answered = match answer {
                        Some(path) => {
                            let text = std::fs::read_to_string(&path)
                                .with_context(|| format!("reading {}", path.display()))?;
                            let text = text.strip_suffix('\n').unwrap_or(&text);
                            let matches = receipt["answer_hash"].as_str()
                                == Some(tributary_server::hash_hex(text).as_str());
                            println!(
                                "answer: {}",
                                if matches { "matches the receipt" } else { "does NOT match the receipt" }
                            );
                            matches
                        }
                        None => true,
                    };
                    anyhow::ensure!(
                        signed && chain && answered && replayed,
                        "receipt {id} failed verification"
                    );
                    Ok(())
                }
            }
        }
        Commands::Ledger { node } => {
            print_json(&node.client()?.get("/v1/ledger").await?);
            Ok(())
        }
        Commands::Epoch { node, action } => {
            print_json(&settle_cli::epoch(&node.client()?, action).await?);
            Ok(())
        }
        Commands::Claim { node, account, epoch, send, chain_rpc, chain_key_file, contract } => {
            let chain = match (send, chain_rpc, chain_key_file) {
                (false, _, _) => None,
                (true, Some(chain_rpc), Some(chain_key_file)) => {
                    Some(settle_cli::ChainArgs { chain_rpc, chain_key_file })
                }
                (true, _, _) => anyhow::bail!("--send needs --chain-rpc and --chain-key-file"),
            };
            let value =
                settle_cli::claim(&node.client()?, &account, epoch, chain.as_ref(), contract.as_deref())
                    .await?;
            print_json(&value);
            Ok(())
        }
        Commands::VerifyProof { file, root } => {
            anyhow::ensure!(settle_cli::verify_proof(&file, root.as_deref())?, "the proof does not verify");
            Ok(())
        }
        Commands::Chain { action } => {
            print_json(&settle_cli::chain(action).await?);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            // 3: the node answered with an error; 1: anything else.
            if error.downcast_ref::<client::ApiFailure>().is_some() {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// `tributary replica seed`: the replica and, unless the new node has one, the receipt key.
fn seed_replica(from: &std::path::Path, into: &std::path::Path) -> anyhow::Result<()> {
    let (path, through) =
        tributary_ledger::seed_replica(&from.join(node::REPLICA_DIR), &into.join(node::REPLICA_DIR))?;
    let key = into.join(node::NODE_KEY_FILE);
    if !key.exists() {
        std::fs::copy(from.join(node::NODE_KEY_FILE), &key)
            .with_context(|| format!("copying {}", from.join(node::NODE_KEY_FILE).display()))?;
    }
    println!("seeded {} through log batch {through}; start the node with the same --store", path.display());
    Ok(())
}
