//! The reference llama.cpp for tests: its binaries and models, as the project's scripts
//! install them (scripts/llama-ref.sh, scripts/llama-models.sh; built once, cached under
//! target/llama-ref), ggml's own rpc-server, and llama.cpp's client (greedy-ids).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::servers::{ServerProcess, free_port, repo_root, spawn_logged};

fn script_output(script: &str) -> PathBuf {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts").join(script))
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run scripts/{script}: {e}"));
    assert!(out.status.success(), "scripts/{script} failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The bin dir of the reference llama.cpp (built on first use).
pub fn llama_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| script_output("llama-ref.sh"))
}

/// The random-weight models (made on first use).
pub fn llama_models() -> &'static Path {
    static MODELS: OnceLock<PathBuf> = OnceLock::new();
    MODELS.get_or_init(|| script_output("llama-models.sh"))
}

pub fn model(name: &str) -> PathBuf {
    let path = llama_models().join(format!("{name}.gguf"));
    assert!(path.exists(), "no model {}", path.display());
    path
}

/// Starts ggml's own rpc-server on a free port with `threads` threads.
pub fn start_rpc_server(threads: usize) -> ServerProcess {
    let port = free_port();
    let mut cmd = Command::new(llama_bin().join("ggml-rpc-server"));
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string(), "-t", &threads.to_string()]);
    let (child, log) = spawn_logged(cmd, "ggml-rpc-server");
    let mut server = ServerProcess { child, port, log, name: "ggml-rpc-server".into() };
    // It prints no line once listening; a connection it accepts says so (it serves one
    // client at a time, and an empty connection ends at once).
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(server.is_running(), "ggml-rpc-server exited:\n{}", server.log_text());
        assert!(Instant::now() < deadline, "ggml-rpc-server did not start:\n{}", server.log_text());
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

/// How llama.cpp's client runs a model.
#[derive(Debug, Clone)]
pub struct Generation {
    pub model: String,
    pub tokens: usize,
    pub flash_attn: bool,
    /// Extra greedy-ids flags (`-ctk q8_0`, `-ts 1,1`, ...).
    pub extra: Vec<String>,
}

impl Generation {
    pub fn new(model: &str) -> Self {
        Generation { model: model.into(), tokens: 16, flash_attn: false, extra: vec![] }
    }

    pub fn flash_attn(mut self, on: bool) -> Self {
        self.flash_attn = on;
        self
    }

    pub fn with(mut self, flags: &[&str]) -> Self {
        self.extra.extend(flags.iter().map(|f| f.to_string()));
        self
    }
}

/// The greedy token ids llama.cpp's client generates with every layer on the RPC servers
/// `servers` (one thread on the client, as the server side is what is measured).
pub fn greedy_ids(generation: &Generation, servers: &[String]) -> Vec<u32> {
    let mut cmd = Command::new(llama_bin().join("greedy-ids"));
    cmd.arg("-m")
        .arg(model(&generation.model))
        .args(["-n", &generation.tokens.to_string(), "-t", "1", "-ngl", "99"])
        .args(["-fa", if generation.flash_attn { "on" } else { "off" }])
        .args(["--rpc", &servers.join(",")])
        .args(&generation.extra)
        .arg("Once upon a time")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("start greedy-ids");
    let started = Instant::now();
    let output = child.wait_with_output().expect("run greedy-ids");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "greedy-ids {generation:?} on {servers:?} failed after {:?}:\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stderr)
    );
    let ids: Vec<u32> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("GREEDY_ID "))
        .map(|id| id.trim().parse().unwrap())
        .collect();
    assert_eq!(ids.len(), generation.tokens, "greedy-ids printed:\n{stdout}");
    ids
}

/// Runs scripts/test-backend-ops.sh against `server` for `ops` and returns its JSON summary.
pub fn test_backend_ops(server: &str, ops: &[&str], timeout: Duration) -> serde_json::Value {
    let json = super::servers::scratch_dir().join(format!("backend-ops-{}.json", free_port()));
    let mut child = Command::new("bash")
        .arg(repo_root().join("scripts/test-backend-ops.sh"))
        .arg("--json")
        .arg(&json)
        .arg(server)
        .args(ops)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run scripts/test-backend-ops.sh");
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("test-backend-ops {ops:?} on {server} took longer than {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = std::fs::read_to_string(&json).expect("the summary was written");
    serde_json::from_str(&text).expect("the summary is JSON")
}
