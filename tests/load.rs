//! Load: many concurrent clients doing a mixed workload (allocate, upload, kernel call,
//! download, free) with checksummed data, for a while: every answer must be right and every
//! call must succeed. Prints calls/s and latency quantiles.
//!
//! Short profile by default (16 clients, 4 s); the full one (64 clients, 30 s):
//! `TENSOR_RPC_PROFILE=full cargo test --release --test load -- --nocapture`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::profile::{self, Rng};
use support::raw::InProcessServer;
use tensor_rpc::client::{Arg, Client, ClientError, RemoteTensor};
use tensor_rpc::endpoint::tvm::codec::DataType;
use tensor_rpc::session::ServerUsage;

/// FNV-1a over the bytes of a tensor.
fn checksum(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

#[derive(Default)]
struct Tally {
    /// Latency of every RPC-level operation.
    latencies: Vec<Duration>,
    errors: Vec<String>,
    mismatches: u64,
    rounds: u64,
}

/// Times one operation, recording its latency or its error.
fn timed<T>(
    tally: &mut Tally,
    what: &str,
    f: impl FnOnce() -> Result<T, ClientError>,
) -> Option<T> {
    let start = Instant::now();
    let result = f();
    tally.latencies.push(start.elapsed());
    result.map_err(|e| tally.errors.push(format!("{what}: {e}"))).ok()
}

/// One round: a + b computed remotely on fresh tensors of a random size, downloaded and
/// compared by checksum with the sum computed here.
fn round(
    client: &Client,
    add: &tensor_rpc::client::RemoteFunction,
    rng: &mut Rng,
    tally: &mut Tally,
) {
    let dev = client.cpu(0);
    let n = 1 + rng.below(64 << 10) as i64;
    let a: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
    let b: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
    let expected: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let f32 = DataType::FLOAT32;
    let Some(ta) = timed(tally, "alloc", || RemoteTensor::empty(&dev, &[n], f32)) else { return };
    let Some(tb) = timed(tally, "alloc", || RemoteTensor::empty(&dev, &[n], f32)) else { return };
    let Some(out) = timed(tally, "alloc", || RemoteTensor::empty(&dev, &[n], f32)) else { return };
    if timed(tally, "upload", || ta.copy_from_slice(&a)).is_none()
        || timed(tally, "upload", || tb.copy_from_slice(&b)).is_none()
    {
        return;
    }
    let args = [Arg::Tensor(&ta), Arg::Tensor(&tb), Arg::Tensor(&out)];
    if timed(tally, "call", || add.call(&args)).is_none() {
        return;
    }
    let Some(sum) = timed(tally, "download", || out.to_bytes()) else { return };
    if checksum(&sum) != checksum(bytemuck::cast_slice(&expected)) {
        tally.mismatches += 1;
    }
    for t in [ta, tb, out] {
        let start = Instant::now();
        drop(t); // frees the remote tensor
        tally.latencies.push(start.elapsed());
    }
    tally.rounds += 1;
}

fn client_loop(addr: SocketAddr, seed: u64, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut rng = Rng::new(seed);
    let client = match Client::connect(addr, "") {
        Ok(c) => c,
        Err(e) => {
            tally.errors.push(format!("connect: {e}"));
            return tally;
        }
    };
    let Some(add) = timed(&mut tally, "lookup", || client.function("tensor_rpc.add")) else {
        return tally;
    };
    while Instant::now() < until {
        round(&client, &add, &mut rng, &mut tally);
    }
    tally
}

#[test]
fn concurrent_clients_with_a_mixed_workload_get_every_answer_right() {
    let clients = profile::pick(16, 64);
    let duration = Duration::from_secs(profile::pick(4, 30));
    let usage = ServerUsage::new();
    let server_usage = Arc::clone(&usage);
    let server = InProcessServer::start(move |config| {
        config.connection.session.usage = server_usage;
        // Every client at once, whatever the default limit.
        config.max_sessions = clients;
    });
    let addr = server.addr;
    let until = Instant::now() + duration;
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|i| std::thread::spawn(move || client_loop(addr, 0xC0FFEE + i as u64, until)))
        .collect();
    let mut total = Tally::default();
    for t in threads {
        let tally = t.join().expect("client thread");
        total.latencies.extend(tally.latencies);
        total.errors.extend(tally.errors);
        total.mismatches += tally.mismatches;
        total.rounds += tally.rounds;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let calls = total.latencies.len();
    let p50 = profile::quantile(&mut total.latencies, 0.50);
    let p99 = profile::quantile(&mut total.latencies, 0.99);
    let max = total.latencies.last().copied().unwrap_or_default();
    println!(
        "load: {clients} clients for {:.1}s: {} rounds, {calls} calls, {:.0} calls/s; \
         latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; errors {}, mismatches {}",
        elapsed,
        total.rounds,
        calls as f64 / elapsed,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        total.errors.len(),
        total.mismatches,
    );
    assert!(total.errors.is_empty(), "errors: {:?}", &total.errors[..total.errors.len().min(5)]);
    assert_eq!(total.mismatches, 0, "downloaded sums that differ from the local ones");
    assert!(total.rounds >= clients as u64, "every client finished at least one round");
}
