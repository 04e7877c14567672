//! The `tensor-rpc` command: a TVM-RPC-compatible server for remote tensor compute.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use tensor_rpc::endpoint::EndpointConfig;
use tensor_rpc::server::{ConnectionConfig, Server, ServerConfig};
use tensor_rpc::session::{FunctionRegistry, SessionConfig};

#[derive(Parser)]
#[command(version, about = "Remote tensor compute over Apache TVM's RPC protocol (0.8.0)")]
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
}

#[derive(clap::Args)]
struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 9090)]
    port: u16,
    /// Key clients must present (TVM's `--key`); empty accepts `rpc.connect(host, port)`.
    #[arg(long, default_value = "")]
    key: String,
    /// Largest packet accepted, in bytes; TVM clients split copies to fit.
    #[arg(long, default_value_t = tensor_rpc::endpoint::DEFAULT_MAX_PACKET)]
    max_packet: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = simple_logger::SimpleLogger::new().with_level(cli.log_level).init() {
        eprintln!("cannot set up logging: {e}");
    }
    let result = match cli.command {
        Command::Server(args) => serve(args),
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

fn serve(args: ServerArgs) -> Result<()> {
    let addr = resolve(&args.host, args.port)?;
    let endpoint = EndpointConfig { max_packet: args.max_packet, ..EndpointConfig::default() };
    let session = SessionConfig { max_packet: args.max_packet, ..SessionConfig::default() };
    let connection = ConnectionConfig {
        match_key: args.key.clone(),
        server_key: args.key.clone(),
        endpoint,
        session,
        registry: Arc::new(FunctionRegistry::with_builtins()),
        ..ConnectionConfig::default()
    };
    let config = ServerConfig { connection, ..ServerConfig::new(addr) };
    let mut server = Server::bind(config).with_context(|| format!("cannot listen on {addr}"))?;
    log::info!("tensor-rpc server listening on {}", server.local_addr()?);
    server.run().context("server loop failed")
}
