//! Runs the mio embedding example (examples/embed_mio.rs) in-process: RPC connections and
//! the loop's own status socket are served by the same user loop.

#[path = "../examples/embed_mio.rs"]
mod embed_mio;

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mio::net::TcpListener;
use tensor_rpc::client::{Client, RemoteTensor};
use tensor_rpc::endpoint::tvm::codec::Value;

#[test]
fn embedded_loop_serves_rpc_clients_and_its_own_socket() {
    let rpc = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let status = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let (rpc_addr, status_addr) = (rpc.local_addr().unwrap(), status.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let loop_stop = Arc::clone(&stop);
    let thread = std::thread::spawn(move || embed_mio::serve(rpc, status, loop_stop));

    let a = Client::connect(rpc_addr, "").unwrap();
    let b = Client::connect(rpc_addr, "").unwrap();
    let echo = a.function("testing.echo").unwrap();
    assert_eq!(echo.call(&["embedded".into()]).unwrap(), Value::Str("embedded".into()));
    let t = RemoteTensor::from_slice(&b.cpu(0), &[3], &[1.0f32, 2.0, 3.0]).unwrap();
    assert_eq!(t.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0]);

    // Large enough to be offloaded: the example runs it on a thread and resumes the loop.
    let dev = b.cpu(0);
    let m = RemoteTensor::from_slice(&dev, &[256, 256], &vec![1.0f32; 256 * 256]).unwrap();
    let product = RemoteTensor::empty(&dev, &[256, 256], m.dtype()).unwrap();
    let matmul = b.function("tensor_rpc.matmul").unwrap();
    matmul.call(&[(&m).into(), (&m).into(), (&product).into()]).unwrap();
    assert!(product.to_vec::<f32>().unwrap().iter().all(|&v| v == 256.0));

    let mut line = String::new();
    std::net::TcpStream::connect(status_addr).unwrap().read_to_string(&mut line).unwrap();
    assert_eq!(line, "rpc connections: 2\n");

    drop((echo, t, matmul, m, product, a, b));
    stop.store(true, Ordering::SeqCst);
    thread.join().unwrap().unwrap();
}
