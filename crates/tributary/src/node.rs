//! Running a node: open the store, make sure there is an operator, serve HTTP until SIGTERM or
//! Ctrl-C, then drain in-flight requests and close the store cleanly.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tributary_ledger::{SqliteStore, Store, SystemClock};
use tributary_server::{AppState, ServerConfig};

use crate::config::StoreLocation;

pub const DATABASE_FILE: &str = "tributary.db";
pub const OPERATOR_KEY_FILE: &str = "operator.key";
pub const INDEX_DIR: &str = "index";
pub const NODE_KEY_FILE: &str = "node.key";
/// Where a node on PostgreSQL keeps its replica of the shared log.
pub const REPLICA_DIR: &str = "replicas";

/// A node that is listening.
pub struct RunningNode {
    pub address: SocketAddr,
    pub store: Arc<SqliteStore>,
    /// The operator's key when this start created the operator, else `None`.
    pub new_operator_key: Option<String>,
    listener: TcpListener,
    state: AppState,
    index: Arc<tributary_server::indexing::IndexManager>,
}

/// Opens the node's data directory and binds its listener, without serving yet.
pub async fn start(
    data: &Path,
    listen: SocketAddr,
    store: &StoreLocation,
    mut config: ServerConfig,
    chain: Option<&crate::config::ChainSettings>,
) -> anyhow::Result<RunningNode> {
    let chain = match chain {
        Some(settings) => Some(connect_chain(settings).await?),
        None => None,
    };
    std::fs::create_dir_all(data).with_context(|| format!("creating data directory {}", data.display()))?;
    let node_key = Arc::new(
        tributary_server::signing::NodeKey::load_or_create(&data.join(NODE_KEY_FILE))
            .context("loading the node key")?,
    );
    config.node_public_key = node_key.public_key();
    let store = Arc::new(match store {
        StoreLocation::Embedded => {
            SqliteStore::open_with_signer(&data.join(DATABASE_FILE), Arc::new(SystemClock), Some(node_key))
                .with_context(|| format!("opening the store in {}", data.display()))?
        }
        StoreLocation::Postgres(url) => {
            let name = format!("{listen} pid {}", std::process::id());
            SqliteStore::open_postgres(url, &data.join(REPLICA_DIR), &name, Arc::new(SystemClock), node_key)
                .context("opening the PostgreSQL store")?
        }
    });
    let key_path = data.join(OPERATOR_KEY_FILE);
    if store.operator().await?.is_none() && key_path.exists() {
        anyhow::bail!(
            "{} exists but the database in {} has no operator; it belongs to another node's data. \
             Move it away to let this node create its operator",
            key_path.display(),
            data.display()
        );
    }
    let new_operator_key = match tributary_server::ensure_operator(store.as_ref()).await? {
        Some((_, key)) => {
            write_secret(&key_path, &key)?;
            Some(key)
        }
        None => None,
    };
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let address = listener.local_addr()?;
    let index = tributary_server::indexing::IndexManager::open(
        &data.join(INDEX_DIR),
        store.clone() as Arc<dyn Store>,
    )
    .await
    .context("opening the index")?;
    let state = AppState::with_chain(store.clone() as Arc<dyn Store>, Arc::clone(&index), config, chain);
    Ok(RunningNode { address, store, new_operator_key, listener, state, index })
}

impl RunningNode {
    /// Serves until `shutdown` completes, then finishes in-flight requests and closes the store.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let indexer = self.index.spawn();
        let publisher = {
            let state = self.state.clone();
            tokio::spawn(async move {
                match tributary_server::settlement::publish_pending(&state).await {
                    Ok(Some(epoch)) if epoch.tx_hash.is_some() => {
                        tracing::info!(epoch = epoch.epoch, "published the latest epoch's root on start")
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(error = %error.message, "publishing pending epoch roots on start failed")
                    }
                }
            })
        };
        let app = tributary_server::app(self.state);
        axum::serve(self.listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        indexer.abort();
        publisher.abort();
        self.store.shutdown().await;
        Ok(())
    }
}

/// Connects to the chain epoch roots go to, and checks that the contract is there and that the
/// key owns it, so that a misconfiguration stops the node at start instead of at the first epoch.
async fn connect_chain(
    settings: &crate::config::ChainSettings,
) -> anyhow::Result<tributary_server::settlement::ChainTarget> {
    let key = std::fs::read_to_string(&settings.key_file)
        .with_context(|| format!("reading the chain key file {}", settings.key_file.display()))?;
    let wallet = tributary_settlement::chain::Wallet::new(&settings.rpc, &key)?;
    let chain_id =
        wallet.chain_id().await.with_context(|| format!("reaching the chain at {}", settings.rpc))?;
    let distributor = wallet.distributor(&settings.contract);
    distributor.check_owner().await.context("checking the settlement contract")?;
    tracing::info!(chain_id, contract = %settings.contract, publisher = %wallet.address(), "publishing epoch roots on chain");
    Ok(tributary_server::settlement::ChainTarget { chain_id, distributor })
}

/// Writes a secret readable by its owner only (mode 0600), refusing to overwrite one.
fn write_secret(path: &Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{secret}")?;
    file.sync_all()?;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}

/// A fresh node serving on a free loopback port inside this process: what the demo and the
/// benchmarks drive over HTTP.
pub struct LocalNode {
    pub base: String,
    pub operator_key: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl LocalNode {
    /// Starts a node on the empty data directory `data`.
    pub async fn start(data: &Path) -> anyhow::Result<LocalNode> {
        LocalNode::start_on(data, &StoreLocation::Embedded, None).await
    }

    /// Starts a node on `store`, with the operator key `operator_key` when the store already has
    /// an operator (another node made it).
    pub async fn start_on(
        data: &Path,
        store: &StoreLocation,
        operator_key: Option<String>,
    ) -> anyhow::Result<LocalNode> {
        let loopback = "127.0.0.1:0".parse().context("loopback address")?;
        let node = start(data, loopback, store, ServerConfig::default(), None).await?;
        let base = format!("http://{}", node.address);
        let operator_key = node
            .new_operator_key
            .clone()
            .or(operator_key)
            .context("a fresh store creates its operator; a shared one needs its key")?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(node.serve(async move {
            let _ = stopped.await;
        }));
        Ok(LocalNode { base, operator_key, stop, server })
    }

    /// A client holding the operator's key.
    pub fn operator(&self) -> crate::client::Client {
        crate::client::Client::new(&self.base, Some(self.operator_key.clone()))
    }

    /// Stops serving and waits for the store to close cleanly.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await.context("server task")?
    }
}
