//! Paid inference: the OpenAI-compatible `POST /v1/chat/completions` and `POST /v1/completions`,
//! following "the flow of one paid inference": hold the maximum cost, run the model, attribute the
//! answer, compute the fee, split it, settle and write the signed receipt in one durable command,
//! and only then answer.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tributary_attribution::infinigram::{Generation, Sampling, generate};
use tributary_attribution::retrieval::{PASSAGES, combine, extract, retrieve};
use tributary_core::money::{InferencePayees, fee, split_inference};
use tributary_core::registry::{Backend, Model};
use tributary_core::{AccountId, Amount, ContributionId, ModelId, TransferId};
use tributary_index::IndexView;
use tributary_index::tokenize::tokenize;
use tributary_ledger::store::{Command, NewReceipt, Outcome, Request};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Caller};
use crate::wire::AttributionResponse;

/// Longest completion a caller may ask for, in tokens (words).
pub const COMPLETION_TOKENS_MAX: u32 = 1_024;
/// Completion length when the request names none.
pub const COMPLETION_TOKENS_DEFAULT: u32 = 64;
/// Longest prompt accepted, in bytes.
pub const PROMPT_BYTES_MAX: usize = 256 * 1024;
/// How long an inference hold lives if the node never settles it (it crashed mid-request).
pub const INFERENCE_HOLD_TIMEOUT_MS: u64 = 60_000;
/// Attribution shares become integer weights at this scale for the money split.
const SHARE_SCALE: f64 = 1e9;

#[derive(Deserialize, Serialize, ToSchema, Debug, Clone)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// The OpenAI chat request; fields this node does not use are accepted and ignored, as OpenAI
/// clients send many.
#[derive(Deserialize, ToSchema, Debug)]
pub struct ChatCompletionRequest {
    /// A model id (`mdl_1`) or its registered name.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stream: Option<bool>,
}

#[derive(Deserialize, ToSchema, Debug)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: String,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub stream: Option<bool>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct SplitWireLine {
    #[schema(value_type = String)]
    pub account: AccountId,
    /// owner, data, data_pool, validators or protocol.
    pub role: String,
    #[schema(value_type = String)]
    pub amount: Amount,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

/// Our addition to the OpenAI response.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct TributaryExtension {
    pub receipt_id: String,
    #[schema(value_type = String)]
    pub fee: Amount,
    pub splits: Vec<SplitWireLine>,
    pub attribution: AttributionResponse,
}

/// The signed content of a receipt, in this field order (it is hashed as serialized).
#[derive(Serialize, Deserialize, Debug)]
pub struct ReceiptBody {
    pub version: u32,
    #[serde(with = "id_string")]
    pub caller: AccountId,
    #[serde(with = "id_string")]
    pub model: ModelId,
    pub usage: Usage,
    pub fee: Amount,
    pub splits: Vec<SplitWireLine>,
    pub attribution: AttributionResponse,
    /// BLAKE3 of the prompt as the model saw it, and of the answer, hex.
    pub prompt_hash: String,
    pub answer_hash: String,
    pub index_version: String,
    /// What a replay needs to re-run the model: its backend kind and the sampling used.
    pub backend: String,
    pub sampling: SamplingWire,
}

#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Copy, PartialEq)]
pub struct SamplingWire {
    pub max_tokens: u32,
    pub temperature: f64,
    pub seed: u64,
}

mod id_string {
    pub fn serialize<S: serde::Serializer, T: std::fmt::Display>(
        id: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(id)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>, T: std::str::FromStr>(
        deserializer: D,
    ) -> Result<T, D::Error>
    where
        T::Err: std::fmt::Display,
    {
        let text: String = serde::Deserialize::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One inference, billed: what both endpoints share.
struct Billed {
    /// Time spent in the model (generation and its attribution), for the Server-Timing header.
    model_micros: u64,
    model: Model,
    answer: String,
    usage: Usage,
    receipt_id: u64,
    extension: TributaryExtension,
}

/// A model by id or name. Models never change once registered, so they are cached in memory: a paid
/// call does not read them from storage.
async fn find_model(state: &AppState, name: &str) -> ApiResult<Model> {
    if let Some(model) = state.cached_model(name) {
        return Ok(model);
    }
    if let Ok(id) = name.parse::<ModelId>() {
        let model = state.store().model(id).await?.ok_or_else(|| ApiError::not_found("model", id))?;
        state.cache_model(name, &model);
        return Ok(model);
    }
    let models = state.store().models().await?;
    let found = models.into_iter().find(|m| m.spec.name == name);
    if let Some(model) = &found {
        state.cache_model(name, model);
    }
    found.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("no model named {name:?}; see GET /v1/models"),
        )
    })
}

async fn run_paid(
    state: &AppState,
    caller: Caller,
    model_name: &str,
    messages: Vec<ChatMessage>,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    seed: Option<u64>,
) -> ApiResult<Billed> {
    let prompt = messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n");
    if prompt.len() > PROMPT_BYTES_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "prompt_too_long",
            format!("the prompt is longer than {PROMPT_BYTES_MAX} bytes"),
        ));
    }
    let max_tokens = max_tokens.unwrap_or(COMPLETION_TOKENS_DEFAULT);
    if max_tokens == 0 || max_tokens > COMPLETION_TOKENS_MAX {
        return Err(ApiError::bad_request(
            "invalid_max_tokens",
            format!("max_tokens must be 1 to {COMPLETION_TOKENS_MAX}"),
        ));
    }
    let temperature = temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad_request("invalid_temperature", "temperature must be between 0 and 2"));
    }
    let model = find_model(state, model_name).await?;
    let prompt_tokens = tokenize(&prompt).word_count() as u64;
    let price = &model.spec.price;
    let most = fee(prompt_tokens, u64::from(max_tokens), price)
        .map_err(|e| ApiError::bad_request("amount_overflow", e.to_string()))?;
    let system = state.store().system_accounts();

    if most.is_zero() {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "free_models_unsupported",
            "free models (all prices zero) are not served yet",
        ));
    }

    // 1. Hold the most the call can cost; an empty purse stops here, before the model runs.
    let hold: TransferId = {
        let command = Command::Hold {
            from: caller.account,
            to: system.clearing,
            amount: most,
            timeout_ms: INFERENCE_HOLD_TIMEOUT_MS,
        };
        // Provisional: a hold lost in a crash is harmless (nothing was answered or settled), so
        // the call does not wait for its fsync; the settlement below is durable before we answer.
        match state.store().execute_provisional(command.into()).await {
            Ok(Outcome::Transfer(transfer)) => transfer.id,
            Ok(other) => return Err(ApiError::internal(format!("unexpected outcome {other:?}"))),
            Err(tributary_ledger::StoreError::Ledger(
                tributary_ledger::state::LedgerError::InsufficientFunds { available, requested, .. },
            )) => {
                return Err(ApiError::new(
                    StatusCode::PAYMENT_REQUIRED,
                    "insufficient_funds",
                    format!(
                        "this call may cost up to {requested} (prompt {prompt_tokens} tokens, max_tokens {max_tokens}); the balance is {available}"
                    ),
                ));
            }
            Err(error) => return Err(error.into()),
        }
    };
    // If this request is dropped midway (the client went away), the guard voids the hold at once
    // instead of leaving it to its timeout.
    let mut guard = HoldGuard { state: state.clone(), caller: caller.account, hold: Some(hold) };

    // 2. Run the model and attribute its answer: exact for the ∞-gram, span attribution of the
    //    answer over the model's datanets for an upstream model.
    let view = state.index().view(&model.spec.datanets);
    let model_started = std::time::Instant::now();
    let sampling = Sampling { max_tokens: max_tokens as usize, temperature, seed: seed.unwrap_or(0) };
    let generation = match produce(state, &model, view, &prompt, &messages, &sampling, None).await {
        Ok(generation) => generation,
        Err(error) => {
            guard.release().await;
            return Err(error);
        }
    };
    let model_micros = model_started.elapsed().as_micros() as u64;

    // 3. The fee for what was used, split by the model's policy and the attribution.
    // Billed tokens never exceed what was held: an upstream may count differently and overrun.
    let completion_tokens = (generation.tokens as u64).min(u64::from(max_tokens));
    let charged = fee(prompt_tokens, completion_tokens, price).expect("no larger than the held maximum");
    let mut by_contributor: std::collections::BTreeMap<u64, f64> = Default::default();
    for share in &generation.attribution.contributions {
        *by_contributor.entry(share.contributor).or_default() += share.share;
    }
    let data_pool = match model.spec.datanets.first() {
        Some(datanet) => state.datanet_pool(*datanet).await?.unwrap_or(system.protocol),
        None => system.protocol,
    };
    let payees = InferencePayees {
        owner: model.owner,
        validators: system.validators_pool,
        protocol: system.protocol,
        data_pool,
        data: by_contributor
            .iter()
            .map(|(&contributor, &share)| (AccountId(contributor), (share * SHARE_SCALE).round() as u64))
            .collect(),
    };
    let lines = split_inference(charged, &model.spec.split, &payees).map_err(ApiError::internal)?;
    let lines = share_validators_part(state, lines, &generation.attribution.contributions).await?;
    let splits: Vec<SplitWireLine> = lines
        .iter()
        .map(|l| SplitWireLine { account: l.payee, role: l.role.as_str().to_owned(), amount: l.amount })
        .collect();
    let usage = Usage { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens };
    let attribution: AttributionResponse = generation.attribution.clone().into();
    let body = ReceiptBody {
        version: 1,
        caller: caller.account,
        model: model.id,
        usage: usage.clone(),
        fee: charged,
        splits: splits.clone(),
        attribution,
        prompt_hash: blake3::hash(prompt.as_bytes()).to_hex().to_string(),
        answer_hash: blake3::hash(generation.text.as_bytes()).to_hex().to_string(),
        index_version: generation.attribution.index_version.clone(),
        backend: backend_kind(&model.spec.backend).to_owned(),
        sampling: SamplingWire { max_tokens, temperature, seed: seed.unwrap_or(0) },
    };
    let body_json = serde_json::to_string(&body).map_err(ApiError::internal)?;

    // 4. Settle and write the receipt in one durable command; answer only after it.
    let payments = lines
        .iter()
        .map(|l| tributary_ledger::store::Payment {
            account: l.payee,
            role: l.role.as_str().to_owned(),
            amount: l.amount,
        })
        .collect();
    let command = Command::SettleInference {
        hold,
        fee: charged,
        payments,
        receipt: NewReceipt { caller: caller.account, model: model.id, body: body_json },
    };
    let record = match state.store().execute(Request::from(command)).await {
        Ok(Outcome::InferenceSettled(record)) => {
            guard.hold = None;
            record
        }
        Ok(other) => {
            guard.release().await;
            return Err(ApiError::internal(format!("unexpected outcome {other:?}")));
        }
        Err(error) => {
            guard.release().await;
            return Err(error.into());
        }
    };
    let extension = TributaryExtension {
        receipt_id: receipt_id(record.id),
        fee: charged,
        splits,
        attribution: body.attribution,
    };
    Ok(Billed { model_micros, model, answer: generation.text, usage, receipt_id: record.id, extension })
}

/// Runs a model and attributes its answer: exact for the ∞-gram, retrieval credit plus span
/// attribution for the retrieval model and for RAG, span attribution for an upstream answer.
/// With `given_answer`, an upstream model is not called: the answer is taken as given (a replay of
/// a receipt re-runs everything else).
async fn produce(
    state: &AppState,
    model: &Model,
    view: IndexView,
    prompt: &str,
    messages: &[ChatMessage],
    sampling: &Sampling,
    given_answer: Option<String>,
) -> ApiResult<Generation> {
    match &model.spec.backend {
        Backend::Retrieval => answer_by_retrieval(state, view, prompt, sampling.max_tokens as u32).await,
        Backend::OpenAi { base_url, model: upstream, api_key, rag } => {
            let retrieved = if *rag == Some(true) {
                let (view, question) = (view.clone(), prompt.to_owned());
                tokio::task::spawn_blocking(move || retrieve(&view, &question, PASSAGES))
                    .await
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            let answer = match given_answer {
                Some(answer) => answer,
                None => {
                    let mut messages = messages.to_vec();
                    if !retrieved.is_empty() {
                        // RAG: the best passages go first, as a system message the upstream reads.
                        let mut context = String::from("Answer using these passages where they help:\n");
                        for (number, (hit, _)) in retrieved.iter().enumerate() {
                            let text = state
                                .store()
                                .contribution(ContributionId(hit.contribution))
                                .await?
                                .map(|c| c.text)
                                .unwrap_or_default();
                            context.push_str(&format!(
                                "[{}] {}\n",
                                number + 1,
                                extract(&text, prompt, RAG_PASSAGE_WORDS)
                            ));
                        }
                        messages.insert(0, ChatMessage { role: "system".into(), content: context });
                    }
                    let max_tokens = sampling.max_tokens as u32;
                    call_upstream(
                        state,
                        base_url,
                        upstream,
                        api_key.as_deref(),
                        &messages,
                        max_tokens,
                        sampling.temperature,
                    )
                    .await?
                }
            };
            tokio::task::spawn_blocking(move || {
                let spans = tributary_attribution::attribute(
                    &view,
                    &answer,
                    &tributary_attribution::SpanRule::default(),
                );
                let tokens = tokenize(&answer).word_count();
                Generation { text: answer, tokens, attribution: combine(spans, &retrieved) }
            })
            .await
            .map_err(ApiError::internal)
        }
        Backend::Infinigram => {
            let (prompt, sampling) = (prompt.to_owned(), *sampling);
            tokio::task::spawn_blocking(move || generate(&view, &prompt, &sampling))
                .await
                .map_err(ApiError::internal)
        }
    }
}

fn backend_kind(backend: &Backend) -> &'static str {
    match backend {
        Backend::Infinigram => "infinigram",
        Backend::Retrieval => "retrieval",
        Backend::OpenAi { .. } => "openai",
    }
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The prompt exactly as the model saw it (a chat's message contents joined by newlines).
    pub prompt: String,
    /// The answer you received; required for upstream models (they are not called again).
    #[serde(default)]
    pub answer: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct ReplayResponse {
    pub receipt_id: String,
    pub index_version: String,
    pub answer_matches: bool,
    pub attribution_matches: bool,
    /// The attribution computed now, to compare with the receipt's.
    pub attribution: AttributionResponse,
}

/// Re-runs a receipt's inference against the index version it names and reports whether the
/// answer and the attribution match the receipt: the auditor's check that the payees were the
/// right ones. Nothing is charged. Upstream models are not called again: give the answer.
#[utoipa::path(post, path = "/v1/receipts/{id}/replay", params(("id" = String, Path)), request_body = ReplayRequest,
    responses((status = 200, body = ReplayResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn replay_receipt(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(id): axum::extract::Path<String>,
    ApiJson(request): ApiJson<ReplayRequest>,
) -> ApiResult<Json<ReplayResponse>> {
    let (record, _) = crate::routes::visible_receipt(&state, &caller, &id).await?;
    let body: ReceiptBody = serde_json::from_str(&record.body).map_err(ApiError::internal)?;
    if crate::hash_hex(&request.prompt) != body.prompt_hash {
        return Err(ApiError::bad_request(
            "prompt_mismatch",
            "this is not the prompt the receipt names (its hash differs)",
        ));
    }
    let model =
        state.store().model(body.model).await?.ok_or_else(|| ApiError::not_found("model", body.model))?;
    let view = state.index().view(&model.spec.datanets);
    if view.version() != body.index_version {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "index_changed",
            format!(
                "the index is at version {} now; the receipt was made at {}",
                view.version(),
                body.index_version
            ),
        ));
    }
    if matches!(model.spec.backend, Backend::OpenAi { .. }) && request.answer.is_none() {
        return Err(ApiError::bad_request(
            "answer_required",
            "an upstream model is not called again: send the answer you received",
        ));
    }
    let sampling = Sampling {
        max_tokens: body.sampling.max_tokens as usize,
        temperature: body.sampling.temperature,
        seed: body.sampling.seed,
    };
    let messages = [ChatMessage { role: "user".into(), content: request.prompt.clone() }];
    let generation =
        produce(&state, &model, view, &request.prompt, &messages, &sampling, request.answer.clone()).await?;
    let answer = request.answer.unwrap_or_else(|| generation.text.clone());
    let attribution: AttributionResponse = generation.attribution.into();
    let same = |a: &AttributionResponse, b: &AttributionResponse| {
        serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
    };
    Ok(Json(ReplayResponse {
        receipt_id: receipt_id(record.id),
        index_version: body.index_version.clone(),
        answer_matches: crate::hash_hex(&answer) == body.answer_hash
            && crate::hash_hex(&generation.text) == body.answer_hash,
        attribution_matches: same(&attribution, &body.attribution),
        attribution,
    }))
}

/// Voids an inference hold when dropped while still armed: a request cancelled mid-flight (the
/// client disconnected) never leaves money held.
struct HoldGuard {
    state: AppState,
    caller: AccountId,
    hold: Option<TransferId>,
}

impl HoldGuard {
    /// Voids the hold now and waits until it is done, so that the error the caller is about to
    /// see is not followed by money still held.
    async fn release(&mut self) {
        if let Some(hold) = self.hold.take() {
            let _ = self.state.store().execute(Command::VoidHold { caller: self.caller, hold }.into()).await;
        }
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            let (state, caller) = (self.state.clone(), self.caller);
            tokio::spawn(async move {
                // Already voided or settled is fine: nothing is held either way.
                let _ = state.store().execute(Command::VoidHold { caller, hold }.into()).await;
            });
        }
    }
}

/// Words of each retrieved passage given to an upstream model (RAG).
pub const RAG_PASSAGE_WORDS: usize = 150;

/// The built-in retrieval model: BM25 over the model's datanets picks the best contributions; the
/// answer is extracted verbatim from the best one; credit combines the retrieval scores with span
/// attribution of the answer.
async fn answer_by_retrieval(
    state: &AppState,
    view: IndexView,
    question: &str,
    max_tokens: u32,
) -> ApiResult<Generation> {
    let (search, asked) = (view.clone(), question.to_owned());
    let retrieved = tokio::task::spawn_blocking(move || retrieve(&search, &asked, PASSAGES))
        .await
        .map_err(ApiError::internal)?;
    let answer = match retrieved.first() {
        Some((best, _)) => {
            let text = state
                .store()
                .contribution(ContributionId(best.contribution))
                .await?
                .map(|c| c.text)
                .unwrap_or_default();
            extract(&text, question, max_tokens as usize)
        }
        None => String::new(),
    };
    tokio::task::spawn_blocking(move || {
        let spans =
            tributary_attribution::attribute(&view, &answer, &tributary_attribution::SpanRule::default());
        let tokens = tokenize(&answer).word_count();
        Generation { text: answer, tokens, attribution: combine(spans, &retrieved) }
    })
    .await
    .map_err(ApiError::internal)
}

/// Default longest wait for an upstream model (`ServerConfig::upstream_timeout_ms`).
pub const UPSTREAM_TIMEOUT_MS: u64 = 30_000;

/// Forwards the conversation to an OpenAI-compatible server and returns its answer. Its failures
/// are the caller's to see (502, or 504 on a timeout) and the caller is not charged.
async fn call_upstream(
    state: &AppState,
    base_url: &str,
    model: &str,
    api_key: Option<&str>,
    messages: &[ChatMessage],
    max_tokens: u32,
    temperature: f64,
) -> ApiResult<String> {
    let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
    let mut request = state
        .upstream()
        .post(&url)
        .timeout(std::time::Duration::from_millis(state.config().upstream_timeout_ms))
        .json(&serde_json::json!({"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}));
    if let Some(key) = api_key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.map_err(|error| {
        if error.is_timeout() {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "the upstream model at {base_url} did not answer within {} ms; you were not charged",
                    state.config().upstream_timeout_ms
                ),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!(
                    "the upstream model at {base_url} could not be reached ({error}); you were not charged"
                ),
            )
        }
    })?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let detail = body["error"]["message"].as_str().unwrap_or("no error message");
        return Err(ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            format!("the upstream model answered {}: {detail}; you were not charged", status.as_u16()),
        ));
    }
    body["choices"][0]["message"]["content"].as_str().map(str::to_owned).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "the upstream answer has no choices[0].message.content; you were not charged",
        )
    })
}

pub fn receipt_id(id: u64) -> String {
    format!("rcpt_{id}")
}

/// Adds the receipt header, and a `Server-Timing` header splitting the node's time into the
/// model's and its own (auth, hold, split, durable settlement and receipt): the gateway overhead.
fn with_receipt_header(
    body: serde_json::Value,
    receipt: u64,
    started: std::time::Instant,
    model_micros: u64,
) -> Response {
    let mut response = (StatusCode::OK, Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&receipt_id(receipt)) {
        response.headers_mut().insert("x-tributary-receipt", value);
    }
    let total_micros = started.elapsed().as_micros() as u64;
    let timing = format!(
        "model;dur={:.3}, gateway;dur={:.3}",
        model_micros as f64 / 1000.0,
        total_micros.saturating_sub(model_micros) as f64 / 1000.0
    );
    if let Ok(value) = HeaderValue::from_str(&timing) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// OpenAI-compatible chat completion, paid from the caller's balance. The answer carries a
/// `tributary` object (receipt, fee, splits, attribution) and an `x-tributary-receipt` header.
#[utoipa::path(post, path = "/v1/chat/completions", request_body = ChatCompletionRequest,
    responses((status = 200, description = "an OpenAI chat.completion with a `tributary` object"),
              (status = 402, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn chat_completions(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ChatCompletionRequest>,
) -> ApiResult<Response> {
    let started = std::time::Instant::now();
    if request.messages.is_empty() {
        return Err(ApiError::bad_request("invalid_messages", "messages must not be empty"));
    }
    let billed = run_paid(
        &state,
        caller,
        &request.model,
        request.messages.clone(),
        request.max_completion_tokens.or(request.max_tokens),
        request.temperature,
        request.seed,
    )
    .await?;
    if request.stream == Some(true) {
        return Ok(stream_chat(billed));
    }
    let finish_reason = if billed.usage.completion_tokens
        < u64::from(request.max_completion_tokens.or(request.max_tokens).unwrap_or(COMPLETION_TOKENS_DEFAULT))
    {
        "stop"
    } else {
        "length"
    };
    let body = serde_json::json!({
        "id": format!("chatcmpl-{}", billed.receipt_id),
        "object": "chat.completion",
        "created": now_seconds(),
        "model": billed.model.id.to_string(),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": billed.answer},
            "finish_reason": finish_reason,
        }],
        "usage": billed.usage,
        "tributary": billed.extension,
    });
    Ok(with_receipt_header(body, billed.receipt_id, started, billed.model_micros))
}

/// Streams an already settled answer as OpenAI `chat.completion.chunk` server-sent events: the
/// role, one chunk per word, then a final chunk with the finish reason, the usage and the
/// `tributary` object (receipt, fee, splits, attribution), then `[DONE]`. The fee is settled and the
/// receipt durable before the first byte is sent.
fn stream_chat(billed: Billed) -> Response {
    stream_answer(billed, true)
}

/// The streaming answer of either endpoint: chat chunks carry `delta`s, text chunks `text`.
fn stream_answer(billed: Billed, chat: bool) -> Response {
    use axum::response::sse::{Event, Sse};
    let id = format!("{}-{}", if chat { "chatcmpl" } else { "cmpl" }, billed.receipt_id);
    let created = now_seconds();
    let model = billed.model.id.to_string();
    let chunk = |piece: Option<&str>, role: bool, finish: Option<&str>| {
        let choice = if chat {
            let mut delta = serde_json::json!({});
            if role {
                delta["role"] = "assistant".into();
            }
            if let Some(piece) = piece {
                delta["content"] = piece.into();
            }
            serde_json::json!({"index": 0, "delta": delta, "finish_reason": finish})
        } else {
            serde_json::json!({"index": 0, "text": piece.unwrap_or(""), "finish_reason": finish, "logprobs": null})
        };
        serde_json::json!({
            "id": id, "object": if chat { "chat.completion.chunk" } else { "text_completion" },
            "created": created, "model": model, "choices": [choice],
        })
    };
    let mut events = Vec::new();
    if chat {
        events.push(chunk(Some(""), true, None));
    }
    let words: Vec<&str> = billed.answer.split(' ').filter(|w| !w.is_empty()).collect();
    for (index, word) in words.iter().enumerate() {
        let piece = if index == 0 { (*word).to_owned() } else { format!(" {word}") };
        events.push(chunk(Some(&piece), false, None));
    }
    let mut last = chunk(None, false, Some("stop"));
    last["usage"] = serde_json::to_value(&billed.usage).unwrap_or_default();
    last["tributary"] = serde_json::to_value(&billed.extension).unwrap_or_default();
    events.push(last);
    let mut stream: Vec<Result<Event, std::convert::Infallible>> =
        events.into_iter().map(|value| Ok(Event::default().data(value.to_string()))).collect();
    stream.push(Ok(Event::default().data("[DONE]")));
    let mut response = Sse::new(futures_util::stream::iter(stream)).into_response();
    if let Ok(value) = HeaderValue::from_str(&receipt_id(billed.receipt_id)) {
        response.headers_mut().insert("x-tributary-receipt", value);
    }
    response
}

/// OpenAI-compatible text completion, paid like a chat completion.
#[utoipa::path(post, path = "/v1/completions", request_body = CompletionRequest,
    responses((status = 200, description = "an OpenAI text_completion with a `tributary` object"),
              (status = 402, body = crate::error::ErrorBody)))]
pub async fn completions(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CompletionRequest>,
) -> ApiResult<Response> {
    let started = std::time::Instant::now();
    let stream = request.stream == Some(true);
    let billed = run_paid(
        &state,
        caller,
        &request.model,
        vec![ChatMessage { role: "user".into(), content: request.prompt }],
        request.max_tokens,
        request.temperature,
        request.seed,
    )
    .await?;
    if stream {
        return Ok(stream_answer(billed, false));
    }
    let body = serde_json::json!({
        "id": format!("cmpl-{}", billed.receipt_id),
        "object": "text_completion",
        "created": now_seconds(),
        "model": billed.model.id.to_string(),
        "choices": [{"index": 0, "text": billed.answer, "finish_reason": "stop", "logprobs": null}],
        "usage": billed.usage,
        "tributary": billed.extension,
    });
    Ok(with_receipt_header(body, billed.receipt_id, started, billed.model_micros))
}

/// Replaces the validators' line of a split with the validators of the attributed datanets, pro
/// rata to stake within each datanet, the datanets weighted by their attributed shares; a datanet
/// without stake leaves its part to the node's validators pool (`tributary_validation::votes`).
/// The lines still add up to the fee exactly.
async fn share_validators_part(
    state: &AppState,
    mut lines: Vec<tributary_core::money::SplitLine<AccountId>>,
    shares: &[tributary_attribution::ContributionShare],
) -> ApiResult<Vec<tributary_core::money::SplitLine<AccountId>>> {
    use tributary_core::money::{SplitLine, SplitRole};
    use tributary_validation::votes::{DatanetValidators, validators_split};
    let Some(position) = lines.iter().position(|l| l.role == SplitRole::Validators) else { return Ok(lines) };
    let mut by_datanet: std::collections::BTreeMap<u64, f64> = Default::default();
    for share in shares {
        *by_datanet.entry(share.datanet).or_default() += share.share;
    }
    if by_datanet.is_empty() {
        return Ok(lines);
    }
    let mut datanets = Vec::with_capacity(by_datanet.len());
    for (datanet, share) in by_datanet {
        let stakes = state.store().stakes(tributary_core::DatanetId(datanet)).await?;
        datanets.push(DatanetValidators {
            weight: (share * SHARE_SCALE).round() as u64,
            stakes: stakes.iter().map(|s| (s.validator, s.amount.0)).collect(),
        });
    }
    let total: u128 = lines.iter().map(|l| l.amount.0).sum();
    let pool_line = lines.remove(position);
    let (paid, pool) = validators_split(pool_line.amount, &datanets).map_err(ApiError::internal)?;
    let mut merged: std::collections::BTreeMap<AccountId, u128> = Default::default();
    for (validator, amount) in paid {
        *merged.entry(validator).or_default() += amount.0;
    }
    let mut replacement: Vec<SplitLine<AccountId>> = merged
        .into_iter()
        .map(|(payee, amount)| SplitLine { payee, role: SplitRole::Validators, amount: Amount(amount) })
        .collect();
    if !pool.is_zero() {
        replacement.push(SplitLine { payee: pool_line.payee, role: SplitRole::Validators, amount: pool });
    }
    lines.splice(position..position, replacement);
    assert_eq!(
        lines.iter().map(|l| l.amount.0).sum::<u128>(),
        total,
        "the validators' lines conserve the fee"
    );
    Ok(lines)
}
