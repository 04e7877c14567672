//! Server processes for tests: ours (the built binary) and TVM 0.27's own, plus the TVM
//! Python environment the project's script installs.

use std::fs::File;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory for this test process's logs.
pub fn scratch_dir() -> PathBuf {
    let dir = repo_root().join("target/test-scratch").join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The Python of the venv holding TVM 0.27 (created on first use by scripts/tvm-venv.sh).
pub fn tvm_python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/tvm-venv.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/tvm-venv.sh");
        assert!(out.status.success(), "scripts/tvm-venv.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server child process, killed when dropped (with every process it started).
pub struct ServerProcess {
    pub(crate) child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub name: String,
}

impl ServerProcess {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // TVM's server forks sessions and starts worker processes of its own; killing only
        // the server would leave them running. Each server leads its own process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn spawn_logged(mut cmd: Command, name: &str) -> (Child, PathBuf) {
    use std::os::unix::process::CommandExt;
    let log = scratch_dir().join(format!("{name}-{}.log", free_port()));
    let file = File::create(&log).unwrap();
    cmd.stdout(file.try_clone().unwrap()).stderr(file).stdin(Stdio::null()).process_group(0);
    let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    (child, log)
}

/// Starts `tensor-rpc server` on a free port with extra arguments.
pub fn start_ours(extra: &[&str]) -> ServerProcess {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tensor-rpc"));
    cmd.args(["server", "--host", "127.0.0.1", "--port", "0"]).args(extra);
    let (child, log) = spawn_logged(cmd, "tensor-rpc");
    let mut server = ServerProcess { child, port: 0, log, name: "tensor-rpc".into() };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = server.log_text();
        if let Some(line) = text.lines().find(|l| l.contains("listening on ")) {
            let addr = line.rsplit("listening on ").next().unwrap().trim();
            server.port = addr.rsplit(':').next().unwrap().parse().unwrap();
            return server;
        }
        assert!(server.is_running(), "tensor-rpc server exited:\n{text}");
        assert!(Instant::now() < deadline, "tensor-rpc server did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts TVM 0.27's `python -m tvm.exec.rpc_server` on a free port.
pub fn start_tvm_server(extra: &[&str]) -> ServerProcess {
    let port = free_port();
    let mut cmd = Command::new(tvm_python());
    cmd.args(["-m", "tvm.exec.rpc_server", "--host", "127.0.0.1"])
        .args(["--port", &port.to_string(), "--port-end", &(port + 1).to_string()])
        .args(extra);
    let (child, log) = spawn_logged(cmd, "tvm-server");
    let mut server = ServerProcess { child, port, log, name: "tvm-server".into() };
    wait_until_listening(&mut server);
    server
}

/// Waits until `server` prints that it has bound its port.
pub fn wait_until_listening(server: &mut ServerProcess) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = server.log_text();
        if text.contains("bind to") || text.contains("listening on") {
            // TVM logs just before it listens; give it a moment to reach accept().
            if TcpStream::connect(("127.0.0.1", server.port)).is_ok() {
                return;
            }
        }
        assert!(server.is_running(), "{} exited:\n{text}", server.name);
        assert!(Instant::now() < deadline, "{} did not start:\n{text}", server.name);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a Python script of tests/interop with TVM's Python, failing the test on error.
pub fn run_python(script: &str, args: &[String]) -> String {
    let output = run_python_raw(script, args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs a Python script of tests/interop, returning whatever happened.
pub fn run_python_raw(script: &str, args: &[String]) -> Output {
    let path = repo_root().join("tests/interop").join(script);
    let mut child = Command::new(tvm_python())
        .arg(path)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    // A wedged client must fail the test, not hang the suite.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let mut out = String::new();
            let _ = child.stdout.take().unwrap().read_to_string(&mut out);
            panic!("{script} {args:?} timed out; printed:\n{out}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts TVM 0.27's `python -m tvm.exec.rpc_tracker` on a free port.
pub fn start_tvm_tracker() -> ServerProcess {
    start_tvm_tracker_on(free_port())
}

/// Starts TVM's tracker on `port` (again, after a previous one there was killed).
pub fn start_tvm_tracker_on(port: u16) -> ServerProcess {
    let mut cmd = Command::new(tvm_python());
    cmd.args(["-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1"]).args([
        "--port",
        &port.to_string(),
        "--port-end",
        &(port + 1).to_string(),
    ]);
    let (child, log) = spawn_logged(cmd, "tvm-tracker");
    let mut tracker = ServerProcess { child, port, log, name: "tvm-tracker".into() };
    wait_until_listening(&mut tracker);
    tracker
}

/// Sends `signal` (e.g. "TERM") to the process alone, not its group.
pub fn signal(server: &ServerProcess, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {} failed", server.pid());
}

/// Waits until `check` holds, polling every 50 ms; false if `limit` passes first.
pub fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
