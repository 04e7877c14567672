//! The exchange before any packet. Client -> server: `i32 magic`, `i32 len`, key bytes
//! (`"client:<match key> [options]"`). Server -> client: `i32 status`, and on success
//! `i32 len` + `"server:<key>"`.

use std::time::Duration;

use super::WireSink;

/// First word of every RPC connection (TVM's `RPC_MAGIC`).
pub const RPC_MAGIC: i32 = 0xFF271;

/// Longest key accepted in a handshake; TVM's keys are a few dozen bytes.
pub const MAX_KEY_LEN: usize = 4096;

/// The server's answer to a client's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum HandshakeStatus {
    Success = RPC_MAGIC,
    /// The key is already in use (TVM's proxy).
    Duplicate = RPC_MAGIC + 1,
    /// The key does not match this server's.
    Mismatch = RPC_MAGIC + 2,
}

impl HandshakeStatus {
    pub fn from_i32(v: i32) -> Option<Self> {
        match v {
            x if x == Self::Success as i32 => Some(Self::Success),
            x if x == Self::Duplicate as i32 => Some(Self::Duplicate),
            x if x == Self::Mismatch as i32 => Some(Self::Mismatch),
            _ => None,
        }
    }
}

/// A client's key, split into the match key and its options.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientKey {
    /// The whole key as sent.
    pub raw: String,
    /// What follows `client:` in the first word; `None` if the first word lacks that prefix.
    pub match_key: Option<String>,
    /// `-timeout=N`: the client asks that its session end after N seconds.
    pub timeout: Option<Duration>,
}

impl ClientKey {
    pub fn parse(raw: &str) -> Self {
        let mut words = raw.split_whitespace();
        let match_key = words.next().and_then(|w| w.strip_prefix("client:")).map(str::to_owned);
        let timeout = words
            .filter_map(|w| w.strip_prefix("-timeout="))
            .filter_map(|v| v.parse::<f64>().ok())
            .filter(|secs| secs.is_finite() && *secs > 0.0)
            .map(|secs| Duration::from_secs_f64(secs.min(1e9)))
            .next_back();
        ClientKey { raw: raw.to_owned(), match_key, timeout }
    }

    /// Whether this key asks for a server whose current match key is `server_match_key`.
    pub fn matches(&self, server_match_key: &str) -> bool {
        self.match_key.as_deref() == Some(server_match_key)
    }
}

/// The client's opening: magic, then its key.
pub fn encode_client_hello(key: &str, w: &mut impl WireSink) {
    w.put_i32(RPC_MAGIC);
    w.put_i32(key.len() as i32);
    w.put(key.as_bytes());
}

/// The server's answer. Only a success carries the server's own key.
pub fn encode_server_reply(status: HandshakeStatus, server_key: &str, w: &mut impl WireSink) {
    w.put_i32(status as i32);
    if status == HandshakeStatus::Success {
        w.put_i32(server_key.len() as i32);
        w.put(server_key.as_bytes());
    }
}
