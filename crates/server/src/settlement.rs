//! Settlement over HTTP: closing epochs, publishing their roots on chain, and serving the proofs
//! payees claim with. The trees are rebuilt from the store on demand and the latest one is cached.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use tributary_core::{AccountId, Amount, EvmAddress};
use tributary_ledger::store::{Command, EpochRecord, Outcome, Request};
use tributary_settlement::chain::Distributor;
use tributary_settlement::tree::{StandardTree, receipt_leaf};
use tributary_settlement::{PayoutTree, hex32};

use crate::AppState;
use crate::error::ApiResult;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, IdempotencyHeader, OptionalCaller};
use crate::routes::{ListQuery, list_limit, parse_id, unexpected, visible_receipt};

/// Where roots are published, when the node has a chain configured.
#[derive(Clone, Debug)]
pub struct ChainTarget {
    pub chain_id: u64,
    pub distributor: Distributor,
}

/// The node's settlement state: the chain target and the trees last asked for.
#[derive(Default)]
pub struct Settlement {
    chain: Option<ChainTarget>,
    /// One epoch closes at a time, and its root is published before the next closes, so roots
    /// reach the contract in epoch order.
    closing: tokio::sync::Mutex<()>,
    /// Tree builds and dumps (about a second each at 10^6 payees) run one at a time, so that
    /// requests for many old epochs queue up instead of taking every core.
    building: tokio::sync::Mutex<()>,
    payouts: LatestTree<PayoutTree>,
    receipts: LatestTree<StandardTree>,
}

impl Settlement {
    pub fn new(chain: Option<ChainTarget>) -> Settlement {
        Settlement { chain, ..Settlement::default() }
    }

    pub fn chain(&self) -> Option<&ChainTarget> {
        self.chain.as_ref()
    }

    /// `cache`'s tree of `epoch`, built by `build` if it holds another epoch's; one build at a time.
    async fn tree<T>(
        &self,
        cache: &LatestTree<T>,
        epoch: u64,
        build: impl std::future::Future<Output = ApiResult<T>>,
    ) -> ApiResult<Arc<T>> {
        if let Some(tree) = cache.get(epoch) {
            return Ok(tree);
        }
        let _building = self.building.lock().await;
        if let Some(tree) = cache.get(epoch) {
            return Ok(tree);
        }
        let tree = Arc::new(build.await?);
        *cache.0.lock().expect("tree cache lock") = Some((epoch, Arc::clone(&tree)));
        Ok(tree)
    }
}

/// The tree of the epoch last asked for.
struct LatestTree<T>(Mutex<Option<(u64, Arc<T>)>>);

impl<T> Default for LatestTree<T> {
    fn default() -> Self {
        LatestTree(Mutex::new(None))
    }
}

impl<T> LatestTree<T> {
    fn get(&self, epoch: u64) -> Option<Arc<T>> {
        let cached = self.0.lock().expect("tree cache lock");
        cached.as_ref().filter(|(held, _)| *held == epoch).map(|(_, tree)| Arc::clone(tree))
    }
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug)]
pub struct EpochResponse {
    pub epoch: u64,
    /// Root of the payout tree (`0x…`); null while no one has been paid out.
    pub root: Option<String>,
    /// Sum of every payee's cumulative amount.
    #[schema(value_type = String)]
    pub total: Amount,
    /// Distinct payout addresses in the tree.
    pub payees: u64,
    /// Paid out by this epoch, and to how many accounts.
    #[schema(value_type = String)]
    pub settled: Amount,
    pub accounts_settled: u64,
    /// Root of the tree of this epoch's receipts; null when there were none.
    pub receipts_root: Option<String>,
    /// Receipts committed by this epoch: `rcpt_{first}` to `rcpt_{last}`, `receipts` of them.
    pub receipts: u64,
    pub receipts_first: Option<String>,
    pub receipts_last: Option<String>,
    /// The transaction that published the root, once published.
    pub tx_hash: Option<String>,
    /// Why publishing failed, if it did (retry with `POST /v1/epochs/{n}/publish`).
    pub publish_error: Option<String>,
    /// The chain and contract roots are published to, when the node has one.
    pub chain_id: Option<u64>,
    pub contract: Option<String>,
    pub created_at_ms: u64,
}

impl EpochResponse {
    fn new(record: EpochRecord, chain: Option<&ChainTarget>) -> EpochResponse {
        let count = (record.receipts_last + 1).saturating_sub(record.receipts_first);
        let receipt = |id: u64| (count > 0).then(|| crate::inference::receipt_id(id));
        EpochResponse {
            epoch: record.epoch,
            root: record.root.as_ref().map(hex32),
            total: record.total,
            payees: record.payees,
            settled: record.settled,
            accounts_settled: record.accounts_settled,
            receipts_root: record.receipts_root.as_ref().map(hex32),
            receipts: count,
            receipts_first: receipt(record.receipts_first),
            receipts_last: receipt(record.receipts_last),
            tx_hash: record.tx_hash,
            publish_error: record.publish_error,
            chain_id: chain.map(|c| c.chain_id),
            contract: chain.map(|c| c.distributor.address().to_string()),
            created_at_ms: record.created_at_ms,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug)]
pub struct EpochList {
    pub data: Vec<EpochResponse>,
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug)]
pub struct ClaimResponse {
    pub epoch: u64,
    /// The payout address (EIP-55).
    pub address: String,
    /// Everything ever paid out to this address, up to and including this epoch.
    #[schema(value_type = String)]
    pub cumulative_amount: Amount,
    /// Sibling hashes from the leaf to the root, for the contract's `claim`.
    pub proof: Vec<String>,
    pub root: String,
    /// The leaf: keccak256(keccak256(abi.encode(address, cumulative_amount))).
    pub leaf: String,
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug)]
pub struct ReceiptProofResponse {
    pub receipt: String,
    pub epoch: u64,
    /// The receipt's hash as stored and signed (hex, no prefix, as in `GET /v1/receipts/{id}`).
    pub receipt_hash: String,
    /// How the leaf is encoded: OpenZeppelin standard leaf of `(uint256 id, bytes32 receipt_hash)`.
    pub leaf_encoding: Vec<String>,
    pub leaf: String,
    pub proof: Vec<String>,
    pub receipts_root: String,
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug)]
pub struct SettlementLineWire {
    pub epoch: u64,
    pub address: String,
    #[schema(value_type = String)]
    pub amount: Amount,
    /// The ledger transfer that moved the amount out of the account.
    pub transfer: String,
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug)]
pub struct SettlementsResponse {
    #[schema(value_type = String)]
    pub account: AccountId,
    pub payout_address: Option<String>,
    /// Paid out so far, over all epochs.
    #[schema(value_type = String)]
    pub settled: Amount,
    /// Earned and not yet paid out: the next epoch pays it (capped at the balance) once the
    /// account has a payout address.
    #[schema(value_type = String)]
    pub owed: Amount,
    pub lines: Vec<SettlementLineWire>,
}

/// Publishes an epoch's root when the node has a chain and the epoch has a root, and records the
/// outcome either way.
async fn publish(state: &AppState, record: EpochRecord) -> ApiResult<EpochRecord> {
    let (Some(chain), Some(root)) = (state.settlement().chain(), record.root) else {
        return Ok(record);
    };
    let published = chain.distributor.set_root(record.epoch, &root).await;
    state.metrics().root_published(published.is_ok());
    let (tx_hash, error) = match published {
        Ok(mined) => {
            tracing::info!(epoch = record.epoch, tx = %mined.tx_hash, gas = mined.gas_used, "epoch root published");
            (Some(mined.tx_hash), None)
        }
        Err(error) => {
            tracing::warn!(epoch = record.epoch, %error, "publishing the epoch root failed");
            (None, Some(error.to_string()))
        }
    };
    let command = Command::RecordEpochPublication { epoch: record.epoch, tx_hash, error };
    match state.store().execute(command.into()).await? {
        Outcome::EpochPublicationRecorded(_) => {}
        other => return Err(unexpected(other)),
    }
    state.store().epoch(record.epoch).await?.ok_or_else(|| ApiError::internal("a closed epoch vanished"))
}

/// Publishes the latest epoch's root if it never reached the chain (the node stopped between
/// closing the epoch and publishing it, or publishing failed): what a node does when it starts.
/// Older unpublished epochs are superseded by the latest one, whose leaves are cumulative.
pub async fn publish_pending(state: &AppState) -> ApiResult<Option<EpochRecord>> {
    let Some(chain) = state.settlement().chain() else { return Ok(None) };
    let _closing = state.settlement().closing.lock().await;
    let Some(latest) = state.store().epochs(1).await?.into_iter().next() else { return Ok(None) };
    if latest.tx_hash.is_some() || latest.root.is_none() {
        return Ok(None);
    }
    let (on_chain, root) = chain.distributor.current().await.map_err(ApiError::internal)?;
    if on_chain >= latest.epoch {
        if on_chain == latest.epoch && Some(root) == latest.root {
            // Published before the node could record it: find the transaction and record it now.
            let tx_hash = chain.distributor.root_set_tx(latest.epoch).await.map_err(ApiError::internal)?;
            tracing::info!(epoch = latest.epoch, tx = ?tx_hash, "the latest epoch's root was on chain already");
            let command = Command::RecordEpochPublication { epoch: latest.epoch, tx_hash, error: None };
            state.store().execute(command.into()).await?;
            return Ok(state.store().epoch(latest.epoch).await?);
        } else {
            tracing::warn!(
                epoch = latest.epoch,
                on_chain,
                "the contract is at this epoch or later with another root; not publishing"
            );
        }
        return Ok(None);
    }
    publish(state, latest).await.map(Some)
}

/// Closes the current epoch (operator): pays out what every account earned since the last epoch
/// to its payout address, builds the payout and receipts trees, and publishes the payout root on
/// chain when the node has one. With an `Idempotency-Key`, a retry returns the epoch the first
/// request closed (publishing it if that had not happened) instead of closing another.
#[utoipa::path(post, path = "/v1/epochs", params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = EpochResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn close_epoch(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyHeader,
) -> ApiResult<(StatusCode, Json<EpochResponse>)> {
    caller.require_operator()?;
    let _closing = state.settlement().closing.lock().await;
    let request = Request {
        command: Command::CloseEpoch { caller: caller.account },
        idempotency: idempotency.for_request(caller.account, "POST /v1/epochs", &()),
    };
    let closed = match state.store().execute(request).await? {
        Outcome::EpochClosed(record) => record,
        other => return Err(unexpected(other)),
    };
    state.metrics().epoch_closed(closed.epoch);
    // A retry's stored outcome predates publishing: read the epoch as it is now.
    let record = state
        .store()
        .epoch(closed.epoch)
        .await?
        .ok_or_else(|| ApiError::internal("a closed epoch vanished"))?;
    let record = match record.tx_hash {
        Some(_) => record,
        None => publish(&state, record).await?,
    };
    Ok((StatusCode::CREATED, Json(EpochResponse::new(record, state.settlement().chain()))))
}

fn parse_epoch(text: &str) -> ApiResult<u64> {
    text.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
        ApiError::bad_request("invalid_epoch", format!("{text:?} is not an epoch number (1, 2, …)"))
    })
}

async fn epoch_record(state: &AppState, epoch: &str) -> ApiResult<EpochRecord> {
    let number = parse_epoch(epoch)?;
    state.store().epoch(number).await?.ok_or_else(|| ApiError::not_found("epoch", number))
}

/// Publishes a closed epoch's root again after a failure (operator). The contract refuses an
/// epoch that is not after the one it holds.
#[utoipa::path(post, path = "/v1/epochs/{epoch}/publish", params(("epoch" = String, Path)),
    responses((status = 200, body = EpochResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn publish_epoch(
    State(state): State<AppState>,
    caller: Caller,
    Path(epoch): Path<String>,
) -> ApiResult<Json<EpochResponse>> {
    caller.require_operator()?;
    let _closing = state.settlement().closing.lock().await;
    let record = epoch_record(&state, &epoch).await?;
    if state.settlement().chain().is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_chain",
            "this node has no chain configured (--chain-rpc)",
        ));
    }
    if record.root.is_none() {
        return Err(ApiError::new(StatusCode::CONFLICT, "no_root", "this epoch paid no one; it has no root"));
    }
    if record.tx_hash.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "published",
            "this epoch's root is published already",
        ));
    }
    let record = publish(&state, record).await?;
    Ok(Json(EpochResponse::new(record, state.settlement().chain())))
}

/// Closed epochs, newest first.
#[utoipa::path(get, path = "/v1/epochs", params(ListQuery), responses((status = 200, body = EpochList)))]
pub async fn list_epochs(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<EpochList>> {
    let limit = list_limit(query.limit)?;
    let chain = state.settlement().chain();
    let data = state.store().epochs(limit).await?.into_iter().map(|r| EpochResponse::new(r, chain)).collect();
    Ok(Json(EpochList { data }))
}

/// One closed epoch: its roots, totals and publication.
#[utoipa::path(get, path = "/v1/epochs/{epoch}", params(("epoch" = String, Path)),
    responses((status = 200, body = EpochResponse), (status = 404, body = ErrorBody)))]
pub async fn get_epoch(
    State(state): State<AppState>,
    Path(epoch): Path<String>,
) -> ApiResult<Json<EpochResponse>> {
    let record = epoch_record(&state, &epoch).await?;
    Ok(Json(EpochResponse::new(record, state.settlement().chain())))
}

async fn payout_tree(state: &AppState, record: &EpochRecord) -> ApiResult<Arc<PayoutTree>> {
    if record.root.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("epoch {} paid no one", record.epoch),
        ));
    }
    let build = async {
        let values = state.store().epoch_payouts(record.epoch).await?;
        let values = values.into_iter().map(|(address, amount)| (address, amount.0)).collect();
        let tree = tokio::task::spawn_blocking(move || PayoutTree::new(values))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        if Some(tree.root()) != record.root {
            return Err(ApiError::internal(format!(
                "epoch {}'s stored payouts do not give its root",
                record.epoch
            )));
        }
        Ok(tree)
    };
    state.settlement().tree(&state.settlement().payouts, record.epoch, build).await
}

/// The proof a payee claims with: by payout address (anyone), or by account id (the account
/// itself or the operator), which means the account's current payout address.
#[utoipa::path(get, path = "/v1/epochs/{epoch}/claims/{account}", params(("epoch" = String, Path), ("account" = String, Path)),
    responses((status = 200, body = ClaimResponse), (status = 404, body = ErrorBody)))]
pub async fn get_claim(
    State(state): State<AppState>,
    OptionalCaller(caller): OptionalCaller,
    Path((epoch, account)): Path<(String, String)>,
) -> ApiResult<Json<ClaimResponse>> {
    let record = epoch_record(&state, &epoch).await?;
    let address: EvmAddress = if account.starts_with("0x") {
        account.parse().map_err(|error: tributary_core::address::AddressParseError| {
            ApiError::bad_request("invalid_address", error.to_string())
        })?
    } else {
        let id: AccountId = parse_id(&account)?;
        let caller = caller.ok_or_else(|| ApiError::unauthorized("an account's claim needs its API key"))?;
        crate::routes::require_self_or_operator(&caller, id)?;
        let found = state.store().account(id).await?.ok_or_else(|| ApiError::not_found("account", id))?;
        found.payout_address.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_payout_address",
                format!("{id} has no payout address; set one"),
            )
        })?
    };
    let tree = payout_tree(&state, &record).await?;
    let claim = tree.claim(&address).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{address} has no payout in epoch {}", record.epoch),
        )
    })?;
    Ok(Json(ClaimResponse {
        epoch: record.epoch,
        address: address.to_string(),
        cumulative_amount: Amount(claim.cumulative_amount),
        leaf: hex32(&tributary_settlement::tree::payout_leaf(&address, claim.cumulative_amount)),
        proof: claim.proof.iter().map(hex32).collect(),
        root: hex32(&claim.root),
    }))
}

/// The epoch's whole payout tree in OpenZeppelin's `standard-v1` format
/// (`StandardMerkleTree.load` reads it).
#[utoipa::path(get, path = "/v1/epochs/{epoch}/tree", params(("epoch" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn get_tree(
    State(state): State<AppState>,
    Path(epoch): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let record = epoch_record(&state, &epoch).await?;
    let tree = payout_tree(&state, &record).await?;
    let _building = state.settlement().building.lock().await;
    let dump = tokio::task::spawn_blocking(move || tree.dump()).await.map_err(ApiError::internal)?;
    Ok(Json(dump))
}

/// Proves a receipt is part of its epoch's receipts root (whoever may see the receipt).
#[utoipa::path(get, path = "/v1/receipts/{id}/proof", params(("id" = String, Path)),
    responses((status = 200, body = ReceiptProofResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn receipt_proof(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ReceiptProofResponse>> {
    let (receipt, _) = visible_receipt(&state, &caller, &id).await?;
    let Some(epoch) = state.store().receipt_epoch(receipt.id).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_in_epoch",
            format!("{id} is not in a closed epoch yet; it will be in the next one"),
        ));
    };
    let record = state.store().epoch(epoch).await?.ok_or_else(|| ApiError::internal("an epoch vanished"))?;
    let root = record
        .receipts_root
        .ok_or_else(|| ApiError::internal("an epoch with receipts has no receipts root"))?;
    let build = async {
        let hashes = state.store().receipt_hashes(record.receipts_first, record.receipts_last).await?;
        let leaves = hashes.iter().map(|(id, hash)| receipt_leaf(*id, hash)).collect();
        let tree = tokio::task::spawn_blocking(move || StandardTree::new(leaves))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
        if tree.root() != root {
            return Err(ApiError::internal(format!(
                "epoch {epoch}'s receipts do not give its receipts root"
            )));
        }
        Ok(tree)
    };
    let tree = state.settlement().tree(&state.settlement().receipts, epoch, build).await?;
    let leaf = receipt_leaf(receipt.id, &receipt.hash);
    let index =
        tree.tree_index(&leaf).ok_or_else(|| ApiError::internal("a receipt is missing from its tree"))?;
    Ok(Json(ReceiptProofResponse {
        receipt: crate::inference::receipt_id(receipt.id),
        epoch,
        receipt_hash: hex::encode(receipt.hash),
        leaf_encoding: vec!["uint256".into(), "bytes32".into()],
        leaf: hex32(&leaf),
        proof: tree.proof(index).iter().map(hex32).collect(),
        receipts_root: hex32(&root),
    }))
}

/// An account's payouts by epoch and what it is still owed (the account itself or the operator).
#[utoipa::path(get, path = "/v1/accounts/{id}/settlements", params(("id" = String, Path)),
    responses((status = 200, body = SettlementsResponse), (status = 404, body = ErrorBody)))]
pub async fn account_settlements(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<SettlementsResponse>> {
    let id: AccountId = parse_id(&id)?;
    crate::routes::require_self_or_operator(&caller, id)?;
    let account = state.store().account(id).await?.ok_or_else(|| ApiError::not_found("account", id))?;
    let (lines, owed) = state.store().settlements(id).await?;
    let settled = lines.iter().try_fold(0u128, |sum, line| sum.checked_add(line.amount.0));
    Ok(Json(SettlementsResponse {
        account: id,
        payout_address: account.payout_address.map(|a| a.to_string()),
        settled: Amount(settled.ok_or_else(|| ApiError::internal("settled total overflows"))?),
        owed,
        lines: lines
            .into_iter()
            .map(|line| SettlementLineWire {
                epoch: line.epoch,
                address: line.address.to_string(),
                amount: line.amount,
                transfer: line.transfer.to_string(),
            })
            .collect(),
    }))
}
