//! Benchmarks our Rust client against one RPC server (ours or TVM's), printing JSON.
//!
//! `cargo bench --bench rpc -- ADDR [--spin-us N] [--seconds S] [--sizes-mib 1,64,256]
//! [--only floor,echo,pipelined,transfer,concurrent]`
//!
//! Also measures the floor of this machine in the same run: a 32-byte TCP ping-pong between
//! two threads over loopback, once blocking and once spinning on non-blocking sockets.
//! `bench/run.py` runs this against both servers and prints the comparison.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use tensor_rpc::client::{Arg, ChannelOptions, Client, RemoteTensor};
use tensor_rpc::endpoint::codec::DataType;

struct Options {
    addr: String,
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
        addr: String::new(),
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
            addr => options.addr = addr.to_owned(),
        }
    }
    if options.addr.is_empty() {
        eprintln!("usage: cargo bench --bench rpc -- HOST:PORT [flags] (scripts/bench.sh runs it)");
        std::process::exit(2);
    }
    options
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut micros: Vec<f64>) -> String {
    micros.sort_by(f64::total_cmp);
    format!(
        "{{\"p50_us\": {:.2}, \"p99_us\": {:.2}, \"samples\": {}}}",
        percentile(&micros, 0.5),
        percentile(&micros, 0.99),
        micros.len()
    )
}

/// 32-byte ping-pong between two threads over loopback: the floor any RPC pays here.
fn ping_pong_floor(spinning: bool, rounds: usize) -> String {
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
    summary(times)
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

fn connect(o: &Options, spin: Duration) -> Client {
    let options = ChannelOptions { busy_poll: spin, ..ChannelOptions::default() };
    Client::connect_with(o.addr.as_str(), options).expect("connect")
}

fn echo_latency(o: &Options, spin: Duration, calls: usize) -> String {
    let client = connect(o, spin);
    let echo = client.function("testing.echo").unwrap();
    for i in 0..500i64 {
        echo.call(&[i.into()]).unwrap();
    }
    let times = (0..calls as i64)
        .map(|i| {
            let t = Instant::now();
            echo.call(&[i.into()]).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    summary(times)
}

fn pipelined_calls_per_second(o: &Options, depth: usize) -> f64 {
    let client = connect(o, o.spin);
    let echo = client.function("testing.echo").unwrap();
    let batch: Vec<Vec<Arg<'_>>> = (0..depth as i64).map(|i| vec![i.into()]).collect();
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed().as_secs_f64() < o.seconds {
        for r in echo.call_pipelined(&batch).unwrap() {
            r.unwrap();
        }
        calls += depth;
    }
    calls as f64 / start.elapsed().as_secs_f64()
}

/// Best-of-`repeat` GiB/s for an upload and a download of `mib` MiB.
fn transfer(o: &Options, mib: usize, repeat: usize) -> (f64, f64) {
    let client = connect(o, o.spin);
    let dev = client.cpu(0);
    let bytes = mib << 20;
    let data: Vec<u8> = (0..bytes).map(|i| (i * 31 % 251) as u8).collect();
    let mut back = vec![1u8; bytes]; // touched, so page faults are not timed
    let u8_type = DataType::new(DataType::UINT, 8, 1);
    let tensor = RemoteTensor::empty(&dev, &[bytes as i64], u8_type).unwrap();
    tensor.copy_from_bytes(&data).unwrap(); // warm-up: the server touches its pages
    let gib = bytes as f64 / (1u64 << 30) as f64;
    let (mut up, mut down) = (f64::MAX, f64::MAX);
    for _ in 0..repeat {
        let t = Instant::now();
        tensor.copy_from_bytes(&data).unwrap();
        up = up.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        client.with_session(|s| s.read(tensor.record(), &mut back)).unwrap();
        down = down.min(t.elapsed().as_secs_f64());
    }
    assert!(back == data, "downloaded bytes differ");
    (gib / up, gib / down)
}

/// Aggregate echo calls/s of `clients` connections, each on its own thread.
fn concurrent_calls_per_second(o: &Options, clients: usize) -> f64 {
    let start = Arc::new(Barrier::new(clients + 1));
    let seconds = o.seconds;
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            // Spinning clients would fight over the cores with the server: block instead.
            let client = connect(o, Duration::ZERO);
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
    start.wait();
    let t = Instant::now();
    let calls: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    calls as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let o = parse_options();
    let mut fields = Vec::new();
    if o.runs("floor") {
        fields.push(format!("\"floor_blocking\": {}", ping_pong_floor(false, 20_000)));
        fields.push(format!("\"floor_spinning\": {}", ping_pong_floor(true, 20_000)));
    }
    if o.runs("echo") {
        fields.push(format!("\"echo\": {}", echo_latency(&o, o.spin, 20_000)));
        fields.push(format!("\"echo_no_spin\": {}", echo_latency(&o, Duration::ZERO, 20_000)));
    }
    if o.runs("pipelined") {
        let rate = pipelined_calls_per_second(&o, 64);
        fields.push(format!("\"pipelined_calls_s\": {rate:.0}"));
    }
    if o.runs("transfer") {
        let mut up = Vec::new();
        let mut down = Vec::new();
        for &mib in &o.sizes_mib {
            let repeat = if mib >= 256 { 3 } else { 5 };
            let (u, d) = transfer(&o, mib, repeat);
            up.push(format!("\"{mib}\": {u:.3}"));
            down.push(format!("\"{mib}\": {d:.3}"));
        }
        fields.push(format!("\"upload_gib_s\": {{{}}}", up.join(", ")));
        fields.push(format!("\"download_gib_s\": {{{}}}", down.join(", ")));
    }
    if o.runs("concurrent") {
        let concurrent: Vec<String> = [1, 8, 64]
            .iter()
            .map(|&c| format!("\"{c}\": {:.0}", concurrent_calls_per_second(&o, c)))
            .collect();
        fields.push(format!("\"concurrent_calls_s\": {{{}}}", concurrent.join(", ")));
    }
    println!("{{{}}}", fields.join(", "));
}
