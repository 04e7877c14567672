//! GRAPH_COMPUTE's payload: `u32 device | u32 n_nodes | u64 node_ids[n_nodes] | u32 n_tensors |
//! rpc_tensor tensors[n_tensors]`. The tensor list holds every node and every tensor reachable
//! from one through `src` and `view_src`, once each; `node_ids` name the nodes, in order.
//!
//! Both counts are checked against the declared payload size and against [`GraphLimits`]
//! before anything is reserved, and [`GraphPayload::peek`] does the same checks on the first
//! bytes alone, so an endpoint can refuse a graph before buffering all of it.

use super::reader::PayloadReader;
use super::{Command, GgmlDecodeError, RpcTensor, WireSink};

/// Where `n_nodes` starts, after `device`.
const NODE_COUNT_OFFSET: u64 = 4;
/// Bytes before the node ids: `device` and `n_nodes`.
const NODE_IDS_OFFSET: u64 = 8;
/// Bytes of one node id.
const NODE_ID_LEN: u64 = 8;
/// Bytes of `n_tensors`.
const TENSOR_COUNT_LEN: u64 = 4;

/// The largest graph a connection may send.
///
/// llama.cpp sizes its graphs at `max(1024, 8 * model tensors)` nodes for most architectures
/// (`llama_context::graph_max_nodes`); a 70B llama (723 tensors) fits in 5784 and actually
/// uses a few thousand, the 168M test model 293. The tensor list holds the nodes plus the
/// leaves they read (weights, inputs, KV-cache views), so it runs longer than the node list.
/// The defaults leave several times that headroom while bounding one graph to about 10 MB of
/// payload (8 bytes a node, 296 a tensor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphLimits {
    pub max_nodes: u32,
    pub max_tensors: u32,
}

impl Default for GraphLimits {
    fn default() -> Self {
        GraphLimits { max_nodes: 16384, max_tensors: 32768 }
    }
}

/// What the start of a GRAPH_COMPUTE payload says, from [`GraphPayload::peek`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphPeek {
    /// Everything seen so far fits; the next count is known once this many bytes of the
    /// payload have arrived.
    NeedPrefix(usize),
    /// Both counts are known, within the limits, and the declared size is exactly theirs.
    Counts(GraphCounts),
}

/// The two counts of a graph payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphCounts {
    pub n_nodes: u32,
    pub n_tensors: u32,
}

/// A decoded GRAPH_COMPUTE payload. Ids and tensors are kept raw: resolving ids, checking ops
/// and shapes is the session's work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphPayload {
    /// Index of the device that runs the graph (and stores it for GRAPH_RECOMPUTE).
    pub device: u32,
    /// The nodes to run, in order, as ids of entries in `tensors` (0 stands for none).
    pub node_ids: Vec<u64>,
    /// Every tensor the nodes reach, once each.
    pub tensors: Vec<RpcTensor>,
}

/// Where `n_tensors` starts in a payload of `n_nodes` nodes. Cannot overflow: at most
/// 8 + 8 * (2^32 - 1).
fn tensor_count_offset(n_nodes: u32) -> u64 {
    NODE_IDS_OFFSET + NODE_ID_LEN * u64::from(n_nodes)
}

/// The exact payload size of a graph with these counts. Cannot overflow: the sum is below
/// 2^41.
fn payload_len(counts: GraphCounts) -> u64 {
    tensor_count_offset(counts.n_nodes)
        + TENSOR_COUNT_LEN
        + RpcTensor::LEN as u64 * u64::from(counts.n_tensors)
}

/// Refuses a node count the declared payload cannot hold, or that is over the limit.
fn check_node_count(n_nodes: u32, size: u64, limits: &GraphLimits) -> Result<(), GgmlDecodeError> {
    if tensor_count_offset(n_nodes) + TENSOR_COUNT_LEN > size {
        return Err(GgmlDecodeError::GraphCountExceedsPayload {
            what: "nodes",
            count: n_nodes,
            payload: size,
        });
    }
    if n_nodes > limits.max_nodes {
        return Err(GgmlDecodeError::GraphCountOverLimit {
            what: "nodes",
            count: n_nodes,
            limit: limits.max_nodes,
        });
    }
    Ok(())
}

/// Refuses a tensor count the declared payload cannot hold or that is over the limit, and a
/// payload longer than its counts say.
fn check_tensor_count(
    counts: GraphCounts,
    size: u64,
    limits: &GraphLimits,
) -> Result<(), GgmlDecodeError> {
    let expected = payload_len(counts);
    if expected > size {
        return Err(GgmlDecodeError::GraphCountExceedsPayload {
            what: "tensors",
            count: counts.n_tensors,
            payload: size,
        });
    }
    if counts.n_tensors > limits.max_tensors {
        return Err(GgmlDecodeError::GraphCountOverLimit {
            what: "tensors",
            count: counts.n_tensors,
            limit: limits.max_tensors,
        });
    }
    if expected < size {
        return Err(GgmlDecodeError::TrailingBytes {
            command: Command::GraphCompute,
            count: size - expected,
        });
    }
    Ok(())
}

/// A `u32` at `offset` of `bytes`, if that many bytes are there.
fn u32_at(bytes: &[u8], offset: u64) -> Option<u32> {
    let start = usize::try_from(offset).ok()?;
    let field = bytes.get(start..)?.first_chunk::<4>()?;
    Some(u32::from_le_bytes(*field))
}

impl GraphPayload {
    /// Checks the counts in `prefix`, the first bytes of a payload whose header declared
    /// `size` bytes, without waiting for the rest. Call it again with a longer prefix while it
    /// answers [`GraphPeek::NeedPrefix`]; it never asks for more than `size` bytes (and at
    /// most 12 + 8 * `limits.max_nodes`).
    pub fn peek(
        size: u64,
        prefix: &[u8],
        limits: &GraphLimits,
    ) -> Result<GraphPeek, GgmlDecodeError> {
        Command::GraphCompute.check_payload_size(size)?;
        let Some(n_nodes) = u32_at(prefix, NODE_COUNT_OFFSET) else {
            return Ok(GraphPeek::NeedPrefix(NODE_IDS_OFFSET as usize));
        };
        check_node_count(n_nodes, size, limits)?;
        let count_offset = tensor_count_offset(n_nodes);
        let Some(n_tensors) = u32_at(prefix, count_offset) else {
            // Fits in usize: at most 12 + 8 * max_nodes, and below `size`, whose bytes the
            // caller is buffering.
            let needed = usize::try_from(count_offset + TENSOR_COUNT_LEN).unwrap_or(usize::MAX);
            return Ok(GraphPeek::NeedPrefix(needed));
        };
        let counts = GraphCounts { n_nodes, n_tensors };
        check_tensor_count(counts, size, limits)?;
        Ok(GraphPeek::Counts(counts))
    }

    /// Decodes a whole payload. Every count is checked (against the bytes given and against
    /// `limits`) before its list is reserved; bytes after the last tensor are refused.
    pub fn decode(payload: &[u8], limits: &GraphLimits) -> Result<Self, GgmlDecodeError> {
        Command::GraphCompute.check_payload_size(payload.len() as u64)?;
        let mut r = PayloadReader::new(Command::GraphCompute, payload);
        let graph = Self::read(&mut r, limits)?;
        r.finish()?;
        Ok(graph)
    }

    /// Reads a graph that is all of what `r` has left.
    pub(super) fn read(
        r: &mut PayloadReader<'_>,
        limits: &GraphLimits,
    ) -> Result<Self, GgmlDecodeError> {
        let size = r.remaining();
        let device = r.u32("device")?;
        let n_nodes = r.u32("n_nodes")?;
        check_node_count(n_nodes, size, limits)?;
        // Justified: the payload holds 8 bytes for each of these ids.
        let mut node_ids = Vec::with_capacity(n_nodes as usize);
        for _ in 0..n_nodes {
            node_ids.push(r.u64("node id")?);
        }
        let n_tensors = r.u32("n_tensors")?;
        check_tensor_count(GraphCounts { n_nodes, n_tensors }, size, limits)?;
        // Justified: the payload holds exactly 296 bytes for each of these tensors.
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            tensors.push(RpcTensor::read(r)?);
        }
        Ok(GraphPayload { device, node_ids, tensors })
    }

    /// The counts this payload encodes with. ggml counts in `u32`: a list longer than that
    /// (a terabyte of tensors) cannot be expressed, and only its first `u32::MAX` entries are
    /// encoded.
    pub fn counts(&self) -> GraphCounts {
        let count = |len: usize| u32::try_from(len).unwrap_or(u32::MAX);
        GraphCounts { n_nodes: count(self.node_ids.len()), n_tensors: count(self.tensors.len()) }
    }

    /// The encoded size, without encoding.
    pub fn encoded_len(&self) -> u64 {
        payload_len(self.counts())
    }

    pub fn encode(&self, sink: &mut impl WireSink) {
        let counts = self.counts();
        sink.put_u32(self.device);
        sink.put_u32(counts.n_nodes);
        for &id in self.node_ids.iter().take(counts.n_nodes as usize) {
            sink.put_u64(id);
        }
        sink.put_u32(counts.n_tensors);
        for tensor in self.tensors.iter().take(counts.n_tensors as usize) {
            tensor.encode(sink);
        }
    }
}
