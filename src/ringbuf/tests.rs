use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;

fn stored(ring: &RingBuffer) -> Vec<u8> {
    let (a, b) = ring.as_slices();
    [a, b].concat()
}

/// A ring whose stored bytes wrap around the end of its buffer.
fn wrapped_ring() -> RingBuffer {
    let mut ring = RingBuffer::with_capacity(8);
    ring.push(&[0; 6]);
    ring.consume(5);
    ring.push(&[1, 2, 3, 4, 5]);
    ring.consume(1);
    assert_eq!(ring.capacity(), 8);
    assert_ne!(ring.as_slices().1.len(), 0, "fixture must wrap");
    ring
}

#[test]
fn push_then_read_exact_returns_bytes_in_order() {
    let mut ring = RingBuffer::with_capacity(4);
    ring.push(b"hello world");
    let mut out = [0; 11];
    assert!(ring.read_exact(&mut out));
    assert_eq!(&out, b"hello world");
    assert!(ring.is_empty());
}

#[test]
fn read_exact_refuses_when_too_few_bytes_are_stored() {
    let mut ring = RingBuffer::default();
    ring.push(b"abc");
    let mut out = [0; 4];
    assert!(!ring.read_exact(&mut out));
    assert_eq!(ring.len(), 3);
}

#[test]
fn push_wraps_around_the_end_without_growing() {
    let ring = wrapped_ring();
    assert_eq!(stored(&ring), vec![1, 2, 3, 4, 5]);
}

#[test]
fn contiguous_rotates_wrapped_bytes_into_one_slice() {
    let mut ring = wrapped_ring();
    assert_eq!(ring.contiguous(5).unwrap(), &[1, 2, 3, 4, 5]);
    assert_eq!(ring.capacity(), 8);
}

#[test]
fn contiguous_is_none_when_too_few_bytes_are_stored() {
    let mut ring = wrapped_ring();
    assert!(ring.contiguous(6).is_none());
}

#[test]
fn reserve_contiguous_grows_for_a_packet_larger_than_the_ring() {
    let mut ring = wrapped_ring();
    ring.reserve_contiguous(100);
    assert!(ring.capacity() >= 100);
    assert_eq!(stored(&ring), vec![1, 2, 3, 4, 5]);
    // The rest of the packet arrives in free space that continues the stored run.
    let mut rest = vec![9; 95];
    while !rest.is_empty() {
        let n = ring
            .fill_with(|free| {
                let n = free.len().min(rest.len());
                free[..n].copy_from_slice(&rest[..n]);
                Ok(n)
            })
            .unwrap();
        rest.drain(..n);
    }
    let (a, b) = ring.as_slices();
    assert_eq!(a.len(), 100);
    assert!(b.is_empty());
}

#[test]
fn write_in_place_stores_only_what_the_filler_reports() {
    let mut ring = wrapped_ring();
    let written = ring
        .write_in_place::<()>(3, |space| {
            assert_eq!(space.len(), 3);
            space[..2].copy_from_slice(&[7, 8]);
            Ok(2)
        })
        .unwrap();
    assert_eq!(written, 2);
    assert_eq!(stored(&ring), vec![1, 2, 3, 4, 5, 7, 8]);
}

#[test]
fn write_in_place_stores_nothing_when_the_filler_fails() {
    let mut ring = wrapped_ring();
    let result = ring.write_in_place(2, |space| {
        space.fill(0xEE);
        Err("refused")
    });
    assert_eq!(result, Err("refused"));
    assert_eq!(stored(&ring), vec![1, 2, 3, 4, 5]);
}

#[test]
fn drain_with_consumes_what_the_writer_takes() {
    let mut ring = RingBuffer::default();
    ring.push(b"abcdef");
    let taken = ring.drain_with(|data| Ok(data.len().min(4))).unwrap();
    assert_eq!(taken, 4);
    assert_eq!(stored(&ring), b"ef");
}

#[test]
fn fill_with_grows_a_full_ring() {
    let mut ring = RingBuffer::with_capacity(2);
    ring.push(b"ab");
    let n = ring.fill_with(|free| {
        free[0] = b'c';
        Ok(1)
    });
    assert_eq!(n.unwrap(), 1);
    assert_eq!(stored(&ring), b"abc");
}

#[test]
fn fill_with_passes_reader_errors_through() {
    let mut ring = RingBuffer::default();
    let err =
        ring.fill_with(|_| Err(io::Error::new(io::ErrorKind::WouldBlock, "later"))).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    assert!(ring.is_empty());
}

#[test]
fn shrink_if_empty_returns_memory_of_an_empty_large_ring() {
    let mut ring = RingBuffer::default();
    ring.reserve_contiguous(16 << 20);
    ring.shrink_if_empty(1 << 20);
    assert_eq!(ring.capacity(), DEFAULT_CAPACITY);
}

#[test]
fn shrink_if_empty_keeps_a_ring_that_holds_bytes() {
    let mut ring = RingBuffer::default();
    ring.reserve_contiguous(16 << 20);
    ring.push(b"x");
    ring.shrink_if_empty(1 << 20);
    assert!(ring.capacity() >= 16 << 20);
}

/// One step applied to both the ring and a `VecDeque` model.
#[derive(Debug, Clone)]
enum Op {
    Push(Vec<u8>),
    Consume(usize),
    Peek(usize),
    Contiguous(usize),
    ReserveContiguous(usize),
    Fill(Vec<u8>),
    Drain(usize),
    WriteInPlace(Vec<u8>),
    Shrink,
}

fn op() -> impl Strategy<Value = Op> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        bytes.clone().prop_map(Op::Push),
        (0usize..48).prop_map(Op::Consume),
        (0usize..48).prop_map(Op::Peek),
        (0usize..48).prop_map(Op::Contiguous),
        (0usize..96).prop_map(Op::ReserveContiguous),
        bytes.clone().prop_map(Op::Fill),
        (0usize..48).prop_map(Op::Drain),
        bytes.prop_map(Op::WriteInPlace),
        Just(Op::Shrink),
    ]
}

proptest! {
    #[test]
    fn behaves_like_a_vecdeque(capacity in 0usize..16, ops in proptest::collection::vec(op(), 0..64)) {
        let mut ring = RingBuffer::with_capacity(capacity);
        let mut model: VecDeque<u8> = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(bytes) => {
                    ring.push(&bytes);
                    model.extend(&bytes);
                }
                Op::Consume(n) => {
                    let n = n.min(model.len());
                    ring.consume(n);
                    model.drain(..n);
                }
                Op::Peek(n) => {
                    let mut out = vec![0; n];
                    let ok = ring.peek(&mut out);
                    prop_assert_eq!(ok, n <= model.len());
                    if ok {
                        prop_assert_eq!(&out[..], &model.iter().take(n).copied().collect::<Vec<_>>()[..]);
                    }
                }
                Op::Contiguous(n) => {
                    let expected: Vec<u8> = model.iter().take(n).copied().collect();
                    match ring.contiguous(n) {
                        Some(slice) => prop_assert_eq!(slice, &expected[..]),
                        None => prop_assert!(n > model.len()),
                    }
                }
                Op::ReserveContiguous(n) => {
                    ring.reserve_contiguous(n);
                    prop_assert!(ring.capacity() >= n);
                }
                Op::Fill(bytes) => {
                    let n = ring.fill_with(|free| {
                        let n = free.len().min(bytes.len());
                        free[..n].copy_from_slice(&bytes[..n]);
                        Ok(n)
                    }).unwrap();
                    model.extend(&bytes[..n]);
                }
                Op::Drain(max) => {
                    let mut taken = Vec::new();
                    ring.drain_with(|data| {
                        let n = data.len().min(max);
                        taken.extend_from_slice(&data[..n]);
                        Ok(n)
                    }).unwrap();
                    let expected: Vec<u8> = model.drain(..taken.len()).collect();
                    prop_assert_eq!(taken, expected);
                }
                Op::WriteInPlace(bytes) => {
                    ring.write_in_place::<()>(bytes.len(), |space| {
                        space.copy_from_slice(&bytes);
                        Ok(bytes.len())
                    }).unwrap();
                    model.extend(&bytes);
                }
                Op::Shrink => ring.shrink_if_empty(0),
            }
            prop_assert_eq!(ring.len(), model.len());
            prop_assert_eq!(stored(&ring), model.iter().copied().collect::<Vec<_>>());
        }
    }
}
