//! A small HTTP client for the node's API, used by the CLI commands, the demo and the benchmark.

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

/// A response whose status was not a success: the node's JSON error, kept whole.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.message)
    }
}

impl std::error::Error for ApiFailure {}

impl Client {
    pub fn new(base: &str, key: Option<String>) -> Client {
        Client { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_owned(), key }
    }

    pub fn with_key(&self, key: &str) -> Client {
        Client { http: self.http.clone(), base: self.base.clone(), key: Some(key.to_owned()) }
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path, None, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(Method::POST, path, Some(body), None).await
    }

    pub async fn post_keyed(
        &self,
        path: &str,
        body: Value,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Value> {
        self.send(Method::POST, path, Some(body), idempotency_key).await
    }

    pub async fn put(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(Method::PUT, path, Some(body), None).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.send(Method::PATCH, path, Some(body), None).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{}", self.base, path);
        let mut request = self.http.request(method.clone(), &url);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(idempotency_key) = idempotency_key {
            request = request.header("Idempotency-Key", idempotency_key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response =
            request.send().await.with_context(|| format!("{method} {url}: is the node running?"))?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("{method} {url}: reading the response"))?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(value);
        }
        let code = value["error"]["code"].as_str().unwrap_or("unknown").to_owned();
        let message =
            value["error"]["message"].as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
        Err(ApiFailure { status, code, message }.into())
    }
}

/// Reads a JSON string field or fails with the field's name.
pub fn field(value: &Value, name: &str) -> anyhow::Result<String> {
    match value.get(name).and_then(Value::as_str) {
        Some(text) => Ok(text.to_owned()),
        None => bail!("response has no string field {name:?}: {value}"),
    }
}
