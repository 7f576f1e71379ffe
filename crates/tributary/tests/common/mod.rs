//! Starts the real `tributary` binary as a child process on a free loopback port, for tests that
//! talk to it over HTTP the way a user does.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

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
        let operator_key = std::fs::read_to_string(data.join("operator.key"))
            .expect("the operator key file exists")
            .trim()
            .to_owned();
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
