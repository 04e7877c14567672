//! The tracker's wire format: `i32 0x2F271` each way, then messages framed as `i32 len` +
//! UTF-8 JSON. Requests are typed values with their encoder; replies are decoded from JSON
//! into typed values by one function per request kind, each returning an error value for
//! anything it does not expect.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

/// First word each side of a tracker connection sends (TVM's `RPC_TRACKER_MAGIC`).
pub const TRACKER_MAGIC: i32 = 0x2F271;

/// Longest message accepted from a tracker. A summary lists every server; a megabyte is
/// thousands of them.
pub const MAX_MESSAGE_LEN: usize = 1 << 20;

/// TVM's `TrackerCode`.
pub mod code {
    pub const FAIL: i64 = -1;
    pub const SUCCESS: i64 = 0;
    pub const PING: i64 = 1;
    pub const STOP: i64 = 2;
    pub const PUT: i64 = 3;
    pub const REQUEST: i64 = 4;
    pub const UPDATE_INFO: i64 = 5;
    pub const SUMMARY: i64 = 6;
    pub const GET_PENDING_MATCHKEYS: i64 = 7;
}

/// Why a tracker conversation cannot go on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrackerError {
    #[error("the peer is not a TVM tracker (it answered magic {0:#x}, expected 0x2f271)")]
    BadMagic(i32),
    #[error("tracker message length {0} is negative or exceeds the limit of {MAX_MESSAGE_LEN}")]
    BadLength(i64),
    #[error("tracker message is not UTF-8 JSON: {0}")]
    BadJson(String),
    #[error("unexpected tracker reply to {request}: {reply}")]
    UnexpectedReply { request: &'static str, reply: String },
    #[error("the tracker sent a message nobody asked for: {0}")]
    Unsolicited(String),
    #[error("the tracker did not answer {request} within {seconds} s")]
    Timeout { request: &'static str, seconds: u64 },
}

/// A message to the tracker.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Ping,
    /// A server describes itself: key `"server:<key>"`, the address clients should use
    /// (`None`: the address the tracker sees) and its port.
    UpdateInfo {
        key: String,
        custom_addr: Option<String>,
        port: u16,
    },
    /// A server offers one session under `key`; a client that gets it connects with
    /// `"client:<match_key>"`.
    Put {
        key: String,
        port: u16,
        match_key: String,
        custom_addr: Option<String>,
    },
    /// A server asks which of its offered match keys no client has taken yet.
    GetPendingMatchKeys,
    /// A client asks for a server of `key`.
    Request {
        key: String,
        user: String,
        priority: i64,
    },
    Summary,
}

impl Request {
    pub fn name(&self) -> &'static str {
        match self {
            Request::Ping => "PING",
            Request::UpdateInfo { .. } => "UPDATE_INFO",
            Request::Put { .. } => "PUT",
            Request::GetPendingMatchKeys => "GET_PENDING_MATCHKEYS",
            Request::Request { .. } => "REQUEST",
            Request::Summary => "SUMMARY",
        }
    }

    pub fn to_json(&self) -> Json {
        match self {
            Request::Ping => json!([code::PING]),
            Request::UpdateInfo { key, custom_addr, port } => {
                json!([code::UPDATE_INFO, {"key": format!("server:{key}"), "addr": [custom_addr, port]}])
            }
            Request::Put { key, port, match_key, custom_addr } => {
                json!([code::PUT, key, [port, match_key], custom_addr])
            }
            Request::GetPendingMatchKeys => json!([code::GET_PENDING_MATCHKEYS]),
            Request::Request { key, user, priority } => json!([code::REQUEST, key, user, priority]),
            Request::Summary => json!([code::SUMMARY]),
        }
    }

    /// Appends the framed message (`i32 len` + JSON).
    pub fn encode(&self, out: &mut Vec<u8>) {
        encode_json(&self.to_json(), out);
    }
}

/// Appends `value` framed as a tracker message.
pub fn encode_json(value: &Json, out: &mut Vec<u8>) {
    let text = value.to_string();
    out.extend_from_slice(&(text.len() as i32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Splits bytes from a tracker into its magic and JSON messages.
#[derive(Debug, Default)]
pub struct MessageReader {
    buf: Vec<u8>,
    magic_seen: bool,
}

/// One unit of tracker input.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// The tracker's magic: it speaks the protocol.
    Magic,
    Message(Json),
}

impl MessageReader {
    /// A reader that expects the tracker's magic first.
    pub fn new() -> Self {
        MessageReader::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete unit, `None` if more bytes are needed.
    pub fn next_unit(&mut self) -> Result<Option<Incoming>, TrackerError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let word = i32::from_le_bytes(self.buf[..4].try_into().expect("four bytes"));
        if !self.magic_seen {
            self.buf.drain(..4);
            if word != TRACKER_MAGIC {
                return Err(TrackerError::BadMagic(word));
            }
            self.magic_seen = true;
            return Ok(Some(Incoming::Magic));
        }
        let len = usize::try_from(word)
            .ok()
            .filter(|&n| n <= MAX_MESSAGE_LEN)
            .ok_or(TrackerError::BadLength(word.into()))?;
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let value = serde_json::from_slice(&self.buf[4..4 + len])
            .map_err(|e| TrackerError::BadJson(e.to_string()));
        self.buf.drain(..4 + len);
        Ok(Some(Incoming::Message(value?)))
    }
}

fn unexpected(request: &'static str, reply: &Json) -> TrackerError {
    let mut text = reply.to_string();
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    TrackerError::UnexpectedReply { request, reply: text }
}

/// The reply to PUT, UPDATE_INFO and PING: `0`.
pub fn parse_success(request: &'static str, reply: &Json) -> Result<(), TrackerError> {
    match reply.as_i64() {
        Some(code::SUCCESS) => Ok(()),
        _ => Err(unexpected(request, reply)),
    }
}

/// The reply to GET_PENDING_MATCHKEYS: a list of match keys.
pub fn parse_pending_keys(reply: &Json) -> Result<Vec<String>, TrackerError> {
    let fail = || unexpected("GET_PENDING_MATCHKEYS", reply);
    reply
        .as_array()
        .ok_or_else(fail)?
        .iter()
        .map(|k| k.as_str().map(str::to_owned).ok_or_else(fail))
        .collect()
}

/// Where a tracker sends a client: the server's address and the match key to present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub host: String,
    pub port: u16,
    pub match_key: String,
}

/// The reply to REQUEST: `[0, [host, port, match_key]]`.
pub fn parse_assignment(reply: &Json) -> Result<Assignment, TrackerError> {
    let fail = || unexpected("REQUEST", reply);
    let [status, value] = reply.as_array().map(Vec::as_slice).ok_or_else(fail)? else {
        return Err(fail());
    };
    if status.as_i64() != Some(code::SUCCESS) {
        return Err(fail());
    }
    let [host, port, key] = value.as_array().map(Vec::as_slice).ok_or_else(fail)? else {
        return Err(fail());
    };
    Ok(Assignment {
        host: host.as_str().ok_or_else(fail)?.to_owned(),
        port: port.as_u64().and_then(|p| u16::try_from(p).ok()).ok_or_else(fail)?,
        match_key: key.as_str().ok_or_else(fail)?.to_owned(),
    })
}

/// Free and waiting entries of one key's queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueInfo {
    /// Sessions offered by servers and not yet handed out.
    pub free: u64,
    /// Clients waiting for a session.
    pub pending: u64,
}

/// A server registered with the tracker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// `"server:<key>"`.
    pub key: String,
    pub host: Option<String>,
    pub port: Option<u16>,
}

/// The reply to SUMMARY.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub queues: BTreeMap<String, QueueInfo>,
    pub servers: Vec<ServerInfo>,
}

impl Summary {
    /// Registered servers whose key is `key` (without the `server:` prefix).
    pub fn servers_with_key(&self, key: &str) -> usize {
        self.servers.iter().filter(|s| s.key.strip_prefix("server:") == Some(key)).count()
    }
}

/// The reply to SUMMARY: `[0, {"queue_info": {..}, "server_info": [..]}]`.
pub fn parse_summary(reply: &Json) -> Result<Summary, TrackerError> {
    let fail = || unexpected("SUMMARY", reply);
    let [status, body] = reply.as_array().map(Vec::as_slice).ok_or_else(fail)? else {
        return Err(fail());
    };
    if status.as_i64() != Some(code::SUCCESS) {
        return Err(fail());
    }
    let mut summary = Summary::default();
    if let Some(queues) = body.get("queue_info").and_then(Json::as_object) {
        for (key, info) in queues {
            let count = |name: &str| info.get(name).and_then(Json::as_u64).unwrap_or(0);
            summary
                .queues
                .insert(key.clone(), QueueInfo { free: count("free"), pending: count("pending") });
        }
    }
    if let Some(servers) = body.get("server_info").and_then(Json::as_array) {
        for server in servers {
            let addr = server.get("addr").and_then(Json::as_array);
            let part = |i: usize| addr.and_then(|a| a.get(i));
            summary.servers.push(ServerInfo {
                key: server.get("key").and_then(Json::as_str).unwrap_or_default().to_owned(),
                host: part(0).and_then(Json::as_str).map(str::to_owned),
                port: part(1).and_then(Json::as_u64).and_then(|p| u16::try_from(p).ok()),
            });
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(text: &str) -> Vec<u8> {
        let mut out = (text.len() as i32).to_le_bytes().to_vec();
        out.extend_from_slice(text.as_bytes());
        out
    }

    #[test]
    fn encodes_requests_as_tvm_server_and_client_do() {
        let put = Request::Put {
            key: "mycpu".into(),
            port: 9110,
            match_key: "mycpu:0.5".into(),
            custom_addr: None,
        };
        assert_eq!(put.to_json().to_string(), r#"[3,"mycpu",[9110,"mycpu:0.5"],null]"#);
        let info = Request::UpdateInfo { key: "mycpu".into(), custom_addr: None, port: 9110 };
        assert_eq!(info.to_json().to_string(), r#"[5,{"addr":[null,9110],"key":"server:mycpu"}]"#);
        let req = Request::Request { key: "mycpu".into(), user: String::new(), priority: 1 };
        assert_eq!(req.to_json().to_string(), r#"[4,"mycpu","",1]"#);
        let mut out = Vec::new();
        Request::GetPendingMatchKeys.encode(&mut out);
        assert_eq!(out, frame("[7]"));
    }

    #[test]
    fn reader_yields_magic_then_messages_split_anywhere() {
        let mut bytes = TRACKER_MAGIC.to_le_bytes().to_vec();
        bytes.extend(frame("0"));
        bytes.extend(frame(r#"["mycpu:0.1"]"#));
        let mut reader = MessageReader::new();
        let mut got = Vec::new();
        for b in bytes {
            reader.push(&[b]);
            while let Some(unit) = reader.next_unit().unwrap() {
                got.push(unit);
            }
        }
        assert_eq!(
            got,
            [Incoming::Magic, Incoming::Message(json!(0)), Incoming::Message(json!(["mycpu:0.1"]))]
        );
    }

    #[test]
    fn rejects_wrong_magic() {
        let mut reader = MessageReader::new();
        reader.push(&0xFF271i32.to_le_bytes());
        assert_eq!(reader.next_unit(), Err(TrackerError::BadMagic(0xFF271)));
    }

    #[test]
    fn rejects_message_longer_than_the_limit_before_buffering_it() {
        let mut reader = MessageReader::new();
        reader.push(&TRACKER_MAGIC.to_le_bytes());
        reader.next_unit().unwrap();
        reader.push(&(i32::MAX).to_le_bytes());
        assert_eq!(reader.next_unit(), Err(TrackerError::BadLength(i32::MAX.into())));
        let mut reader = MessageReader::new();
        reader.push(&TRACKER_MAGIC.to_le_bytes());
        reader.next_unit().unwrap();
        reader.push(&(-1i32).to_le_bytes());
        assert_eq!(reader.next_unit(), Err(TrackerError::BadLength(-1)));
    }

    #[test]
    fn parses_replies_of_the_recorded_tracker() {
        let assignment = parse_assignment(&json!([0, ["127.0.0.1", 9110, "mycpu:0.16"]])).unwrap();
        assert_eq!(
            assignment,
            Assignment { host: "127.0.0.1".into(), port: 9110, match_key: "mycpu:0.16".into() }
        );
        let summary = parse_summary(&json!([0, {
            "queue_info": {"mycpu": {"free": 1, "pending": 0}},
            "server_info": [{"key": "server:mycpu", "addr": ["127.0.0.1", 9110]}]
        }]))
        .unwrap();
        assert_eq!(summary.queues["mycpu"], QueueInfo { free: 1, pending: 0 });
        assert_eq!(summary.servers_with_key("mycpu"), 1);
        assert_eq!(summary.servers[0].port, Some(9110));
        assert_eq!(parse_pending_keys(&json!(["a", "b"])).unwrap(), ["a", "b"]);
        assert!(parse_success("PUT", &json!(0)).is_ok());
    }

    /// Found by the tracker_messages fuzz target: a 50-digit integer parses as a float, and
    /// without correctly rounded parsing its re-encoding decoded to a neighbouring float.
    #[test]
    fn reencoded_message_decodes_to_the_same_json() {
        let text = "88888880888858888888888888888888888888888888888888";
        let mut reader = MessageReader::new();
        reader.push(&TRACKER_MAGIC.to_le_bytes());
        reader.push(&frame(text));
        reader.next_unit().unwrap();
        let Some(Incoming::Message(first)) = reader.next_unit().unwrap() else { panic!() };
        let mut again = Vec::new();
        encode_json(&first, &mut again);
        reader.push(&again);
        assert_eq!(reader.next_unit().unwrap(), Some(Incoming::Message(first)));
    }

    #[test]
    fn unexpected_replies_are_errors() {
        assert!(parse_success("PUT", &json!(-1)).is_err());
        assert!(parse_pending_keys(&json!([1])).is_err());
        assert!(parse_assignment(&json!([0, ["h", 70000, "k"]])).is_err());
        assert!(parse_assignment(&json!([-1])).is_err());
        assert!(parse_summary(&json!({"queue_info": {}})).is_err());
    }
}
