//! Starts the real `tributary` binary as a child process on a free loopback port, for tests that
//! talk to it over HTTP the way a user does.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A small seeded generator (xorshift64), so that a failing run replays with the same choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub struct Node {
    pub child: Child,
    pub base: String,
    pub data: PathBuf,
    pub operator_key: String,
    pub http: reqwest::Client,
}

impl Node {
    /// Starts `tributary serve` on `data` and waits until it listens.
    pub fn start(data: &Path, extra_args: &[&str]) -> Node {
        Node::start_with_env(data, extra_args, &[])
    }

    /// Like [`Node::start`], with extra environment variables for the node.
    pub fn start_with_env(data: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Node {
        let (child, base) = spawn(data, extra_args, env);
        let operator_key = std::fs::read_to_string(data.join("operator.key"))
            .expect("the operator key file exists")
            .trim()
            .to_owned();
        Node { child, base, data: data.to_owned(), operator_key, http: reqwest::Client::new() }
    }

    /// Like [`Node::start`], for a node that may not hold the operator's key (another node on its
    /// database made the operator): `operator_key` is then empty.
    pub fn start_sharing(data: &Path, extra_args: &[&str]) -> Node {
        let (child, base) = spawn(data, extra_args, &[]);
        let operator_key = std::fs::read_to_string(data.join("operator.key"))
            .map(|key| key.trim().to_owned())
            .unwrap_or_default();
        Node { child, base, data: data.to_owned(), operator_key, http: reqwest::Client::new() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request and returns (status, parsed JSON body or Null).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_with(method, path, key, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the node answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, self.url(path)).body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("the node answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Runs `tributary ARGS` against this node with `key` (none: no key at all); returns the exit
    /// code, stdout as JSON (Null if it is not JSON) and stderr.
    pub fn cli(&self, key: Option<&str>, args: &[&str]) -> (i32, Value, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
        command.args(args).env("TRIBUTARY_NODE", &self.base).env_remove("TRIBUTARY_API_KEY");
        if let Some(key) = key {
            command.env("TRIBUTARY_API_KEY", key);
        }
        let output = command.output().expect("the CLI runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code().unwrap_or(-1), serde_json::from_str(&stdout).unwrap_or(Value::Null), stderr)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id() as i32;
        // kill(1) rather than libc keeps the workspace free of unsafe code.
        Command::new("kill").args(["-TERM", &pid.to_string()]).status().expect("kill runs");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the node did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

/// Starts `tributary serve` on `data` and waits until it reports the address it listens on.
fn spawn(data: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["serve", "--data"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .args(extra_args)
        .env("TRIBUTARY_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the tributary binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(address) = line.strip_prefix("tributary listening on ") {
                let _ = sender.send(address.to_owned());
            }
        }
    });
    let base = receiver.recv_timeout(Duration::from_secs(30)).expect("the node reports its address");
    (child, base)
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates an account with the operator's key (not rate-limited) and returns (id, api key).
pub async fn account(node: &Node, name: &str) -> (String, String) {
    let (status, body) = node
        .call("POST", "/v1/accounts", Some(&node.operator_key), Some(serde_json::json!({"name": name})))
        .await;
    assert_eq!(status, 201, "{body}");
    (body["id"].as_str().expect("id").to_owned(), body["api_key"].as_str().expect("key").to_owned())
}

pub async fn deposit(node: &Node, account: &str, amount: &str) {
    let (status, body) = node
        .call(
            "POST",
            "/v1/deposits",
            Some(&node.operator_key),
            Some(serde_json::json!({"account": account, "amount": amount})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

pub async fn balance(node: &Node, account: &str) -> (String, String) {
    let (status, body) =
        node.call("GET", &format!("/v1/accounts/{account}"), Some(&node.operator_key), None).await;
    assert_eq!(status, 200, "{body}");
    (body["balance"].as_str().expect("balance").to_owned(), body["held"].as_str().expect("held").to_owned())
}

/// The repository's root (tests run from the crate's directory).
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root")
}

/// The npm tooling under contracts/ (anvil, solc-js, @openzeppelin/merkle-tree).
pub fn contracts_tool(name: &str) -> PathBuf {
    let path = repository_root().join("contracts/node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run ./scripts/fetch-test-data.sh (it installs contracts/ with npm)",
        path.display()
    );
    path
}

/// anvil's own executable. `node_modules/.bin/anvil` is a Node wrapper that starts it as a child,
/// and killing the wrapper would leave the chain running.
fn anvil_binary() -> PathBuf {
    contracts_tool("anvil");
    let packages = repository_root().join("contracts/node_modules/@foundry-rs");
    std::fs::read_dir(&packages)
        .expect("@foundry-rs packages")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin/anvil"))
        .find(|path| path.is_file())
        .expect("a platform package of anvil with bin/anvil")
}

/// A real local EVM chain: anvil on a free loopback port, stopped when dropped.
pub struct Anvil {
    child: Child,
    pub url: String,
}

/// anvil's first two well-known development keys (public test keys, funded on every anvil).
pub const ANVIL_KEYS: [&str; 2] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
];

impl Anvil {
    pub fn start() -> Anvil {
        let mut child = Command::new(anvil_binary())
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("anvil starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(address) = line.trim().strip_prefix("Listening on ") {
                    let _ = sender.send(address.to_owned());
                }
            }
        });
        let address = receiver.recv_timeout(Duration::from_secs(30)).expect("anvil reports its address");
        Anvil { child, url: format!("http://{address}") }
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `tributary` binary with `args`; returns (success, stdout, stderr).
pub fn cli(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tributary")).args(args).output().expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The PostgreSQL server tests use (`TRIBUTARY_TEST_POSTGRES`, a URL without a database name).
pub fn postgres_server() -> String {
    std::env::var("TRIBUTARY_TEST_POSTGRES").unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".into())
}

/// A PostgreSQL database of the test's own, created with `psql` and dropped when the test ends.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl PgDatabase {
    pub fn create(label: &str) -> PgDatabase {
        let name = format!("tributary_{label}_{}", std::process::id());
        psql(
            &format!("{}/postgres", postgres_server()),
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        psql(&format!("{}/postgres", postgres_server()), &format!("CREATE DATABASE {name}"));
        PgDatabase { url: format!("{}/{name}", postgres_server()), name }
    }

    /// Runs SQL on the database; returns the rows, unaligned, one per line.
    pub fn query(&self, sql: &str) -> String {
        psql(&self.url, sql)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let url = format!("{}/postgres", postgres_server());
        let _ = Command::new("psql")
            .args([url.as_str(), "-Atc", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)])
            .output();
    }
}

fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-Atc", sql])
        .output()
        .expect("psql runs (./scripts/test.sh installs and starts PostgreSQL)");
    assert!(output.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
