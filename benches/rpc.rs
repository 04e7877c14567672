//! Benchmarks our Rust client against RPC servers (ours, TVM's) side by side, printing JSON.
//!
//! `cargo bench --bench rpc -- ADDR... [--spin-us N] [--seconds S] [--sizes-mib 1,64,256]
//! [--only floor,echo,pipelined,transfer,concurrent]`
//!
//! Every section alternates between the servers given, round by round, so that each sees the
//! same minutes of this machine (its speed drifts from minute to minute); the JSON holds one
//! object of figures per server, in the order given, under `servers`.
//!
//! Also measures the floor of this machine in the same run: a 32-byte TCP ping-pong between
//! two threads over loopback, once blocking and once spinning on non-blocking sockets.
//! `bench/run.py` runs this against both servers and prints the comparison.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tensor_rpc::client::{Arg, ChannelOptions, Client, RemoteTensor};
use tensor_rpc::endpoint::tvm::codec::DataType;

struct Options {
    /// The servers, measured side by side: every section alternates between them.
    addrs: Vec<String>,
    spin: Duration,
    seconds: f64,
    sizes_mib: Vec<usize>,
    /// Sections to run (floor, echo, pipelined, transfer, concurrent); empty runs all.
    only: Vec<String>,
}

impl Options {
    fn runs(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

fn parse_options() -> Options {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut options = Options {
        addrs: Vec::new(),
        spin: Duration::from_micros(50),
        seconds: 2.0,
        sizes_mib: vec![1, 64, 256],
        only: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match arg.as_str() {
            "--spin-us" => options.spin = Duration::from_micros(value().parse().expect("µs")),
            "--seconds" => options.seconds = value().parse().expect("seconds"),
            "--sizes-mib" => {
                options.sizes_mib = value().split(',').map(|s| s.parse().expect("MiB")).collect()
            }
            "--only" => options.only = value().split(',').map(str::to_owned).collect(),
            addr => options.addrs.push(addr.to_owned()),
        }
    }
    if options.addrs.is_empty() {
        eprintln!(
            "usage: cargo bench --bench rpc -- HOST:PORT... [flags] (scripts/bench.sh runs it)"
        );
        std::process::exit(2);
    }
    options
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The p50, p99 and count of `micros`.
fn latency(mut micros: Vec<f64>) -> Map<String, Value> {
    micros.sort_by(f64::total_cmp);
    let mut fields = Map::new();
    fields.insert("p50_us".into(), percentile(&micros, 0.5).into());
    fields.insert("p99_us".into(), percentile(&micros, 0.99).into());
    fields.insert("samples".into(), micros.len().into());
    fields
}

/// 32-byte ping-pong between two threads over loopback: the floor any RPC pays here.
fn ping_pong_floor(spinning: bool, rounds: usize) -> Map<String, Value> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        s.set_nonblocking(spinning).unwrap();
        let mut buf = [0u8; 32];
        for _ in 0..rounds {
            read_full(&mut s, &mut buf);
            write_full(&mut s, &buf);
        }
    });
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_nonblocking(spinning).unwrap();
    let mut buf = [7u8; 32];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        write_full(&mut s, &buf.clone());
        read_full(&mut s, &mut buf);
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    echo.join().unwrap();
    latency(times)
}

fn read_full(s: &mut TcpStream, buf: &mut [u8]) {
    let mut at = 0;
    while at < buf.len() {
        match s.read(&mut buf[at..]) {
            Ok(0) => panic!("peer closed"),
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => panic!("{e}"),
        }
    }
}

fn write_full(s: &mut TcpStream, buf: &[u8]) {
    let mut at = 0;
    while at < buf.len() {
        match s.write(&buf[at..]) {
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => panic!("{e}"),
        }
    }
}

fn connect(addr: &str, spin: Duration) -> Client {
    let options = ChannelOptions { busy_poll: spin, ..ChannelOptions::default() };
    Client::connect_with(addr, options).expect("connect")
}

/// The order in which round `round` visits `servers` servers: rotated each round, so that no
/// server always runs first (right after the previous round's work, or after a pause).
fn round_order(round: usize, servers: usize) -> impl Iterator<Item = usize> {
    (0..servers).map(move |i| (round + i) % servers)
}

/// Calls per block of the echo latency: each server gets one block of this many calls in turn.
const ECHO_BLOCK: usize = 500;

/// Echo round trips to every server from one thread, in alternating blocks of `ECHO_BLOCK`,
/// `calls` to each: each server's p50/p99, and the median over blocks of its block p50 over the
/// first server's (so both see the same minutes of this machine, whose speed drifts).
fn echo_latency(o: &Options, spin: Duration, calls: usize) -> Vec<Map<String, Value>> {
    let echoes: Vec<_> = o
        .addrs
        .iter()
        .map(|addr| {
            let echo = connect(addr, spin).function("testing.echo").unwrap();
            for i in 0..500i64 {
                echo.call(&[i.into()]).unwrap();
            }
            echo
        })
        .collect();
    let mut times = vec![Vec::with_capacity(calls); echoes.len()];
    let mut block_p50 = vec![Vec::new(); echoes.len()];
    for (round, first) in (0..calls).step_by(ECHO_BLOCK).enumerate() {
        let block = first..calls.min(first + ECHO_BLOCK);
        for server in round_order(round, echoes.len()) {
            let mut block_times: Vec<f64> = block
                .clone()
                .map(|i| {
                    let t = Instant::now();
                    echoes[server].call(&[(i as i64).into()]).unwrap();
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            times[server].extend_from_slice(&block_times);
            block_times.sort_by(f64::total_cmp);
            block_p50[server].push(percentile(&block_times, 0.5));
        }
    }
    times
        .into_iter()
        .zip(&block_p50)
        .map(|(micros, p50s)| {
            let mut ratios: Vec<f64> = p50s.iter().zip(&block_p50[0]).map(|(p, q)| p / q).collect();
            ratios.sort_by(f64::total_cmp);
            let mut figures = latency(micros);
            figures.insert("median_block_ratio".into(), percentile(&ratios, 0.5).into());
            figures
        })
        .collect()
}

/// Rounds each section splits its time into, taken by the servers in turn.
const ROUNDS: usize = 8;

/// Calls/s of `depth` echoes in flight on one connection, per server, the servers taking
/// turns in `ROUNDS` rounds.
fn pipelined_calls_per_second(o: &Options, depth: usize) -> Vec<f64> {
    let echoes: Vec<_> = o
        .addrs
        .iter()
        .map(|addr| connect(addr, o.spin).function("testing.echo").unwrap())
        .collect();
    let batch: Vec<Vec<Arg<'_>>> = (0..depth as i64).map(|i| vec![i.into()]).collect();
    let mut calls = vec![0usize; echoes.len()];
    let mut seconds = vec![0f64; echoes.len()];
    for round in 0..ROUNDS {
        for server in round_order(round, echoes.len()) {
            let start = Instant::now();
            while start.elapsed().as_secs_f64() < o.seconds / ROUNDS as f64 {
                for r in echoes[server].call_pipelined(&batch).unwrap() {
                    r.unwrap();
                }
                calls[server] += depth;
            }
            seconds[server] += start.elapsed().as_secs_f64();
        }
    }
    calls.iter().zip(&seconds).map(|(&c, &s)| c as f64 / s).collect()
}

/// MiB each transfer benchmark moves each way on its connection before timing.
const WARM_UP_MIB: usize = 16;

/// How many times a transfer of `mib` MiB is repeated: a 1 MiB copy takes a few hundred
/// microseconds here, and the best of a handful of those still caught a wake-up or two.
fn transfer_repeats(mib: usize) -> usize {
    match mib {
        0..=4 => 30,
        5..=128 => 5,
        _ => 3,
    }
}

/// Best-of-`repeat` GiB/s for an upload and a download of `mib` MiB, per server, the servers
/// taking turns.
fn transfer(o: &Options, mib: usize, repeat: usize) -> Vec<(f64, f64)> {
    let bytes = mib << 20;
    let data: Vec<u8> = (0..bytes).map(|i| (i * 31 % 251) as u8).collect();
    let mut back = vec![1u8; bytes]; // touched, so page faults are not timed
    let u8_type = DataType::new(DataType::UINT, 8, 1);
    let remotes: Vec<(Client, RemoteTensor)> = o
        .addrs
        .iter()
        .map(|addr| {
            let client = connect(addr, o.spin);
            let tensor = RemoteTensor::empty(&client.cpu(0), &[bytes as i64], u8_type).unwrap();
            // Warm-up: the server touches its pages, and the connection's TCP buffers grow
            // (Linux autotunes them with traffic: on a new connection the first few MiB moved
            // 1 MiB at a time each took 2-3x as long as later ones).
            for _ in 0..WARM_UP_MIB.div_ceil(mib) {
                tensor.copy_from_bytes(&data).unwrap();
                client.with_session(|s| s.read(tensor.record(), &mut back)).unwrap();
            }
            (client, tensor)
        })
        .collect();
    let gib = bytes as f64 / (1u64 << 30) as f64;
    let mut best = vec![(f64::MAX, f64::MAX); remotes.len()];
    for round in 0..repeat {
        for server in round_order(round, remotes.len()) {
            let (client, tensor) = &remotes[server];
            let t = Instant::now();
            tensor.copy_from_bytes(&data).unwrap();
            best[server].0 = best[server].0.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            client.with_session(|s| s.read(tensor.record(), &mut back)).unwrap();
            best[server].1 = best[server].1.min(t.elapsed().as_secs_f64());
            assert!(back == data, "downloaded bytes differ");
            back.fill(1); // so that the next download is checked too
        }
    }
    best.into_iter().map(|(up, down)| (gib / up, gib / down)).collect()
}

/// CPU time this process has used so far (user and system, all threads), in seconds, from
/// `/proc/self/stat` (Linux; `None` elsewhere). Its unit is USER_HZ, 100 per second on every
/// Linux ABI: a 10 ms resolution, fine over windows of seconds.
fn process_cpu_seconds() -> Option<f64> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces, but ends at the last ')'):
    // state is field 3, utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let mut fields = after_name.split(' ').skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// One server's concurrent clients over all their rounds.
#[derive(Clone, Copy)]
struct ConcurrentRun {
    calls: u64,
    seconds: f64,
    /// CPU time the client threads (this process) used, when it could be read.
    client_cpu_seconds: Option<f64>,
}

impl ConcurrentRun {
    /// No calls yet: where a sum of runs starts.
    fn zero() -> Self {
        ConcurrentRun { calls: 0, seconds: 0.0, client_cpu_seconds: Some(0.0) }
    }

    fn add(&mut self, other: ConcurrentRun) {
        self.calls += other.calls;
        self.seconds += other.seconds;
        self.client_cpu_seconds =
            self.client_cpu_seconds.zip(other.client_cpu_seconds).map(|(a, b)| a + b);
    }
}

/// Aggregate echo calls/s of `clients` connections to `addr`, each on its own thread, for
/// `seconds`.
fn concurrent_calls_per_second(addr: &str, clients: usize, seconds: f64) -> ConcurrentRun {
    let start = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            // Spinning clients would fight over the cores with the server: block instead.
            let client = connect(addr, Duration::ZERO);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let echo = client.function("testing.echo").unwrap();
                start.wait();
                let t = Instant::now();
                let mut calls = 0u64;
                while t.elapsed().as_secs_f64() < seconds {
                    echo.call(&[1i64.into()]).unwrap();
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    let cpu_before = process_cpu_seconds();
    start.wait();
    let t = Instant::now();
    let calls: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let seconds = t.elapsed().as_secs_f64();
    let client_cpu_seconds =
        process_cpu_seconds().zip(cpu_before).map(|(after, before)| after - before);
    ConcurrentRun { calls, seconds, client_cpu_seconds }
}

/// Aggregate calls/s of `clients` concurrent clients per server, the servers taking turns
/// in `ROUNDS / 2` rounds (each round connects anew).
fn concurrent(o: &Options, clients: usize) -> Vec<ConcurrentRun> {
    let rounds = ROUNDS / 2;
    let mut totals = vec![ConcurrentRun::zero(); o.addrs.len()];
    for round in 0..rounds {
        for server in round_order(round, o.addrs.len()) {
            totals[server].add(concurrent_calls_per_second(
                &o.addrs[server],
                clients,
                o.seconds / rounds as f64,
            ));
        }
    }
    totals
}

fn main() {
    let o = parse_options();
    let mut out = Map::new();
    // The figures of each server, in the order of the addresses.
    let mut servers: Vec<Map<String, Value>> = vec![Map::new(); o.addrs.len()];
    if o.runs("floor") {
        out.insert("floor_blocking".into(), ping_pong_floor(false, 20_000).into());
        out.insert("floor_spinning".into(), ping_pong_floor(true, 20_000).into());
    }
    if o.runs("echo") {
        for (key, spin) in [("echo", o.spin), ("echo_no_spin", Duration::ZERO)] {
            for (figures, latency) in servers.iter_mut().zip(echo_latency(&o, spin, 20_000)) {
                figures.insert(key.into(), latency.into());
            }
        }
        out.insert("echo_block".into(), ECHO_BLOCK.into());
    }
    if o.runs("pipelined") {
        for (figures, rate) in servers.iter_mut().zip(pipelined_calls_per_second(&o, 64)) {
            figures.insert("pipelined_calls_s".into(), rate.into());
        }
    }
    if o.runs("transfer") {
        let per_size: Vec<(usize, Vec<(f64, f64)>)> = o
            .sizes_mib
            .iter()
            .map(|&mib| (mib, transfer(&o, mib, transfer_repeats(mib))))
            .collect();
        for (server, figures) in servers.iter_mut().enumerate() {
            let by_size = |pick: fn((f64, f64)) -> f64| -> Map<String, Value> {
                per_size.iter().map(|(mib, r)| (mib.to_string(), pick(r[server]).into())).collect()
            };
            figures.insert("upload_gib_s".into(), by_size(|(up, _)| up).into());
            figures.insert("download_gib_s".into(), by_size(|(_, down)| down).into());
        }
    }
    if o.runs("concurrent") {
        let per_count: Vec<(usize, Vec<ConcurrentRun>)> =
            [1, 8, 64].into_iter().map(|c| (c, concurrent(&o, c))).collect();
        for (server, figures) in servers.iter_mut().enumerate() {
            let by_count = |figure: fn(&ConcurrentRun) -> Option<f64>| -> Map<String, Value> {
                per_count
                    .iter()
                    .filter_map(|(c, runs)| Some((c.to_string(), figure(&runs[server])?.into())))
                    .collect()
            };
            let rates = by_count(|r| Some(r.calls as f64 / r.seconds));
            // The clients' own CPU per call: with `cores` cores they cannot make more than
            // cores / that calls per second, whatever the server does.
            let client_cpu = by_count(|r| Some(r.client_cpu_seconds? / r.calls as f64 * 1e6));
            figures.insert("concurrent_calls_s".into(), rates.into());
            figures.insert("concurrent_client_cpu_us".into(), client_cpu.into());
        }
    }
    out.insert("servers".into(), servers.into_iter().map(Value::Object).collect());
    println!("{}", Value::Object(out));
}
