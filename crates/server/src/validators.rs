//! Routes of the contribution pipeline and the validators: datanet rules, the containment
//! measurement over the index (the one pipeline stage that needs it), staking, review votes and
//! disputes. The rules are decided in the store's writer (`tributary_validation` and
//! `ledger/src/sqlite/validation.rs`); these handlers authenticate, convert and report.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tributary_core::rules::DatanetRules;
use tributary_core::{AccountId, Amount, ContributionId, DatanetId};
use tributary_index::IndexView;
use tributary_index::ngrams::{NGRAM_WORDS, ngram_hash, word_hash};
use tributary_index::tokenize::tokenize;
use tributary_ledger::store::{Command, ContributionStatusCode, DisputeStatus, Outcome, Request, Screening};
use tributary_validation::containment::{self, CopiedSpan};

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Caller, IdempotencyHeader};
use crate::wire::*;

/// Occurrences looked at per copied span to name its sources.
const SPAN_OCCURRENCES_MAX: usize = 64;

/// Measures a text for the pipeline: hashes, signature and quality, and containment over the
/// datanet's index (accepted text; spans only count when they occur in someone else's text).
///
/// Containment needs the runs of at least `L = containment_span_words` words found in the index.
/// A run of `L` words from start `j` means every word 6-gram in `j..j + L` occurs in the index, so
/// the segments' n-gram filters (no false negatives) pick the candidate starts: those followed by
/// `L - 5` consecutive n-grams that may occur. Only those starts are searched in the suffix array
/// (and only their sentences' words looked up), which finds exactly the runs that searching from
/// every word would.
pub fn screen(view: &IndexView, text: &str, contributor: AccountId, rules: &DatanetRules) -> Screening {
    let mut screening = Screening::measure(text);
    let tokenized = tokenize(text);
    let span_words_min = rules.containment_span_words as usize;
    let mut spans = Vec::new();
    let mut offset = 0;
    for sentence in &tokenized.sentences {
        if sentence.len() >= span_words_min && !view.segments().is_empty() {
            let words: Vec<&str> = sentence.iter().map(|w| w.text.as_str()).collect();
            for (start, len) in long_runs(view, &words, span_words_min) {
                let occurrences = view.occurrences(&words[start..start + len], SPAN_OCCURRENCES_MAX);
                let mut sources: Vec<u64> = occurrences
                    .iter()
                    .filter(|o| o.contributor != contributor.0)
                    .map(|o| o.contribution)
                    .collect();
                sources.sort_unstable();
                sources.dedup();
                spans.push(CopiedSpan { start: offset + start, words: len, sources });
            }
        }
        offset += sentence.len();
    }
    screening.containment = Some(containment::measure(tokenized.word_count(), &spans, span_words_min));
    screening
}

/// The maximal runs of at least `min` (≥ `NGRAM_WORDS`) words of one sentence found in the index:
/// (start, length), by start, each reaching past the previous (see [`screen`]).
fn long_runs(view: &IndexView, words: &[&str], min: usize) -> Vec<(usize, usize)> {
    let n = NGRAM_WORDS;
    if words.len() < min || min < n {
        return Vec::new();
    }
    let hashes: Vec<u64> = words.iter().map(|w| word_hash(w)).collect();
    // Candidates are the starts of `needed` consecutive n-grams that may occur. Each window is
    // checked from its end backwards, so one absent n-gram skips every window containing it: text
    // that is not copied costs about one filter test per `needed` words.
    let needed = min - n + 1;
    let count = words.len() - n + 1;
    let mut present: Vec<Option<bool>> = vec![None; count];
    let mut test = |at: usize| {
        *present[at].get_or_insert_with(|| view.may_contain_ngram(ngram_hash(&hashes[at..at + n])))
    };
    let mut candidates = Vec::new();
    let mut start = 0;
    while start + needed <= count {
        match (start..start + needed).rev().find(|&at| !test(at)) {
            Some(absent) => start = absent + 1,
            None => {
                candidates.push(start);
                start += 1;
            }
        }
    }
    if candidates.is_empty() {
        return Vec::new();
    }
    let queries = view.lookup_all(words);
    let mut found: Vec<(usize, usize)> = candidates
        .iter()
        .copied()
        .zip(view.longest_from_tokens(&queries, &candidates))
        .filter(|&(_, run)| run >= min)
        .collect();
    found.sort_unstable();
    let mut runs = Vec::new();
    let mut covered = 0;
    for (start, run) in found {
        if start + run > covered {
            covered = start + run;
            runs.push((start, run));
        }
    }
    runs
}

/// Builds the store commands for contributions to one datanet, measuring each text on a blocking
/// thread (the signature and the index searches are CPU work).
pub async fn screened_commands(
    state: &AppState,
    datanet: DatanetId,
    contributor: AccountId,
    items: Vec<tributary_ledger::store::NewContribution>,
) -> ApiResult<Vec<Command>> {
    let rules =
        state.store().datanet(datanet).await?.ok_or_else(|| ApiError::not_found("datanet", datanet))?.rules;
    let view = state.index().view(&[datanet]);
    tokio::task::spawn_blocking(move || {
        items
            .into_iter()
            .map(|contribution| {
                let screening = screen(&view, &contribution.text, contributor, &rules);
                Command::AddContribution {
                    datanet,
                    contributor,
                    contribution,
                    screening: Some(Box::new(screening)),
                }
            })
            .collect()
    })
    .await
    .map_err(ApiError::internal)
}

fn parse_id<T: std::str::FromStr<Err = tributary_core::ids::IdParseError>>(text: &str) -> ApiResult<T> {
    text.parse::<T>().map_err(|error| ApiError::bad_request("invalid_id", error.to_string()))
}

/// The number in a dispute id (`dsp_3`).
pub fn parse_dispute_id(id: &str) -> ApiResult<u64> {
    id.strip_prefix("dsp_").and_then(|n| n.parse::<u64>().ok()).ok_or_else(|| {
        ApiError::bad_request("invalid_id", format!("invalid dispute id {id:?}: expected dsp_<number>"))
    })
}

fn unexpected(outcome: Outcome) -> ApiError {
    ApiError::internal(format!("unexpected store outcome {outcome:?}"))
}

/// Replace a datanet's validation rules (its owner only).
#[utoipa::path(put, path = "/v1/datanets/{id}/rules", params(("id" = String, Path)), request_body = RulesWire,
    responses((status = 200, body = RulesWire), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn set_rules(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RulesWire>,
) -> ApiResult<Json<RulesWire>> {
    let datanet: DatanetId = parse_id(&id)?;
    let rules = body.to_rules().map_err(|m| ApiError::bad_request("invalid_rules", m))?;
    match state
        .store()
        .execute(Command::SetDatanetRules { caller: caller.account, datanet, rules }.into())
        .await?
    {
        Outcome::RulesSet(_) => Ok(Json(rules.into())),
        other => Err(unexpected(other)),
    }
}

/// Stake on a datanet to join its validator set: the amount is locked on your own balance (added
/// to any stake you have there).
#[utoipa::path(post, path = "/v1/datanets/{id}/stake", params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = StakeRequest,
    responses((status = 200, body = StakeResponse), (status = 400, body = ErrorBody), (status = 402, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn stake(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyHeader,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StakeRequest>,
) -> ApiResult<Json<StakeResponse>> {
    let datanet: DatanetId = parse_id(&id)?;
    let key = idempotency.for_request(caller.account, &format!("POST /v1/datanets/{datanet}/stake"), &body);
    let command = Command::Stake { validator: caller.account, datanet, amount: body.amount };
    match state.store().execute(Request { command, idempotency: key }).await? {
        Outcome::Staked(stake) => Ok(Json(stake.into())),
        other => Err(unexpected(other)),
    }
}

/// Leave a datanet's validator set and release your whole stake; refused (409) while approvals
/// you gave are inside the dispute window or under dispute.
#[utoipa::path(post, path = "/v1/datanets/{id}/unstake", params(("id" = String, Path)),
    responses((status = 200, body = StakeResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn unstake(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<StakeResponse>> {
    let datanet: DatanetId = parse_id(&id)?;
    match state.store().execute(Command::Unstake { validator: caller.account, datanet }.into()).await? {
        Outcome::Unstaked(stake) => Ok(Json(stake.into())),
        other => Err(unexpected(other)),
    }
}

/// A datanet's validators and their stakes.
#[utoipa::path(get, path = "/v1/datanets/{id}/validators", params(("id" = String, Path)),
    responses((status = 200, body = ValidatorList), (status = 404, body = ErrorBody)))]
pub async fn list_validators(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ValidatorList>> {
    let datanet: DatanetId = parse_id(&id)?;
    state.store().datanet(datanet).await?.ok_or_else(|| ApiError::not_found("datanet", datanet))?;
    let stakes = state.store().stakes(datanet).await?;
    let total_stake = Amount(stakes.iter().map(|s| s.amount.0).sum());
    Ok(Json(ValidatorList { data: stakes.into_iter().map(Into::into).collect(), total_stake }))
}

/// Review a pending or flagged contribution (validators of its datanet; one vote each).
#[utoipa::path(post, path = "/v1/contributions/{id}/votes", params(("id" = String, Path)), request_body = VoteRequest,
    responses((status = 200, body = VoteResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn vote(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<VoteRequest>,
) -> ApiResult<Json<VoteResponse>> {
    let contribution: ContributionId = parse_id(&id)?;
    let command =
        Command::Vote { validator: caller.account, contribution, approve: body.approve, reason: body.reason };
    match state.store().execute(command.into()).await? {
        Outcome::Voted { contribution, datanet, status } => {
            if status != ContributionStatusCode::Pending && status != ContributionStatusCode::Flagged {
                // Accepted text must enter the index (its id may be below what is indexed).
                state.index().invalidate(datanet);
            }
            let status = tributary_core::registry::ContributionStatus::from(status).as_str().to_owned();
            Ok(Json(VoteResponse { contribution: contribution.to_string(), status }))
        }
        other => Err(unexpected(other)),
    }
}

/// Dispute an accepted contribution, with evidence (an earlier contribution it copies) or, as a
/// validator of its datanet, a reasoned claim.
#[utoipa::path(post, path = "/v1/disputes", request_body = OpenDisputeRequest,
    responses((status = 201, body = DisputeResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn open_dispute(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<OpenDisputeRequest>,
) -> ApiResult<impl IntoResponse> {
    let contribution: ContributionId = parse_id(&body.contribution)?;
    let evidence: Option<ContributionId> = body.evidence.as_deref().map(parse_id).transpose()?;
    let command =
        Command::OpenDispute { disputer: caller.account, contribution, evidence, claim: body.claim };
    match state.store().execute(command.into()).await? {
        Outcome::DisputeOpened(id) => {
            let dispute =
                state.store().dispute(id).await?.ok_or_else(|| ApiError::internal("dispute vanished"))?;
            Ok((StatusCode::CREATED, Json(DisputeResponse::from(dispute))))
        }
        other => Err(unexpected(other)),
    }
}

/// Vote on an open dispute (validators of the contribution's datanet, one vote each; its owner
/// decides while the datanet has no stake).
#[utoipa::path(post, path = "/v1/disputes/{id}/votes", params(("id" = String, Path)), request_body = DisputeVoteRequest,
    responses((status = 200, body = DisputeResponse), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn dispute_vote(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DisputeVoteRequest>,
) -> ApiResult<Json<DisputeResponse>> {
    let dispute = parse_dispute_id(&id)?;
    let command = Command::DisputeVote { validator: caller.account, dispute, uphold: body.uphold };
    match state.store().execute(command.into()).await? {
        Outcome::DisputeVoted { dispute, datanet, status } => {
            if status == DisputeStatus::Upheld {
                // The contribution stops earning: it leaves the index.
                state.index().invalidate(datanet);
            }
            let record = state
                .store()
                .dispute(dispute)
                .await?
                .ok_or_else(|| ApiError::internal("dispute vanished"))?;
            Ok(Json(record.into()))
        }
        other => Err(unexpected(other)),
    }
}

/// One dispute, its votes and what it slashed.
#[utoipa::path(get, path = "/v1/disputes/{id}", params(("id" = String, Path)),
    responses((status = 200, body = DisputeResponse), (status = 404, body = ErrorBody)))]
pub async fn get_dispute(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DisputeResponse>> {
    let id = parse_dispute_id(&id)?;
    let record = state
        .store()
        .dispute(id)
        .await?
        .ok_or_else(|| ApiError::not_found("dispute", format!("dsp_{id}")))?;
    Ok(Json(record.into()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use proptest::prelude::*;
    use tributary_index::segment::{DocumentInput, Segment, build_segments};

    use super::*;

    /// A view over a few documents of a small vocabulary (so runs of many words match), each in
    /// its own segment so the view has several.
    fn view(dir: &std::path::Path, documents: &[String]) -> IndexView {
        let mut segments = Vec::new();
        for (i, text) in documents.iter().enumerate() {
            let sub = dir.join(format!("s{i}"));
            std::fs::create_dir_all(&sub).expect("dir");
            let input = [DocumentInput { contribution: i as u64 + 1, contributor: 100 + i as u64, text }];
            for path in build_segments(&sub, &input, &|_| {}).expect("build") {
                segments.push((1, Arc::new(Segment::open(&path).expect("open"))));
            }
        }
        IndexView::with_datanets(segments)
    }

    fn text_of(words: &[u8]) -> String {
        const VOCABULARY: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
        words.iter().map(|&w| VOCABULARY[w as usize % 4]).collect::<Vec<_>>().join(" ")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The filtered search finds exactly the runs of searching from every word.
        #[test]
        fn filtered_search_finds_what_every_start_finds(
            documents in proptest::collection::vec(proptest::collection::vec(0u8..4, 5..80), 1..4),
            query in proptest::collection::vec(0u8..4, 1..60),
            min in 6usize..14,
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let documents: Vec<String> = documents.iter().map(|d| text_of(d)).collect();
            let view = view(dir.path(), &documents);
            let text = text_of(&query);
            let words: Vec<&str> = text.split(' ').collect();
            let fast = long_runs(&view, &words, min);
            let slow: Vec<(usize, usize)> = view
                .maximal_spans(&words)
                .into_iter()
                .filter(|s| s.len >= min)
                .map(|s| (s.start, s.len))
                .collect();
            // The maximal spans reaching past each other, restricted to long ones, are the long runs.
            let mut expected = Vec::new();
            let mut covered = 0;
            let all: Vec<usize> = (0..words.len()).collect();
            for (start, run) in all.iter().copied().zip(view.longest_from(&words, &all)) {
                if run >= min && start + run > covered {
                    covered = start + run;
                    expected.push((start, run));
                }
            }
            prop_assert_eq!(&fast, &expected);
            // And they cover the same words as the long maximal spans.
            let cover = |runs: &[(usize, usize)]| {
                let mut c = vec![false; words.len()];
                for &(s, l) in runs { for flag in &mut c[s..s + l] { *flag = true; } }
                c
            };
            prop_assert_eq!(cover(&fast), cover(&slow));
        }
    }

    #[test]
    fn copied_text_is_measured_and_own_text_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let original =
            "in the beginning god created the heaven and the earth and the earth was without form and void";
        let view = view(dir.path(), &[original.to_owned()]);
        let rules = DatanetRules::default();
        let copied = screen(&view, &format!("{original}. a few words of my own here"), AccountId(7), &rules);
        let containment = copied.containment.expect("measured");
        assert_eq!(containment.sources, [1]);
        assert!(containment.contained_bps > 6_000, "{containment:?}");
        // The author's own text (contributor 100) is not copied from anyone.
        let own = screen(&view, original, AccountId(100), &rules).containment.expect("measured");
        assert_eq!(own.contained_bps, 0);
    }
}
