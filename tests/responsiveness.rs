//! Long work runs off the event loop: while one client's GEMM keeps the server busy for
//! more than a second, another client's calls are answered without waiting for it.

mod support;

use std::time::{Duration, Instant};

use support::servers::start_ours;
use tensor_rpc::client::{Client, RemoteTensor};
use tensor_rpc::endpoint::tvm::codec::{DataType, Value};

/// Seconds per call of `tensor_rpc.time`'s result.
fn seconds(value: Value) -> Vec<f64> {
    let Value::Bytes(bytes) = value else { panic!("{value:?}") };
    bytes.chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn echo_calls_are_not_queued_behind_a_long_gemm() {
    let server = start_ours(&[]);
    let busy = Client::connect(server.addr(), "").unwrap();
    let dev = busy.cpu(0);
    let n = 1024;
    let a = RemoteTensor::from_slice(&dev, &[n, n], &vec![1.0f32; (n * n) as usize]).unwrap();
    let c = RemoteTensor::empty(&dev, &[n, n], DataType::FLOAT32).unwrap();
    let time = busy.function("tensor_rpc.time").unwrap();
    let args = |number: i64, repeat: i64| {
        vec![
            "tensor_rpc.matmul".into(),
            number.into(),
            repeat.into(),
            (&a).into(),
            (&a).into(),
            (&c).into(),
        ]
    };
    // The fastest of three: the first product after an upload runs cold, and a busy machine
    // slows any one of them.
    let one = seconds(time.call(&args(1, 3)).unwrap()).into_iter().fold(f64::MAX, f64::min);
    let number = (1.5 / one).ceil().max(1.0) as i64;

    let long = std::thread::scope(|scope| {
        let gemm = scope.spawn(|| {
            let start = Instant::now();
            time.call(&args(number, 1)).unwrap();
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(100));
        let other = Client::connect(server.addr(), "").unwrap();
        let echo = other.function("testing.echo").unwrap();
        let mut latencies: Vec<Duration> = (0..1000i64)
            .map(|i| {
                let t = Instant::now();
                assert_eq!(echo.call(&[i.into()]).unwrap(), Value::Int(i));
                t.elapsed()
            })
            .collect();
        assert!(!gemm.is_finished(), "the echo calls must have run while the GEMM ran");
        latencies.sort();
        let p99 = latencies[989];
        assert!(p99 < Duration::from_millis(50), "p99 echo latency {p99:?} during the GEMM");
        gemm.join().unwrap()
    });
    assert!(long >= Duration::from_secs(1), "the GEMM call lasted only {long:?}");
}
