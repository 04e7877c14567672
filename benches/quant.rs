//! Throughput of the quantized-block kernels on one core, for every
//! implementation this CPU runs: dot products (GFLOP/s, 2 flops per
//! element), tiles of dot products, activation quantization and
//! dequantization (G elements/s). Rows are L1/L2-resident: this measures
//! the kernels, not memory.
//!
//! Run: `cargo bench --no-default-features --bench quant` (pin it with
//! `taskset -c 1` for steadier numbers). Arguments filter the sections
//! (`dot`, `tile`, `quantize`, `dequantize`) and formats (`q4_0`, `q6_K`,
//! ...): `cargo bench --bench quant -- dot q4_K`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use tensor_rpc::kernels::quant::{BlockFormat, Implementation};

const SIZES: [usize; 4] = [256, 1024, 2816, 4096];

/// Seconds per call of `f`: the best of five rounds of about 20 ms.
fn seconds_per_call(mut f: impl FnMut()) -> f64 {
    let mut calls = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..calls {
            f();
        }
        if start.elapsed() >= Duration::from_millis(20) {
            break;
        }
        calls *= 2;
    }
    (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                f();
            }
            start.elapsed().as_secs_f64() / calls as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn quantized(format: BlockFormat, n: usize, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0; format.row_bytes(n).unwrap()];
    Implementation::Scalar.quantize_row(format, &values(n, seed), &mut bytes).unwrap();
    bytes
}

fn implementations() -> Vec<Implementation> {
    Implementation::available().collect()
}

fn header(first: &str, implementations: &[Implementation]) {
    print!("{first:<16}");
    for implementation in implementations {
        print!("{:>10}", implementation.name());
    }
    println!();
}

fn bench_dot(formats: &[BlockFormat]) {
    let implementations = implementations();
    println!("vec_dot, GFLOP/s");
    header("format  n", &implementations);
    for &format in formats {
        let Some(y_format) = format.vec_dot_format() else { continue };
        for n in SIZES {
            if format.blocks_for(n).is_err() {
                continue;
            }
            let (x, y) = (quantized(format, n, 1), quantized(y_format, n, 2));
            // Opaque once, outside the timed loop (a `black_box` per call
            // costs a store-forwarding stall comparable to a short row).
            let (x, y) = (black_box(x.as_slice()), black_box(y.as_slice()));
            print!("{:<8}{n:<8}", format.name());
            for &implementation in &implementations {
                let seconds = seconds_per_call(|| {
                    black_box(implementation.vec_dot(format, n, x, y).ok());
                });
                print!("{:>10.1}", 2.0 * n as f64 / seconds * 1e-9);
            }
            println!();
        }
    }
    println!();
}

/// Tiles of `columns` weight rows × `rows` activation rows of `n`
/// elements: a matrix-vector product's rows (one activation row) and a
/// block of a matrix product.
const TILES: [(usize, usize, usize); 4] =
    [(64, 1, 256), (64, 1, 1024), (64, 1, 4096), (16, 8, 4096)];

fn bench_tile(formats: &[BlockFormat]) {
    let implementations = implementations();
    println!("vec_dot_tile, weight rows x activation rows of n elements, GFLOP/s");
    header("format  tile", &implementations);
    for &format in formats {
        let Some(y_format) = format.vec_dot_format() else { continue };
        for (columns, rows, n) in TILES {
            let xs: Vec<Vec<u8>> =
                (0..columns).map(|i| quantized(format, n, 10 + i as u64)).collect();
            let ys: Vec<Vec<u8>> =
                (0..rows).map(|i| quantized(y_format, n, 90 + i as u64)).collect();
            let x_refs: Vec<&[u8]> = xs.iter().map(Vec::as_slice).collect();
            let y_refs: Vec<&[u8]> = ys.iter().map(Vec::as_slice).collect();
            let mut out = vec![0f32; columns * rows];
            print!("{:<8}{:<8}", format.name(), format!("{columns}x{rows}x{n}"));
            for &implementation in &implementations {
                let seconds = seconds_per_call(|| {
                    implementation
                        .vec_dot_tile(format, n, &x_refs, &y_refs, &mut out, columns)
                        .ok();
                    black_box(&out);
                });
                print!("{:>10.1}", 2.0 * (n * columns * rows) as f64 / seconds * 1e-9);
            }
            println!();
        }
    }
    println!();
}

fn bench_quantize(formats: &[BlockFormat]) {
    let implementations = implementations();
    let n = 4096;
    println!("quantize_row, {n} elements, G elements/s");
    header("format", &implementations);
    for &format in formats {
        if !matches!(format, BlockFormat::Q8_0 | BlockFormat::Q8_1 | BlockFormat::Q8K) {
            continue;
        }
        let x = values(n, 3);
        let mut out = vec![0u8; format.row_bytes(n).unwrap()];
        print!("{:<16}", format.name());
        for &implementation in &implementations {
            let seconds = seconds_per_call(|| {
                implementation.quantize_row(format, black_box(&x), &mut out).ok();
                black_box(&out);
            });
            print!("{:>10.2}", n as f64 / seconds * 1e-9);
        }
        println!();
    }
    println!();
}

fn bench_dequantize(formats: &[BlockFormat]) {
    let implementations = implementations();
    let n = 4096;
    println!("dequantize_row, {n} elements, G elements/s");
    header("format", &implementations);
    for &format in formats {
        let x = quantized(format, n, 4);
        let mut out = vec![0f32; n];
        print!("{:<16}", format.name());
        for &implementation in &implementations {
            let seconds = seconds_per_call(|| {
                implementation.dequantize_row(format, black_box(&x), &mut out).ok();
                black_box(&out);
            });
            print!("{:>10.2}", n as f64 / seconds * 1e-9);
        }
        println!();
    }
    println!();
}

fn main() {
    // Cargo passes `--bench`; everything else filters.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wants = |name: &str| {
        let sections = ["dot", "tile", "quantize", "dequantize"];
        let named: Vec<&String> =
            filters.iter().filter(|f| sections.contains(&f.as_str())).collect();
        named.is_empty() || named.iter().any(|f| f.as_str() == name)
    };
    let formats: Vec<BlockFormat> = BlockFormat::ALL
        .into_iter()
        .filter(|format| {
            let named: Vec<&String> = filters
                .iter()
                .filter(|f| BlockFormat::ALL.iter().any(|g| g.name() == f.as_str()))
                .collect();
            named.is_empty() || named.iter().any(|f| f.as_str() == format.name())
        })
        .collect();
    println!("implementations here: {:?}, best: {}\n", implementations(), Implementation::best());
    if wants("dot") {
        bench_dot(&formats);
    }
    if wants("tile") {
        bench_tile(&formats);
    }
    if wants("quantize") {
        bench_quantize(&formats);
    }
    if wants("dequantize") {
        bench_dequantize(&formats);
    }
}
