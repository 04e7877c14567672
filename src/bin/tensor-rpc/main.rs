//! The `tensor-rpc` command: a TVM-RPC-compatible server for remote tensor compute, and a
//! small client for calling, inspecting and finding servers.

mod log_sink;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use tensor_rpc::client::{Arg, Client, TrackerClient};
use tensor_rpc::endpoint::EndpointConfig;
use tensor_rpc::endpoint::tvm::codec::{DeviceAttrKind, Value};
use tensor_rpc::kernels::GemmBackend;
use tensor_rpc::server::{
    ConnectionConfig, GgmlConfig, Server, ServerConfig, Timeouts, TrackerConfig,
};
use tensor_rpc::session::ggml::TensorCache;
use tensor_rpc::session::{FunctionRegistry, SessionConfig};

const ABOUT: &str = "Remote tensor compute over Apache TVM's RPC protocol (TVM 0.27, \"0.8.0\")
and llama.cpp's ggml-RPC (7.0.0), both on one port.

Where you ran `python -m tvm.exec.rpc_server`, run `tensor-rpc server`: TVM's client
(`rpc.connect`, `rpc.connect_tracker(..).request(key)`) and tracker
(`python -m tvm.exec.rpc_tracker`) work with it unchanged. Where you ran ggml's
`rpc-server`, run `tensor-rpc server -H HOST -p PORT`: `llama-cli --rpc HOST:PORT` puts a
model's layers on it.";

#[derive(Parser)]
#[command(version, about = ABOUT)]
struct Cli {
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, global = true, default_value = "info")]
    log_level: log::LevelFilter,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve RPC sessions, like `python -m tvm.exec.rpc_server`.
    Server(ServerArgs),
    /// Call a global function of a server, like `remote.get_function(FUNC)(ARGS...)`.
    Call(CallArgs),
    /// Show a server's device attributes and largest packet.
    Info(TargetArgs),
    /// List the servers and queues of a TVM tracker, like `python -m tvm.exec.query_rpc_tracker`.
    TrackerStatus(TrackerStatusArgs),
}

#[derive(Args)]
struct ServerArgs {
    /// Address to listen on (ggml rpc-server's -H/--host).
    #[arg(short = 'H', long, default_value = "0.0.0.0")]
    host: String,
    /// Port to listen on (0 picks a free one; the log says which).
    #[arg(short, long, default_value_t = 9090)]
    port: u16,
    /// Threads the kernels compute on (ggml rpc-server's -t/--threads; default: one per
    /// core).
    #[arg(short, long)]
    threads: Option<usize>,
    /// Keep weights llama.cpp clients upload in DIR and skip their upload next time (ggml
    /// rpc-server's -c/--cache; DIR defaults to its directory, $LLAMA_CACHE or
    /// ~/.cache/llama.cpp, plus rpc/).
    #[arg(short, long, value_name = "DIR", num_args = 0..=1, default_missing_value = "")]
    cache: Option<String>,
    /// Most bytes the cache directory may hold; least recently used weights go first.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "20G")]
    cache_max: u64,
    /// Device key (TVM's `--key`). Without a tracker clients must present it
    /// (`rpc.connect(host, port, key=KEY)`); with one, clients ask the tracker for it.
    #[arg(long, default_value = "")]
    key: String,
    /// Register with TVM's tracker at HOST:PORT (TVM's `--tracker`); needs --key.
    #[arg(long, value_name = "HOST:PORT", requires = "key")]
    tracker: Option<String>,
    /// Address the tracker gives clients for this server (TVM's `--custom-addr`); default:
    /// the address the tracker sees.
    #[arg(long, value_name = "ADDR")]
    custom_addr: Option<String>,
    /// Sessions served through the tracker at once. With 1 (TVM's behaviour) the tracker
    /// lists the server as busy while a client it sent holds a session, so tuning tools
    /// measure on an otherwise idle server; more lets the tracker send more clients at once.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "tracker",
          value_parser = clap::value_parser!(u64).range(1..))]
    tracker_sessions: u64,
    /// Largest packet accepted, in bytes; TVM clients split copies to fit.
    #[arg(long, default_value_t = tensor_rpc::endpoint::DEFAULT_MAX_PACKET)]
    max_packet: u64,
    /// Most sessions served at once; the next client is refused with a message.
    #[arg(long, default_value_t = 64)]
    max_sessions: usize,
    /// Most device memory one session may hold (bytes, or with K/M/G suffix; 0: no
    /// limit). Default: half of this machine's memory.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    memory_limit: Option<u64>,
    /// Seconds a client has to complete its handshake.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    handshake_timeout: f64,
    /// Most connections in their handshake at once; more are closed on accept.
    #[arg(long, default_value_t = 128)]
    max_handshaking: usize,
    /// Seconds a session may stay silent before it is closed (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 900.0)]
    idle_timeout: f64,
    /// Threads running long requests off the event loop (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// After requests that come within this many microseconds of each other, poll without
    /// sleeping for that long before blocking (0: off).
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 50)]
    busy_poll_us: u64,
    /// GEMM implementation of matmuls: blis, gemm-crate or matrixmultiply.
    #[arg(long, value_parser = parse_gemm_backend, default_value_t = GemmBackend::default())]
    gemm_backend: GemmBackend,
}

/// Which server a client command talks to: an address, or a tracker and key.
#[derive(Args)]
struct TargetArgs {
    /// Server address.
    #[arg(
        long,
        value_name = "HOST:PORT",
        required_unless_present = "tracker",
        conflicts_with = "tracker"
    )]
    addr: Option<String>,
    /// Ask this TVM tracker for a server of --key instead.
    #[arg(long, value_name = "HOST:PORT", requires = "key")]
    tracker: Option<String>,
    /// The server's key (with --addr: the key it was started with).
    #[arg(long, default_value = "")]
    key: String,
    /// Priority of the tracker request.
    #[arg(long, default_value_t = 1)]
    priority: i64,
}

#[derive(Args)]
struct CallArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Global function name, e.g. testing.echo or tensor_rpc.stats.
    func: String,
    /// Arguments: integers and floats as numbers, anything else as a string
    /// (prefix `str:` to pass a number as a string).
    args: Vec<String>,
}

#[derive(Args)]
struct TrackerStatusArgs {
    /// Tracker address.
    #[arg(long, value_name = "HOST:PORT")]
    tracker: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log_sink::init(cli.log_level);
    let result = match cli.command {
        Command::Server(args) => serve(args),
        Command::Call(args) => call(args),
        Command::Info(args) => info(args),
        Command::TrackerStatus(args) => tracker_status(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}:{port}"))?
        .next()
        .with_context(|| format!("{host}:{port} resolves to no address"))
}

/// `123`, `64K`, `512M`, `4G` (powers of 1024).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 10),
        Some((i, 'm' | 'M')) => (&text[..i], 20),
        Some((i, 'g' | 'G')) => (&text[..i], 30),
        Some((i, 't' | 'T')) => (&text[..i], 40),
        _ => (text, 0),
    };
    let n: u64 =
        digits.parse().map_err(|_| format!("{text:?} is not a size like 4096, 512M or 4G"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("{text} is too large"))
}

fn parse_gemm_backend(text: &str) -> Result<GemmBackend, String> {
    let backend = GemmBackend::from_name(text).ok_or_else(|| {
        format!("unknown GEMM backend {text:?} (blis, gemm-crate or matrixmultiply)")
    })?;
    if !backend.is_available() {
        return Err(format!("GEMM backend {text} is not compiled into this build"));
    }
    Ok(backend)
}

/// Half of the machine's memory, from /proc/meminfo.
fn half_of_ram() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024 / 2)
}

fn seconds(value: f64, flag: &str) -> Result<Option<Duration>> {
    if !value.is_finite() || value < 0.0 {
        bail!("{flag} must be a number of seconds >= 0, not {value}");
    }
    Ok((value > 0.0).then(|| Duration::from_secs_f64(value)))
}

/// ggml rpc-server's cache directory: `$LLAMA_CACHE`, else `$XDG_CACHE_HOME/llama.cpp`,
/// else `~/.cache/llama.cpp`; then `rpc/`.
fn default_cache_dir() -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = env("LLAMA_CACHE").or_else(|| {
        env("XDG_CACHE_HOME")
            .or_else(|| env("HOME").map(|home| home.join(".cache")))
            .map(|cache| cache.join("llama.cpp"))
    })?;
    Some(base.join("rpc"))
}

fn open_cache(args: &ServerArgs) -> Result<Option<Arc<TensorCache>>> {
    let Some(dir) = &args.cache else { return Ok(None) };
    let dir = match dir.as_str() {
        "" => default_cache_dir().context("no cache directory: set --cache DIR or $HOME")?,
        dir => PathBuf::from(dir),
    };
    let cache = TensorCache::open(&dir, args.cache_max)
        .with_context(|| format!("cannot use cache directory {}", dir.display()))?;
    log::info!("tensor cache in {} (at most {} bytes)", dir.display(), args.cache_max);
    Ok(Some(Arc::new(cache)))
}

fn serve(args: ServerArgs) -> Result<()> {
    // Large buffers on mmap, so a closed session's memory goes back to the system.
    tensor_rpc::server::memory_tuning::release_freed_memory_promptly();
    if let Some(threads) = args.threads {
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        tensor_rpc::kernels::set_compute_threads(threads);
    }
    let cache = open_cache(&args)?;
    let addr = resolve(&args.host, args.port)?;
    let memory_limit = match args.memory_limit {
        Some(0) => None,
        Some(limit) => Some(limit),
        None => half_of_ram(),
    };
    let endpoint = EndpointConfig { max_packet: args.max_packet, ..EndpointConfig::default() };
    let session = SessionConfig {
        max_packet: args.max_packet,
        memory_limit,
        gemm_backend: args.gemm_backend,
        ..SessionConfig::default()
    };
    let timeouts = Timeouts {
        handshake: seconds(args.handshake_timeout, "--handshake-timeout")?
            .context("--handshake-timeout must be above 0")?,
        idle: seconds(args.idle_timeout, "--idle-timeout")?,
    };
    let connection = ConnectionConfig {
        match_key: args.key.clone(),
        server_key: args.key.clone(),
        endpoint,
        session,
        registry: Arc::new(FunctionRegistry::with_builtins()),
        timeouts,
        ggml: GgmlConfig { cache, ..GgmlConfig::default() },
        ..ConnectionConfig::default()
    };
    let tracker = args.tracker.map(|addr| TrackerConfig {
        addr,
        key: args.key.clone(),
        custom_addr: args.custom_addr.clone(),
        sessions: usize::try_from(args.tracker_sessions).unwrap_or(usize::MAX),
    });
    let defaults = ServerConfig::new(addr);
    let config = ServerConfig {
        connection,
        workers: args.workers.or(args.threads).unwrap_or(defaults.workers).max(1),
        max_sessions: args.max_sessions,
        max_handshaking: args.max_handshaking.max(1),
        busy_poll: Duration::from_micros(args.busy_poll_us),
        tracker,
        ..defaults
    };
    let mut server = Server::bind(config).with_context(|| format!("cannot listen on {addr}"))?;
    // A thread waits for SIGINT/SIGTERM and asks the loop to stop through its Waker, so the
    // server library itself knows nothing of signals.
    let shutdown = server.shutdown_handle();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("cannot install signal handlers")?;
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            log::info!("signal {signal} received: stopping");
            shutdown.shutdown();
        }
    })?;
    log::info!(
        "at most {} sessions, memory limit per session {}, gemm backend {}, busy-poll {} us",
        args.max_sessions,
        memory_limit.map_or("none".into(), |m| format!("{m} bytes")),
        args.gemm_backend,
        args.busy_poll_us,
    );
    // Tests and scripts read the address from the end of this line.
    log::info!("tensor-rpc server listening on {}", server.local_addr()?);
    server.run().context("server loop failed")?;
    log::info!("tensor-rpc server stopped");
    Ok(())
}

fn connect(target: &TargetArgs) -> Result<Client> {
    match (&target.addr, &target.tracker) {
        (Some(addr), _) => Client::connect(addr.as_str(), &target.key)
            .with_context(|| format!("cannot connect to {addr}")),
        (None, Some(tracker)) => {
            Client::via_tracker(tracker.as_str(), &target.key, target.priority).with_context(|| {
                format!("cannot get a server of key {:?} from tracker {tracker}", target.key)
            })
        }
        (None, None) => bail!("give --addr HOST:PORT or --tracker HOST:PORT --key KEY"),
    }
}

fn parse_arg(text: &str) -> Value {
    if let Some(s) = text.strip_prefix("str:") {
        return Value::Str(s.to_owned());
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Int(i);
    }
    if let Ok(f) = text.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(text.to_owned())
}

fn show(value: &Value) -> String {
    match value {
        Value::None => "None".into(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => format!("<{} bytes>", b.len()),
        other => format!("{other:?}"),
    }
}

fn call(args: CallArgs) -> Result<()> {
    let client = connect(&args.target)?;
    let function = client.function(&args.func)?;
    let values: Vec<Arg<'_>> = args.args.iter().map(|a| Arg::Value(parse_arg(a))).collect();
    let result = function.call(&values).with_context(|| format!("{} failed", args.func))?;
    println!("{}", show(&result));
    Ok(())
}

fn info(args: TargetArgs) -> Result<()> {
    let client = connect(&args)?;
    let dev = client.cpu(0);
    let attr = |kind: DeviceAttrKind| dev.attr(kind).map(|v| show(&v));
    println!("server            {}", client.peer());
    println!("device            cpu(0)");
    println!("exist             {}", attr(DeviceAttrKind::EXIST)?);
    println!("name              {}", attr(DeviceAttrKind::DEVICE_NAME)?);
    println!("max clock (kHz)   {}", attr(DeviceAttrKind::MAX_CLOCK_RATE)?);
    println!("processors        {}", attr(DeviceAttrKind::MULTI_PROCESSOR_COUNT)?);
    println!("total memory      {}", attr(DeviceAttrKind::TOTAL_GLOBAL_MEMORY)?);
    println!("available memory  {}", attr(DeviceAttrKind::AVAILABLE_GLOBAL_MEMORY)?);
    let max_packet = client.max_packet()?;
    if max_packet == u64::MAX {
        println!("max packet        no limit");
    } else {
        println!("max packet        {max_packet}");
    }
    Ok(())
}

fn tracker_status(args: TrackerStatusArgs) -> Result<()> {
    let mut tracker = TrackerClient::connect(args.tracker.as_str())
        .with_context(|| format!("cannot reach tracker {}", args.tracker))?;
    let summary = tracker.summary()?;
    println!("Server List");
    println!("{:<24} key", "server-address");
    let mut servers = summary.servers.clone();
    servers.sort_by(|a, b| a.key.cmp(&b.key));
    for s in &servers {
        let addr = format!(
            "{}:{}",
            s.host.as_deref().unwrap_or("?"),
            s.port.map_or("?".into(), |p| p.to_string())
        );
        println!("{addr:<24} {}", s.key);
    }
    println!();
    println!("Queue Status");
    println!("{:<16} {:>6} {:>6} {:>8}", "key", "total", "free", "pending");
    for (key, queue) in &summary.queues {
        let total = summary.servers_with_key(key);
        if total > 0 || queue.pending > 0 {
            println!("{key:<16} {total:>6} {:>6} {:>8}", queue.free, queue.pending);
        }
    }
    Ok(())
}
