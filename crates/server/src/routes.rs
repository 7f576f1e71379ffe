//! The route handlers of `/v1`. Each converts wire types to a store command, lets the store decide,
//! and converts the outcome back. Authorisation is decided here, from the authenticated caller:
//! no route takes the account to debit from the request body.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tributary_core::money::{Price, SplitPolicy};
use tributary_core::registry::{AccountKind, ModelSpec};
use tributary_core::{AccountId, ContributionId, DatanetId, EvmAddress, ModelId, TransferId};
use tributary_ledger::store::{Command, NewContribution, Outcome, Request, StoreError};

use crate::error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
use crate::extract::{ApiJson, Caller, ClientIp, IdempotencyHeader, OptionalCaller};
use crate::wire::*;
use crate::{AppState, SignupPolicy, limits};

pub fn parse_id<T: std::str::FromStr<Err = tributary_core::ids::IdParseError>>(text: &str) -> ApiResult<T> {
    text.parse::<T>().map_err(|error| ApiError::bad_request("invalid_id", error.to_string()))
}

fn check_text(field: &str, value: &str, max_bytes: usize, required: bool) -> ApiResult<()> {
    if required && value.trim().is_empty() {
        return Err(ApiError::bad_request("invalid_field", format!("{field} must not be empty")));
    }
    if value.len() > max_bytes {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("{field} is longer than {max_bytes} bytes"),
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(ApiError::bad_request("invalid_field", format!("{field} contains control characters")));
    }
    Ok(())
}

fn parse_address(text: Option<&str>) -> ApiResult<Option<EvmAddress>> {
    text.map(|a| {
        a.parse::<EvmAddress>().map_err(|e| ApiError::bad_request("invalid_payout_address", e.to_string()))
    })
    .transpose()
}

fn created(id: impl ToString) -> (StatusCode, Json<CreatedResponse>) {
    (StatusCode::CREATED, Json(CreatedResponse { id: id.to_string() }))
}

pub fn unexpected(outcome: Outcome) -> ApiError {
    ApiError::internal(format!("unexpected store outcome {outcome:?}"))
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = HealthResponse)))]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok".into() })
}

/// Open a new account and receive its API key (shown only this once).
#[utoipa::path(post, path = "/v1/accounts", request_body = CreateAccountRequest,
    responses((status = 201, body = CreateAccountResponse), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create_account(
    State(state): State<AppState>,
    OptionalCaller(caller): OptionalCaller,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<CreateAccountRequest>,
) -> ApiResult<impl IntoResponse> {
    check_text("name", &body.name, limits::NAME_BYTES_MAX, true)?;
    let payout_address = parse_address(body.payout_address.as_deref())?;
    let by_operator = caller.is_some_and(|c| c.is_operator());
    if !by_operator {
        if state.config().signup == SignupPolicy::OperatorOnly {
            return Err(ApiError::forbidden(
                "sign-up on this node is closed; ask the operator for an account",
            ));
        }
        state.check_signup_rate(ip)?;
    }
    let (api_key, api_key_hash) = crate::new_api_key();
    let command =
        Command::CreateAccount { kind: AccountKind::User, name: body.name, payout_address, api_key_hash };
    match state.store().execute(command.into()).await? {
        Outcome::AccountCreated(id) => Ok((StatusCode::CREATED, Json(CreateAccountResponse { id, api_key }))),
        other => Err(unexpected(other)),
    }
}

/// A page size from a query: 1 to `LIST_LIMIT_MAX`, 100 when absent.
pub fn list_limit(limit: Option<u32>) -> ApiResult<u32> {
    let limit = limit.unwrap_or(100);
    if (1..=limits::LIST_LIMIT_MAX).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request("invalid_limit", format!("limit must be 1 to {}", limits::LIST_LIMIT_MAX)))
    }
}

/// The number in a receipt id (`rcpt_12`).
pub fn parse_receipt_id(id: &str) -> ApiResult<u64> {
    id.strip_prefix("rcpt_").and_then(|n| n.parse::<u64>().ok()).ok_or_else(|| {
        ApiError::bad_request("invalid_id", format!("invalid receipt id {id:?}: expected rcpt_<number>"))
    })
}

pub fn require_self_or_operator(caller: &Caller, account: AccountId) -> ApiResult<()> {
    if caller.account == account || caller.is_operator() {
        Ok(())
    } else {
        // Not found rather than forbidden, so that ids of other accounts cannot be probed.
        Err(ApiError::not_found("account", account))
    }
}

/// Read an account: your own, or any as the operator.
#[utoipa::path(get, path = "/v1/accounts/{id}", params(("id" = String, Path)),
    responses((status = 200, body = AccountResponse), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AccountResponse>> {
    let id: AccountId = parse_id(&id)?;
    require_self_or_operator(&caller, id)?;
    let account = state.store().account(id).await?.ok_or_else(|| ApiError::not_found("account", id))?;
    Ok(Json(account.into()))
}

/// Change your own account's payout address.
#[utoipa::path(patch, path = "/v1/accounts/{id}", params(("id" = String, Path)), request_body = UpdateAccountRequest,
    responses((status = 200, body = AccountResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update_account(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateAccountRequest>,
) -> ApiResult<Json<AccountResponse>> {
    let id: AccountId = parse_id(&id)?;
    if caller.account != id {
        return Err(if caller.is_operator() {
            ApiError::forbidden("only the account's owner can change its payout address")
        } else {
            ApiError::not_found("account", id)
        });
    }
    let payout_address = parse_address(body.payout_address.as_deref())?;
    state.store().execute(Command::SetPayoutAddress { account: id, payout_address }.into()).await?;
    let account = state.store().account(id).await?.ok_or_else(|| ApiError::not_found("account", id))?;
    Ok(Json(account.into()))
}

#[derive(serde::Deserialize, utoipa::IntoParams, Debug)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// How many entries to return, newest first (1 to 1000, default 100).
    pub limit: Option<u32>,
}

/// The transfers of an account, newest first: your own, or any as the operator.
#[utoipa::path(get, path = "/v1/accounts/{id}/transfers", params(("id" = String, Path), ListQuery),
    responses((status = 200, body = TransferList), (status = 404, body = ErrorBody)))]
pub async fn account_transfers(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<TransferList>> {
    let id: AccountId = parse_id(&id)?;
    require_self_or_operator(&caller, id)?;
    let limit = list_limit(query.limit)?;
    let transfers = state.store().account_transfers(id, limit).await?;
    Ok(Json(TransferList { data: transfers.into_iter().map(Into::into).collect() }))
}

async fn run_transfer(state: &AppState, request: Request) -> ApiResult<(StatusCode, Json<TransferResponse>)> {
    match state.store().execute(request).await? {
        Outcome::Transfer(transfer) => Ok((StatusCode::CREATED, Json(transfer.into()))),
        other => Err(unexpected(other)),
    }
}

/// Credit an account with money from outside the ledger (operator only).
#[utoipa::path(post, path = "/v1/deposits", request_body = DepositRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = TransferResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn deposit(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<DepositRequest>,
) -> ApiResult<impl IntoResponse> {
    caller.require_operator()?;
    let key = idempotency.for_request(caller.account, "POST /v1/deposits", &body);
    run_transfer(
        &state,
        Request {
            command: Command::Deposit { account: body.account, amount: body.amount },
            idempotency: key,
        },
    )
    .await
}

/// Pay another account from your own balance.
#[utoipa::path(post, path = "/v1/transfers", request_body = TransferRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = TransferResponse), (status = 402, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn transfer(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<TransferRequest>,
) -> ApiResult<impl IntoResponse> {
    let key = idempotency.for_request(caller.account, "POST /v1/transfers", &body);
    let command = Command::Transfer { from: caller.account, to: body.to, amount: body.amount };
    run_transfer(&state, Request { command, idempotency: key }).await
}

/// Read a transfer you are a party to (any, as the operator).
#[utoipa::path(get, path = "/v1/transfers/{id}", params(("id" = String, Path)),
    responses((status = 200, body = TransferResponse), (status = 404, body = ErrorBody)))]
pub async fn get_transfer(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TransferResponse>> {
    let id: TransferId = parse_id(&id)?;
    let transfer = state.store().transfer(id).await?.ok_or_else(|| ApiError::not_found("transfer", id))?;
    if transfer.debit != caller.account && transfer.credit != caller.account && !caller.is_operator() {
        return Err(ApiError::not_found("transfer", id));
    }
    Ok(Json(transfer.into()))
}

/// Hold money of yours payable to another account until you post or void it, or it times out.
#[utoipa::path(post, path = "/v1/holds", request_body = HoldRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = TransferResponse), (status = 402, body = ErrorBody)))]
pub async fn hold(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<HoldRequest>,
) -> ApiResult<impl IntoResponse> {
    let key = idempotency.for_request(caller.account, "POST /v1/holds", &body);
    let command =
        Command::Hold { from: caller.account, to: body.to, amount: body.amount, timeout_ms: body.timeout_ms };
    run_transfer(&state, Request { command, idempotency: key }).await
}

/// Pay (part of) a hold you placed; the rest is released.
#[utoipa::path(post, path = "/v1/holds/{id}/post", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = PostHoldRequest,
    responses((status = 201, body = TransferResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn post_hold(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyHeader,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<impl IntoResponse> {
    let hold: TransferId = parse_id(&id)?;
    // The body is optional: empty means "post the whole hold".
    let body: PostHoldRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PostHoldRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| ApiError::bad_request("invalid_body", error.to_string()))?
    };
    let key = idempotency.for_request(caller.account, &format!("POST /v1/holds/{hold}/post"), &body);
    let command = Command::PostHold { caller: caller.account, hold, amount: body.amount };
    run_transfer(&state, Request { command, idempotency: key }).await
}

/// Release a hold you are a party to.
#[utoipa::path(post, path = "/v1/holds/{id}/void", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = TransferResponse), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn void_hold(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyHeader,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let hold: TransferId = parse_id(&id)?;
    let key = idempotency.for_request(caller.account, &format!("POST /v1/holds/{hold}/void"), &());
    run_transfer(
        &state,
        Request { command: Command::VoidHold { caller: caller.account, hold }, idempotency: key },
    )
    .await
}

/// Create a datanet; you become its owner.
#[utoipa::path(post, path = "/v1/datanets", request_body = CreateDatanetRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = CreatedResponse), (status = 400, body = ErrorBody)))]
pub async fn create_datanet(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<CreateDatanetRequest>,
) -> ApiResult<impl IntoResponse> {
    check_text("name", &body.name, limits::NAME_BYTES_MAX, true)?;
    check_text("description", &body.description, limits::DESCRIPTION_BYTES_MAX, false)?;
    check_text("license", &body.license, limits::NAME_BYTES_MAX, true)?;
    let rules = match &body.rules {
        Some(rules) => rules.to_rules().map_err(|m| ApiError::bad_request("invalid_rules", m))?,
        None => Default::default(),
    };
    let key = idempotency.for_request(caller.account, "POST /v1/datanets", &body);
    let command = Command::CreateDatanet {
        owner: caller.account,
        name: body.name,
        description: body.description,
        license: body.license,
        rules,
    };
    match state.store().execute(Request { command, idempotency: key }).await? {
        Outcome::DatanetCreated(id) => Ok(created(id)),
        other => Err(unexpected(other)),
    }
}

/// All datanets.
#[utoipa::path(get, path = "/v1/datanets", responses((status = 200, body = DatanetList)))]
pub async fn list_datanets(State(state): State<AppState>) -> ApiResult<Json<DatanetList>> {
    let datanets = state.store().datanets().await?;
    let mut data = Vec::with_capacity(datanets.len());
    for datanet in datanets {
        let index = state.index().state(datanet.id).await.map_err(ApiError::internal)?;
        data.push(DatanetResponse::new(datanet, index));
    }
    Ok(Json(DatanetList { data }))
}

/// One datanet.
#[utoipa::path(get, path = "/v1/datanets/{id}", params(("id" = String, Path)),
    responses((status = 200, body = DatanetResponse), (status = 404, body = ErrorBody)))]
pub async fn get_datanet(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DatanetResponse>> {
    let id: DatanetId = parse_id(&id)?;
    let datanet = state.store().datanet(id).await?.ok_or_else(|| ApiError::not_found("datanet", id))?;
    let index = state.index().state(id).await.map_err(ApiError::internal)?;
    Ok(Json(DatanetResponse::new(datanet, index)))
}

/// Bring a datanet's index up to date with its accepted contributions before returning (operator).
#[utoipa::path(post, path = "/v1/datanets/{id}/index", params(("id" = String, Path)),
    responses((status = 200, body = DatanetResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn refresh_index(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<DatanetResponse>> {
    caller.require_operator()?;
    let id: DatanetId = parse_id(&id)?;
    let datanet = state.store().datanet(id).await?.ok_or_else(|| ApiError::not_found("datanet", id))?;
    state.index().refresh(id).await.map_err(ApiError::internal)?;
    let index = state.index().state(id).await.map_err(ApiError::internal)?;
    Ok(Json(DatanetResponse::new(datanet, index)))
}

/// Which contributions a text came from: spans found verbatim in the datanets' index, and each
/// contribution's share of the credit (see ARCHITECTURE.md for the exact rule).
#[utoipa::path(post, path = "/v1/attribution", request_body = AttributionRequest,
    responses((status = 200, body = AttributionResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn attribution(
    State(state): State<AppState>,
    _caller: Caller,
    ApiJson(body): ApiJson<AttributionRequest>,
) -> ApiResult<Json<AttributionResponse>> {
    let datanets = match (body.datanets, body.model) {
        (Some(datanets), None) => {
            if datanets.is_empty() || datanets.len() > limits::ATTRIBUTION_DATANETS_MAX {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    format!("datanets must name 1 to {} datanets", limits::ATTRIBUTION_DATANETS_MAX),
                ));
            }
            for datanet in &datanets {
                if state.store().datanet(*datanet).await?.is_none() {
                    return Err(ApiError::not_found("datanet", datanet));
                }
            }
            datanets
        }
        (None, Some(model)) => {
            state
                .store()
                .model(model)
                .await?
                .ok_or_else(|| ApiError::not_found("model", model))?
                .spec
                .datanets
        }
        _ => return Err(ApiError::bad_request("invalid_body", "give exactly one of datanets and model")),
    };
    if body.text.len() > limits::ATTRIBUTION_TEXT_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text_too_long",
            format!("text is longer than {} bytes", limits::ATTRIBUTION_TEXT_BYTES_MAX),
        ));
    }
    let view = state.index().view(&datanets);
    let text = body.text;
    let result = tokio::task::spawn_blocking(move || {
        tributary_attribution::attribute(&view, &text, &tributary_attribution::SpanRule::default())
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(result.into()))
}

fn checked_contribution(item: ContributionRequest) -> ApiResult<NewContribution> {
    check_text("title", &item.title, limits::TITLE_BYTES_MAX, true)?;
    check_text("text", &item.text, limits::CONTRIBUTION_TEXT_BYTES_MAX, true)?;
    if let Some(source) = &item.source {
        check_text("source", source, limits::SOURCE_BYTES_MAX, false)?;
    }
    Ok(NewContribution { title: item.title, text: item.text, source: item.source })
}

fn contribution_outcome(outcome: Outcome) -> ApiResult<ContributionOutcome> {
    match outcome {
        Outcome::ContributionAdded { id, status, reason } => Ok(ContributionOutcome {
            id: id.to_string(),
            status: tributary_core::registry::ContributionStatus::from(status).as_str().to_owned(),
            reason,
        }),
        other => Err(unexpected(other)),
    }
}

/// Contribute a document to a datanet.
#[utoipa::path(post, path = "/v1/datanets/{id}/contributions", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ContributionRequest,
    responses((status = 201, body = ContributionOutcome), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_contribution(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyHeader,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ContributionRequest>,
) -> ApiResult<impl IntoResponse> {
    let datanet: DatanetId = parse_id(&id)?;
    let key =
        idempotency.for_request(caller.account, &format!("POST /v1/datanets/{datanet}/contributions"), &body);
    let contribution = checked_contribution(body)?;
    let command = crate::validators::screened_commands(&state, datanet, caller.account, vec![contribution])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("one command per contribution"))?;
    let outcome = state.store().execute(Request { command, idempotency: key }).await?;
    state.index().notify();
    Ok((StatusCode::CREATED, Json(contribution_outcome(outcome)?)))
}

/// Contribute many documents at once; each item gets its own outcome, and one bad item never
/// stops the others.
#[utoipa::path(post, path = "/v1/datanets/{id}/contributions/batch", params(("id" = String, Path)),
    request_body = Vec<ContributionRequest>,
    responses((status = 201, body = BatchResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_contributions_batch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(items): ApiJson<Vec<ContributionRequest>>,
) -> ApiResult<impl IntoResponse> {
    let datanet: DatanetId = parse_id(&id)?;
    if items.is_empty() || items.len() > limits::BATCH_ITEMS_MAX {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!("a batch holds 1 to {} contributions", limits::BATCH_ITEMS_MAX),
        ));
    }
    if state.store().datanet(datanet).await?.is_none() {
        return Err(ApiError::not_found("datanet", datanet));
    }
    let mut results: Vec<Option<BatchItemOutcome>> = Vec::with_capacity(items.len());
    let mut contributions = Vec::new();
    let mut positions = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match checked_contribution(item) {
            Ok(contribution) => {
                positions.push(index);
                contributions.push(contribution);
                results.push(None);
            }
            Err(error) => results.push(Some(failed_item(index, error))),
        }
    }
    if !contributions.is_empty() {
        let requests: Vec<Request> =
            crate::validators::screened_commands(&state, datanet, caller.account, contributions)
                .await?
                .into_iter()
                .map(Request::from)
                .collect();
        let outcomes = state.store().execute_batch(requests).await?;
        for (index, outcome) in positions.into_iter().zip(outcomes) {
            results[index] = Some(match outcome.map_err(ApiError::from).and_then(contribution_outcome) {
                Ok(ok) => BatchItemOutcome {
                    index,
                    id: Some(ok.id),
                    status: Some(ok.status),
                    reason: ok.reason,
                    error: None,
                },
                Err(error) => failed_item(index, error),
            });
        }
    }
    state.index().notify();
    let results = results.into_iter().map(|r| r.expect("every item has an outcome")).collect();
    Ok((StatusCode::CREATED, Json(BatchResponse { results })))
}

fn failed_item(index: usize, error: ApiError) -> BatchItemOutcome {
    BatchItemOutcome {
        index,
        id: None,
        status: None,
        reason: None,
        error: Some(ErrorDetail { code: error.code.to_owned(), message: error.message }),
    }
}

/// One contribution.
#[utoipa::path(get, path = "/v1/contributions/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ContributionResponse), (status = 404, body = ErrorBody)))]
pub async fn get_contribution(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ContributionResponse>> {
    let id: ContributionId = parse_id(&id)?;
    let contribution =
        state.store().contribution(id).await?.ok_or_else(|| ApiError::not_found("contribution", id))?;
    let votes = state.store().contribution_votes(id).await?;
    let mut response = ContributionResponse::from(contribution);
    response.votes = votes
        .into_iter()
        .map(|v| VoteWire {
            validator: v.validator,
            approve: v.approve,
            stake: v.stake,
            reason: v.reason,
            created_at_ms: v.created_at_ms,
        })
        .collect();
    Ok(Json(response))
}

/// Register a model over datanets; you become its owner.
#[utoipa::path(post, path = "/v1/models", request_body = CreateModelRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = CreatedResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn create_model(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyHeader,
    ApiJson(body): ApiJson<CreateModelRequest>,
) -> ApiResult<impl IntoResponse> {
    check_text("name", &body.name, limits::NAME_BYTES_MAX, true)?;
    if body.datanets.len() > limits::MODEL_DATANETS_MAX {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("a model draws on at most {} datanets", limits::MODEL_DATANETS_MAX),
        ));
    }
    if let BackendWire::OpenAi { base_url, model, api_key, .. } = &body.backend {
        check_text("backend.base_url", base_url, limits::URL_BYTES_MAX, true)?;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ApiError::bad_request(
                "invalid_field",
                "backend.base_url must start with http:// or https://",
            ));
        }
        check_text("backend.model", model, limits::NAME_BYTES_MAX, true)?;
        if let Some(api_key) = api_key {
            check_text("backend.api_key", api_key, limits::URL_BYTES_MAX, true)?;
        }
    }
    let split = SplitPolicy {
        owner_bps: body.split.owner_bps,
        data_bps: body.split.data_bps,
        validators_bps: body.split.validators_bps,
        protocol_bps: body.split.protocol_bps,
    };
    split.validate().map_err(|error| ApiError::bad_request("invalid_split", error.to_string()))?;
    let key = idempotency.for_request(caller.account, "POST /v1/models", &body);
    let spec = ModelSpec {
        name: body.name,
        datanets: body.datanets,
        backend: body.backend.into(),
        price: Price {
            input_per_1k: body.price.input_per_1k,
            output_per_1k: body.price.output_per_1k,
            request: body.price.request,
        },
        split,
    };
    match state
        .store()
        .execute(Request { command: Command::CreateModel { owner: caller.account, spec }, idempotency: key })
        .await
    {
        Ok(Outcome::ModelCreated(id)) => Ok(created(id)),
        Ok(other) => Err(unexpected(other)),
        Err(StoreError::Invalid(message)) => Err(ApiError::bad_request("invalid_split", message)),
        Err(error) => Err(error.into()),
    }
}

/// One model. An upstream API key is never shown.
#[utoipa::path(get, path = "/v1/models/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ModelResponse), (status = 404, body = ErrorBody)))]
pub async fn get_model(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ModelResponse>> {
    let id: ModelId = parse_id(&id)?;
    let model = state.store().model(id).await?.ok_or_else(|| ApiError::not_found("model", id))?;
    Ok(Json(model.into()))
}

/// The models this node serves, in the OpenAI list format.
#[utoipa::path(get, path = "/v1/models", responses((status = 200, body = OpenAiModelList)))]
pub async fn list_models(State(state): State<AppState>) -> ApiResult<Json<OpenAiModelList>> {
    let models = state.store().models().await?;
    let data = models
        .into_iter()
        .map(|m| OpenAiModel {
            id: m.id.to_string(),
            object: "model".into(),
            created: m.created_at_ms / 1000,
            owned_by: m.owner.to_string(),
        })
        .collect();
    Ok(Json(OpenAiModelList { object: "list".into(), data }))
}

/// Ledger-wide totals, recomputed from storage and checked (operator only).
#[utoipa::path(get, path = "/v1/ledger", responses((status = 200, body = LedgerResponse), (status = 403, body = ErrorBody)))]
pub async fn ledger(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<LedgerResponse>> {
    caller.require_operator()?;
    let summary = state.store().ledger_summary().await?;
    let totals = summary.totals;
    Ok(Json(LedgerResponse {
        debits_posted: totals.debits_posted.to_string(),
        credits_posted: totals.credits_posted.to_string(),
        debits_pending: totals.debits_pending.to_string(),
        credits_pending: totals.credits_pending.to_string(),
        deposited: tributary_core::Amount(summary.external_debit_excess),
        accounts: summary.accounts,
        transfers: summary.transfers,
        holds_pending: summary.holds_pending,
        balanced: totals.debits_posted == totals.credits_posted
            && totals.debits_pending == totals.credits_pending,
    }))
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug)]
pub struct NodeInfo {
    /// The ed25519 public key that signs this node's receipts, hex.
    pub public_key: String,
    pub signature_scheme: String,
    pub version: String,
}

/// The node's identity: the key its receipts are signed with.
#[utoipa::path(get, path = "/v1/node", responses((status = 200, body = NodeInfo)))]
pub async fn node_info(State(state): State<AppState>) -> Json<NodeInfo> {
    Json(NodeInfo {
        public_key: hex::encode(state.config().node_public_key),
        signature_scheme: "ed25519 over BLAKE3(\"tributary-receipt-v1\" || id u64 LE || created_at_ms u64 LE || prev_hash || body)".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug)]
pub struct ReceiptResponse {
    pub id: String,
    pub created_at_ms: u64,
    #[schema(value_type = String)]
    pub caller: AccountId,
    pub model: String,
    /// The signed content, exactly as hashed (JSON text).
    pub body: String,
    #[schema(value_type = Object)]
    pub usage: serde_json::Value,
    pub fee: String,
    #[schema(value_type = Vec<Object>)]
    pub splits: serde_json::Value,
    #[schema(value_type = Object)]
    pub attribution: serde_json::Value,
    pub prompt_hash: String,
    pub answer_hash: String,
    pub index_version: String,
    pub prev_hash: String,
    pub hash: String,
    pub signature: String,
    pub transfers: Vec<String>,
}

/// A receipt and its parsed body, if `caller` may see it: its caller, the accounts it paid, and the
/// operator; anyone else gets "not found".
pub async fn visible_receipt(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<(tributary_ledger::store::ReceiptRecord, serde_json::Value)> {
    let number = parse_receipt_id(id)?;
    let record = state.store().receipt(number).await?.ok_or_else(|| ApiError::not_found("receipt", id))?;
    let body: serde_json::Value = serde_json::from_str(&record.body).map_err(ApiError::internal)?;
    let paid = body["splits"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|line| line["account"].as_str() == Some(caller.account.to_string().as_str()));
    if record.caller != caller.account && !paid && !caller.is_operator() {
        return Err(ApiError::not_found("receipt", id));
    }
    Ok((record, body))
}

/// A receipt: for its caller, the accounts it paid, and the operator.
#[utoipa::path(get, path = "/v1/receipts/{id}", params(("id" = String, Path)),
    responses((status = 200, body = ReceiptResponse), (status = 404, body = ErrorBody)))]
pub async fn get_receipt(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ReceiptResponse>> {
    let (record, body) = visible_receipt(&state, &caller, &id).await?;
    let text = |field: &str| body[field].as_str().unwrap_or_default().to_owned();
    Ok(Json(ReceiptResponse {
        id: crate::inference::receipt_id(record.id),
        created_at_ms: record.created_at_ms,
        caller: record.caller,
        model: record.model.to_string(),
        usage: body["usage"].clone(),
        fee: text("fee"),
        splits: body["splits"].clone(),
        attribution: body["attribution"].clone(),
        prompt_hash: text("prompt_hash"),
        answer_hash: text("answer_hash"),
        index_version: text("index_version"),
        prev_hash: hex::encode(record.prev_hash),
        hash: hex::encode(record.hash),
        signature: hex::encode(record.signature),
        transfers: record.transfers.iter().map(ToString::to_string).collect(),
        body: record.body,
    }))
}

#[derive(serde::Deserialize, utoipa::IntoParams, Debug)]
#[serde(deny_unknown_fields)]
pub struct EarningsQuery {
    /// Lines per page (1 to 1000, default 100).
    pub limit: Option<u32>,
    /// Only lines of receipts before this one (`rcpt_N`): the next page.
    pub before: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug)]
pub struct EarningLineWire {
    pub receipt: String,
    pub role: String,
    #[schema(value_type = String)]
    pub amount: tributary_core::Amount,
    pub created_at_ms: u64,
}

#[derive(serde::Serialize, serde::Deserialize, utoipa::ToSchema, Debug)]
pub struct EarningsResponse {
    #[schema(value_type = String)]
    pub account: AccountId,
    #[schema(value_type = String)]
    pub total: tributary_core::Amount,
    /// Totals per role (owner, data, data_pool, validators, protocol).
    #[schema(value_type = Object)]
    pub by_role: std::collections::BTreeMap<String, String>,
    /// Paid inferences that paid this account.
    pub inferences: u64,
    pub lines: Vec<EarningLineWire>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<String>,
}

/// What an account earned from paid inferences: totals and per-inference lines, newest first
/// (your own account, or any as the operator).
#[utoipa::path(get, path = "/v1/accounts/{id}/earnings", params(("id" = String, Path), EarningsQuery),
    responses((status = 200, body = EarningsResponse), (status = 404, body = ErrorBody)))]
pub async fn earnings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<EarningsQuery>,
) -> ApiResult<Json<EarningsResponse>> {
    let id: AccountId = parse_id(&id)?;
    require_self_or_operator(&caller, id)?;
    let limit = list_limit(query.limit)?;
    let before = query.before.as_deref().map(parse_receipt_id).transpose()?;
    let earnings = state.store().earnings(id, before, limit).await?;
    let next_before = (earnings.lines.len() as u32 == limit)
        .then(|| earnings.lines.last().map(|l| crate::inference::receipt_id(l.receipt)))
        .flatten();
    Ok(Json(EarningsResponse {
        account: id,
        total: earnings.total,
        by_role: earnings.by_role.into_iter().map(|(role, amount)| (role, amount.to_string())).collect(),
        inferences: earnings.inferences,
        lines: earnings
            .lines
            .into_iter()
            .map(|l| EarningLineWire {
                receipt: crate::inference::receipt_id(l.receipt),
                role: l.role,
                amount: l.amount,
                created_at_ms: l.created_at_ms,
            })
            .collect(),
        next_before,
    }))
}
