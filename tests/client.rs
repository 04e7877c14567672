//! The Rust client against our server and against TVM 0.27's own: the same scenarios give
//! the same results.

mod support;

use support::servers::{ServerProcess, start_ours, start_tvm_server};
use tensor_rpc::client::{Client, ClientError, RemoteTensor};
use tensor_rpc::endpoint::tvm::codec::{DataType, Device, Value};

fn connect(server: &ServerProcess) -> Client {
    Client::connect(server.addr(), "").expect("connect")
}

/// Echo of every argument type, as a transcript.
fn echo_transcript(client: &Client) -> Vec<String> {
    let echo = client.function("testing.echo").unwrap();
    let args: Vec<Value> = vec![
        Value::Int(7),
        Value::Int(-3),
        Value::Int(i64::MIN),
        Value::Float(2.5),
        Value::Float(-1.5e300),
        Value::Bool(true),
        Value::Bool(false),
        Value::Str("hello".into()),
        Value::Str("a much longer string that does not fit a small string".into()),
        Value::Str(String::new()),
        Value::Bytes(vec![0, 1, 2]),
        Value::Bytes((0..=255).collect()),
        Value::None,
        Value::DataType(DataType::FLOAT32),
        Value::DataType(DataType::new(DataType::INT, 8, 4)),
        Value::Device(Device::cpu(0)),
    ];
    args.into_iter()
        .map(|v| format!("{v:?} -> {:?}", echo.call(&[v.clone().into()]).unwrap()))
        .collect()
}

/// Round trips of every dtype, and a copy between remote tensors.
fn tensor_transcript(client: &Client) -> Vec<String> {
    let dev = client.cpu(0);
    let mut out = Vec::new();
    macro_rules! round_trip {
        ($($t:ty),*) => {$({
            let data: Vec<$t> = (0..24i8).map(|i| <$t>::from(i) * (1 as $t)).collect();
            let a = RemoteTensor::from_slice(&dev, &[2, 3, 4], &data).unwrap();
            let b = RemoteTensor::empty(&dev, &[2, 3, 4], a.dtype()).unwrap();
            a.copy_to(&b).unwrap();
            out.push(format!("{} {:?}", b.dtype(), b.to_vec::<$t>().unwrap() == data));
        })*};
    }
    round_trip!(i8, i16, i32, i64, f32, f64);
    macro_rules! round_trip_unsigned {
        ($($t:ty),*) => {$({
            let data: Vec<$t> = (0..24u8).map(<$t>::from).collect();
            let a = RemoteTensor::from_slice(&dev, &[24], &data).unwrap();
            out.push(format!("{} {:?}", a.dtype(), a.to_vec::<$t>().unwrap() == data));
        })*};
    }
    round_trip_unsigned!(u8, u16, u32, u64);
    let halfs: Vec<half::f16> = (0..6).map(|i| half::f16::from_f32(i as f32 / 2.0)).collect();
    let h = RemoteTensor::from_slice(&dev, &[6], &halfs).unwrap();
    out.push(format!("float16 {:?}", h.to_vec::<half::f16>().unwrap() == halfs));
    let scalar = RemoteTensor::from_slice(&dev, &[], &[42.0f64]).unwrap();
    out.push(format!("0-d {:?}", scalar.to_vec::<f64>().unwrap()));
    let empty = RemoteTensor::empty(&dev, &[3, 0], DataType::FLOAT32).unwrap();
    out.push(format!("empty {:?}", empty.to_vec::<f32>().unwrap()));
    out
}

fn files_transcript(client: &Client) -> Vec<String> {
    let mut out = Vec::new();
    client.upload("greeting.txt", b"hello world").unwrap();
    out.push(format!("{:?}", String::from_utf8(client.download("greeting.txt").unwrap())));
    client.remove("greeting.txt").unwrap();
    out.push(format!(
        "after remove: {}",
        matches!(client.download("greeting.txt"), Err(ClientError::Remote(_)))
    ));
    out
}

fn missing_function_transcript(client: &Client) -> Vec<String> {
    vec![format!("{:?}", client.function("no.such.function").err().map(|e| e.to_string()))]
}

fn same_on_both(scenario: fn(&Client) -> Vec<String>) -> Vec<String> {
    let tvm = start_tvm_server(&[]);
    let theirs = scenario(&connect(&tvm));
    let ours = start_ours(&[]);
    let mine = scenario(&connect(&ours));
    assert_eq!(mine, theirs);
    mine
}

#[test]
fn echo_of_every_argument_type_matches_tvm_server() {
    let out = same_on_both(echo_transcript);
    assert!(out.contains(&"Str(\"hello\") -> Str(\"hello\")".to_string()), "{out:?}");
}

#[test]
fn tensors_of_every_dtype_round_trip_as_on_tvm_server() {
    let out = same_on_both(tensor_transcript);
    assert!(out.iter().all(|l| !l.ends_with("false")), "{out:?}");
}

#[test]
fn upload_download_remove_match_tvm_server() {
    let out = same_on_both(files_transcript);
    assert_eq!(out, ["Ok(\"hello world\")", "after remove: true"]);
}

#[test]
fn missing_function_is_reported_as_on_tvm_server() {
    let out = same_on_both(missing_function_transcript);
    assert_eq!(out, ["Some(\"the server has no function 'no.such.function'\")"]);
}

fn pipelined_transcript(client: &Client) -> Vec<String> {
    let echo = client.function("testing.echo").unwrap();
    let lists: Vec<Vec<tensor_rpc::client::Arg<'_>>> =
        (0..1000i64).map(|i| vec![i.into()]).collect();
    let results = echo.call_pipelined(&lists).unwrap();
    let in_order =
        results.iter().enumerate().all(|(i, r)| matches!(r, Ok(Value::Int(v)) if *v == i as i64));
    let bad = echo.call_pipelined(&[vec![], vec![5i64.into()]]).unwrap();
    vec![
        format!("1000 in order: {in_order}"),
        format!("no-arg call fails alone: {} then {:?}", bad[0].is_err(), bad[1].as_ref().ok()),
    ]
}

#[test]
fn pipelined_calls_return_in_order_and_fail_one_by_one() {
    let ours = start_ours(&[]);
    let out = pipelined_transcript(&connect(&ours));
    assert_eq!(out, ["1000 in order: true", "no-arg call fails alone: true then Some(Int(5))"]);
}

#[test]
fn pipelined_calls_work_against_tvm_server_too() {
    let tvm = start_tvm_server(&[]);
    let client = connect(&tvm);
    let echo = client.function("testing.echo").unwrap();
    let lists: Vec<Vec<tensor_rpc::client::Arg<'_>>> =
        (0..200i64).map(|i| vec![i.into()]).collect();
    let results = echo.call_pipelined(&lists).unwrap();
    assert!(
        results.iter().enumerate().all(|(i, r)| matches!(r, Ok(Value::Int(v)) if *v == i as i64))
    );
}

/// A tensor record claiming `claimed` bytes over an allocation of `tensor`'s size.
fn overlong(
    tensor: &RemoteTensor,
    claimed: usize,
) -> tensor_rpc::endpoint::tvm::codec::TensorRecord {
    let mut record = tensor.record().clone();
    record.shape = vec![claimed as i64];
    record
}

/// 20 MiB allocations: copies of them span more packets than are in flight at once.
const SPANNING: usize = 20 << 20;

#[test]
fn pipelined_read_past_the_allocation_fails_and_the_connection_goes_on() {
    let ours = start_ours(&[]);
    let client = connect(&ours);
    let data: Vec<u8> = (0..SPANNING).map(|i| (i % 253) as u8).collect();
    let tensor = RemoteTensor::from_slice(&client.cpu(0), &[SPANNING as i64], &data).unwrap();
    let mut out = vec![0u8; 2 * SPANNING];
    let result = client.with_session(|s| s.read(&overlong(&tensor, 2 * SPANNING), &mut out));
    assert!(matches!(result, Err(ClientError::Remote(_))), "{result:?}");
    let echo = client.function("testing.echo").unwrap();
    assert!(matches!(echo.call(&[9i64.into()]), Ok(Value::Int(9))));
    assert!(tensor.to_vec::<u8>().unwrap() == data, "a whole read still returns the data");
}

#[test]
fn pipelined_write_past_the_allocation_fails_and_the_connection_goes_on() {
    let ours = start_ours(&[]);
    let client = connect(&ours);
    let tensor = RemoteTensor::empty(
        &client.cpu(0),
        &[SPANNING as i64],
        DataType::new(DataType::UINT, 8, 1),
    )
    .unwrap();
    let data: Vec<u8> = (0..2 * SPANNING).map(|i| (i % 251) as u8).collect();
    let result = client.with_session(|s| s.write(&overlong(&tensor, 2 * SPANNING), &data));
    assert!(matches!(result, Err(ClientError::Remote(_))), "{result:?}");
    let echo = client.function("testing.echo").unwrap();
    assert!(matches!(echo.call(&[9i64.into()]), Ok(Value::Int(9))));
    tensor.copy_from_bytes(&data[..SPANNING]).unwrap();
    assert!(tensor.to_vec::<u8>().unwrap() == data[..SPANNING], "a whole write still lands");
}
