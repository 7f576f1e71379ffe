//! The HTTP face of a Tributary node: the `/v1` JSON API, health, metrics and the OpenAPI document.
//! This crate owns the wire types and authentication; every business decision is made below it,
//! in the core and the store.

pub mod error;
pub mod extract;
pub mod indexing;
pub mod inference;
pub mod metrics;
pub mod routes;
pub mod settlement;
pub mod signing;
pub mod validators;
pub mod wire;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use tributary_core::AccountId;
use tributary_core::registry::AccountKind;
use tributary_ledger::store::{Command, Outcome, Store, StoreError};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;

/// Named limits on everything a client sends.
pub mod limits {
    /// Largest request body: a batch of contributions.
    pub const BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
    pub const NAME_BYTES_MAX: usize = 200;
    pub const DESCRIPTION_BYTES_MAX: usize = 10_000;
    pub const TITLE_BYTES_MAX: usize = 1_000;
    pub const SOURCE_BYTES_MAX: usize = 2_000;
    pub const URL_BYTES_MAX: usize = 2_000;
    pub const CONTRIBUTION_TEXT_BYTES_MAX: usize = 1024 * 1024;
    pub const BATCH_ITEMS_MAX: usize = 1_000;
    pub const MODEL_DATANETS_MAX: usize = 64;
    pub const LIST_LIMIT_MAX: u32 = 1_000;
    /// Longest text `POST /v1/attribution` takes.
    pub const ATTRIBUTION_TEXT_BYTES_MAX: usize = tributary_attribution::TEXT_BYTES_MAX;
    /// Models kept in the in-memory cache.
    pub const CACHED_MODELS_MAX: usize = 100_000;
    /// Most datanets one attribution may span.
    pub const ATTRIBUTION_DATANETS_MAX: usize = 64;
    /// Addresses remembered by the sign-up rate limiter before old windows are dropped.
    pub const SIGNUP_ADDRESSES_MAX: usize = 100_000;
}

/// Who may open accounts.
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignupPolicy {
    /// Anyone; anonymous sign-ups are rate-limited per client address.
    Open,
    /// Only the operator opens accounts.
    OperatorOnly,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub signup: SignupPolicy,
    /// Anonymous sign-ups allowed per client address per minute.
    pub signups_per_minute: u32,
    /// The node's receipt-signing public key, served at `GET /v1/node`.
    pub node_public_key: [u8; 32],
    /// Longest wait for an upstream model's answer.
    pub upstream_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            signup: SignupPolicy::Open,
            signups_per_minute: 10,
            node_public_key: [0; 32],
            upstream_timeout_ms: inference::UPSTREAM_TIMEOUT_MS,
        }
    }
}

/// Everything a handler can reach.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    /// Models by the name or id they were asked for; models never change once registered.
    models: RwLock<HashMap<String, tributary_core::registry::Model>>,
    /// Each datanet's pool account; it never changes.
    pools: RwLock<HashMap<tributary_core::DatanetId, AccountId>>,
    /// HTTP client for upstream models (connection pool shared by all requests).
    upstream: reqwest::Client,
    index: Arc<indexing::IndexManager>,
    config: ServerConfig,
    /// API key hash to account. Keys never change once issued, so entries never go stale.
    keys: RwLock<HashMap<[u8; 32], (AccountId, AccountKind)>>,
    signups: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    metrics: metrics::Metrics,
    settlement: settlement::Settlement,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, index: Arc<indexing::IndexManager>, config: ServerConfig) -> AppState {
        AppState::with_chain(store, index, config, None)
    }

    /// A node that publishes epoch roots to `chain`.
    pub fn with_chain(
        store: Arc<dyn Store>,
        index: Arc<indexing::IndexManager>,
        config: ServerConfig,
        chain: Option<settlement::ChainTarget>,
    ) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                models: RwLock::new(HashMap::new()),
                pools: RwLock::new(HashMap::new()),
                upstream: reqwest::Client::new(),
                store,
                index,
                config,
                keys: RwLock::new(HashMap::new()),
                signups: Mutex::new(HashMap::new()),
                metrics: metrics::Metrics::default(),
                settlement: settlement::Settlement::new(chain),
            }),
        }
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    pub fn settlement(&self) -> &settlement::Settlement {
        &self.inner.settlement
    }

    pub fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub fn cached_model(&self, name: &str) -> Option<tributary_core::registry::Model> {
        self.inner.models.read().expect("models lock").get(name).cloned()
    }

    pub fn cache_model(&self, name: &str, model: &tributary_core::registry::Model) {
        let mut models = self.inner.models.write().expect("models lock");
        if models.len() < limits::CACHED_MODELS_MAX {
            models.insert(name.to_owned(), model.clone());
        }
    }

    /// A datanet's pool account, cached after the first lookup.
    pub async fn datanet_pool(
        &self,
        datanet: tributary_core::DatanetId,
    ) -> Result<Option<AccountId>, ApiError> {
        if let Some(pool) = self.inner.pools.read().expect("pools lock").get(&datanet) {
            return Ok(Some(*pool));
        }
        let pool = self.store().datanet(datanet).await?.map(|d| d.pool_account);
        if let Some(pool) = pool {
            self.inner.pools.write().expect("pools lock").insert(datanet, pool);
        }
        Ok(pool)
    }

    pub fn upstream(&self) -> &reqwest::Client {
        &self.inner.upstream
    }

    pub fn index(&self) -> &Arc<indexing::IndexManager> {
        &self.inner.index
    }

    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The account an API key belongs to. Keys are 256 random bits, so a fast unsalted hash is as
    /// strong as a slow one here: there is nothing to brute-force.
    pub async fn authenticate(&self, key: &str) -> Result<Option<(AccountId, AccountKind)>, ApiError> {
        let hash = hash_api_key(key);
        if let Some(found) = self.inner.keys.read().expect("keys lock").get(&hash) {
            return Ok(Some(*found));
        }
        let found = self.store().account_by_key_hash(hash).await?;
        if let Some(found) = found {
            self.inner.keys.write().expect("keys lock").insert(hash, found);
        }
        Ok(found)
    }

    /// A fixed one-minute window per client address.
    fn check_signup_rate(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        let Some(ip) = ip else { return Ok(()) };
        let now = Instant::now();
        let window = Duration::from_secs(60);
        let mut signups = self.inner.signups.lock().expect("signups lock");
        if signups.len() >= limits::SIGNUP_ADDRESSES_MAX {
            signups.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = signups.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1 >= self.config().signups_per_minute {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "at most {} sign-ups per minute from one address; wait and retry",
                    self.config().signups_per_minute
                ),
            ));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// BLAKE3 of a text, hex: how receipts name prompts and answers.
pub fn hash_hex(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// Hashes an API key for storage and lookup.
pub fn hash_api_key(key: &str) -> [u8; 32] {
    *blake3::hash(key.as_bytes()).as_bytes()
}

/// A new random API key and its hash.
pub fn new_api_key() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("trb_{}", hex::encode(bytes));
    let hash = hash_api_key(&key);
    (key, hash)
}

/// Creates the operator account if the node has none yet, returning its API key (the only time
/// it exists in clear text).
pub async fn ensure_operator(store: &dyn Store) -> Result<Option<(AccountId, String)>, StoreError> {
    if store.operator().await?.is_some() {
        return Ok(None);
    }
    let (key, api_key_hash) = new_api_key();
    let command = Command::CreateAccount {
        kind: AccountKind::Operator,
        name: "operator".into(),
        payout_address: None,
        api_key_hash,
    };
    match store.execute(command.into()).await {
        Ok(Outcome::AccountCreated(id)) => Ok(Some((id, key))),
        Ok(other) => Err(StoreError::Internal(format!("unexpected outcome {other:?}"))),
        // Another node on the same database made the operator first (nodes started together).
        Err(StoreError::Invalid(_)) if store.operator().await?.is_some() => Ok(None),
        Err(error) => Err(error),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tributary node API",
        description = "Payable AI: metered inference, attribution, splits and settlement."
    ),
    components(schemas(error::ErrorBody))
)]
struct ApiDoc;

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::create_account))
        .routes(routes!(routes::get_account, routes::update_account))
        .routes(routes!(routes::account_transfers))
        .routes(routes!(routes::earnings))
        .routes(routes!(routes::deposit))
        .routes(routes!(routes::transfer))
        .routes(routes!(routes::get_transfer))
        .routes(routes!(routes::hold))
        .routes(routes!(routes::post_hold))
        .routes(routes!(routes::void_hold))
        .routes(routes!(routes::create_datanet, routes::list_datanets))
        .routes(routes!(routes::get_datanet))
        .routes(routes!(routes::refresh_index))
        .routes(routes!(routes::attribution))
        .routes(routes!(routes::add_contribution))
        .routes(routes!(routes::add_contributions_batch))
        .routes(routes!(routes::get_contribution))
        .routes(routes!(validators::set_rules))
        .routes(routes!(validators::stake))
        .routes(routes!(validators::unstake))
        .routes(routes!(validators::list_validators))
        .routes(routes!(validators::vote))
        .routes(routes!(validators::open_dispute))
        .routes(routes!(validators::get_dispute))
        .routes(routes!(validators::dispute_vote))
        .routes(routes!(routes::create_model, routes::list_models))
        .routes(routes!(routes::get_model))
        .routes(routes!(routes::ledger))
        .routes(routes!(routes::node_info))
        .routes(routes!(routes::get_receipt))
        .routes(routes!(settlement::receipt_proof))
        .routes(routes!(settlement::close_epoch, settlement::list_epochs))
        .routes(routes!(settlement::get_epoch))
        .routes(routes!(settlement::publish_epoch))
        .routes(routes!(settlement::get_claim))
        .routes(routes!(settlement::get_tree))
        .routes(routes!(settlement::account_settlements))
        .routes(routes!(inference::replay_receipt))
        .routes(routes!(inference::chat_completions))
        .routes(routes!(inference::completions))
        .split_for_parts();
    let openapi = Arc::new(api.to_pretty_json().expect("the OpenAPI document serializes"));
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let openapi = Arc::clone(&openapi);
                async move { ([(header::CONTENT_TYPE, "application/json")], openapi.as_str().to_owned()) }
            }),
        )
        .route("/metrics", axum::routing::get(metrics_handler))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route; see /openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(limits::BODY_BYTES_MAX))
        .with_state(state)
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    let text = state.inner.metrics.render(state.store().stats());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// Records every request in the metrics and the log.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    state.inner.metrics.record(method.as_str(), &route, status.as_u16(), elapsed);
    if status.is_server_error() {
        tracing::warn!(%method, %route, status = status.as_u16(), elapsed_us = elapsed.as_micros() as u64, "request failed");
    } else {
        tracing::debug!(%method, %route, status = status.as_u16(), elapsed_us = elapsed.as_micros() as u64, "request");
    }
    response
}
