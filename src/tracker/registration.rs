//! A server's side of the tracker conversation, with no I/O: what TVM's server does in its
//! listen loop (PUT a random match key, poll GET_PENDING_MATCHKEYS, offer a fresh key after a
//! session and when a handed-out key goes unused), as a state machine a driver feeds with
//! bytes and the time.
//!
//! As TVM's server does, a server offers no key while a session it got through the tracker
//! is open, and a fresh one once it has ended ([`TrackerSessions`]): the tracker then counts
//! the server as busy, and TVM's tuning tools rely on that for clean timings. A server may
//! allow more tracker sessions at once; it then offers a fresh key as soon as a client has
//! used the last one, while it has room. At most one key is offered at a time, as TVM does.

use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use super::message::{
    Incoming, MessageReader, Request, TRACKER_MAGIC, TrackerError, parse_pending_keys,
    parse_success,
};

/// How many sessions a server serves through the tracker at once: with room for another,
/// it offers a match key; at its limit (TVM's: 1), none until a session ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerSessions {
    open: usize,
    limit: usize,
}

impl TrackerSessions {
    /// At most `limit` tracker sessions at once (at least one).
    pub fn new(limit: usize) -> Self {
        TrackerSessions { open: 0, limit: limit.max(1) }
    }

    pub fn open(&self) -> usize {
        self.open
    }

    /// A client sent by the tracker started a session.
    pub fn opened(&mut self) {
        self.open = self.open.saturating_add(1);
    }

    /// A session the tracker sent ended.
    pub fn ended(&mut self) {
        self.open = self.open.saturating_sub(1);
    }

    /// Whether a key may be offered, given whether the server has room for a session.
    pub fn room(&self, server_has_room: bool) -> bool {
        server_has_room && self.open < self.limit
    }
}

/// How a server registers.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// The device key clients ask the tracker for (`--key`).
    pub key: String,
    /// The port clients connect to.
    pub port: u16,
    /// The address the tracker hands out (`--custom-addr`); `None`: the one it sees.
    pub custom_addr: Option<String>,
    /// How often to ask which offered keys are still pending (TVM: 2 s).
    pub ping_period: Duration,
    /// How long a key a client took may stay unused before a fresh one is offered (TVM: 4 s,
    /// checked at ping periods).
    pub unmatch_timeout: Duration,
    /// How long to wait for any reply before giving the tracker up for lost.
    pub reply_timeout: Duration,
}

impl RegistrationConfig {
    pub fn new(key: &str, port: u16, custom_addr: Option<String>) -> Self {
        RegistrationConfig {
            key: key.to_owned(),
            port,
            custom_addr,
            ping_period: Duration::from_secs(2),
            unmatch_timeout: Duration::from_secs(4),
            reply_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Awaited {
    UpdateInfo,
    Put(String),
    PendingKeys,
}

impl Awaited {
    fn name(&self) -> &'static str {
        match self {
            Awaited::UpdateInfo => "UPDATE_INFO",
            Awaited::Put(_) => "PUT",
            Awaited::PendingKeys => "GET_PENDING_MATCHKEYS",
        }
    }
}

/// One registration with one tracker connection; a new connection starts a new one.
#[derive(Debug)]
pub struct Registration {
    config: RegistrationConfig,
    reader: MessageReader,
    output: Vec<u8>,
    /// Replies still to come, in order, with when each request was sent.
    awaiting: VecDeque<(Awaited, Instant)>,
    /// Whether the tracker has answered our magic.
    greeted: bool,
    /// The key last PUT: the one a client must present. `None` once a client has used it.
    offered: Option<String>,
    /// Whether the server has room for another session (a fresh key is offered only then).
    room: bool,
    /// Consecutive polls in which the tracker no longer listed `offered` as pending.
    unmatched_polls: u32,
    next_poll: Instant,
    keys_made: u64,
}

impl Registration {
    /// Starts the conversation: the magic is queued to send.
    pub fn new(config: RegistrationConfig, room: bool, now: Instant) -> Self {
        Registration {
            reader: MessageReader::new(),
            output: TRACKER_MAGIC.to_le_bytes().to_vec(),
            awaiting: VecDeque::new(),
            greeted: false,
            offered: None,
            room,
            unmatched_polls: 0,
            next_poll: now + config.ping_period,
            keys_made: 0,
            config,
        }
    }

    pub fn config(&self) -> &RegistrationConfig {
        &self.config
    }

    /// Whether the tracker has answered our magic and our info.
    pub fn is_registered(&self) -> bool {
        self.greeted && !self.awaiting.iter().any(|(a, _)| *a == Awaited::UpdateInfo)
    }

    /// The match key currently offered through the tracker.
    pub fn offered_key(&self) -> Option<&str> {
        self.offered.as_deref()
    }

    /// Whether a client presenting `match_key` (what follows `client:`) was sent by the
    /// tracker for us.
    pub fn accepts(&self, match_key: &str) -> bool {
        self.offered.as_deref() == Some(match_key)
    }

    /// Bytes to send to the tracker.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    pub fn consume_output(&mut self, n: usize) {
        self.output.drain(..n.min(self.output.len()));
    }

    pub fn wants_write(&self) -> bool {
        !self.output.is_empty()
    }

    /// Feeds bytes received from the tracker and handles every complete reply.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) -> Result<(), TrackerError> {
        self.reader.push(bytes);
        while let Some(unit) = self.reader.next_unit()? {
            match unit {
                Incoming::Magic => {
                    self.greeted = true;
                    let info = Request::UpdateInfo {
                        key: self.config.key.clone(),
                        custom_addr: self.config.custom_addr.clone(),
                        port: self.config.port,
                    };
                    self.send(info, Awaited::UpdateInfo, now);
                    if self.room {
                        self.offer_fresh_key(now);
                    }
                }
                Incoming::Message(reply) => {
                    let Some((awaited, _)) = self.awaiting.pop_front() else {
                        return Err(TrackerError::Unsolicited(reply.to_string()));
                    };
                    match awaited {
                        Awaited::UpdateInfo => parse_success("UPDATE_INFO", &reply)?,
                        Awaited::Put(key) => {
                            parse_success("PUT", &reply)?;
                            log::debug!("tracker: offered match key {key}");
                        }
                        Awaited::PendingKeys => {
                            let pending = parse_pending_keys(&reply)?;
                            self.check_offer_is_pending(&pending, now);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A client presented the offered key: it is used up. A fresh one is offered if the
    /// server has room for another session.
    pub fn key_used(&mut self, room: bool, now: Instant) {
        self.offered = None;
        self.unmatched_polls = 0;
        self.set_room(room, now);
    }

    /// Tells whether the server has room for another session; with room and no key on
    /// offer, a fresh one is offered.
    pub fn set_room(&mut self, room: bool, now: Instant) {
        self.room = room;
        if room && self.offered.is_none() && self.greeted {
            self.offer_fresh_key(now);
        }
    }

    /// When [`Registration::on_timer`] next has something to do.
    pub fn next_deadline(&self) -> Instant {
        let reply_due = self.awaiting.front().map(|(_, sent)| *sent + self.config.reply_timeout);
        reply_due.map_or(self.next_poll, |due| due.min(self.next_poll))
    }

    /// Polls pending keys when due. `Err` when the tracker has stopped answering.
    pub fn on_timer(&mut self, now: Instant) -> Result<(), TrackerError> {
        if let Some((awaited, sent)) = self.awaiting.front()
            && now >= *sent + self.config.reply_timeout
        {
            return Err(TrackerError::Timeout {
                request: awaited.name(),
                seconds: self.config.reply_timeout.as_secs(),
            });
        }
        if now >= self.next_poll {
            self.next_poll = now + self.config.ping_period;
            let polling = self.awaiting.iter().any(|(a, _)| *a == Awaited::PendingKeys);
            if self.greeted && !polling {
                self.send(Request::GetPendingMatchKeys, Awaited::PendingKeys, now);
            }
        }
        Ok(())
    }

    fn check_offer_is_pending(&mut self, pending: &[String], now: Instant) {
        let Some(offered) = &self.offered else { return };
        if pending.iter().any(|k| k == offered) {
            self.unmatched_polls = 0;
            return;
        }
        // A client took the key from the tracker but has not come (yet). TVM's server
        // waits `unmatch_timeout + ping_period` of such polls before giving up on it.
        self.unmatched_polls += 1;
        let waited = self.config.ping_period * self.unmatched_polls;
        if waited > self.config.unmatch_timeout + self.config.ping_period {
            log::info!("tracker: match key {offered} was taken but not used; offering a new one");
            self.offered = None;
            self.unmatched_polls = 0;
            if self.room {
                self.offer_fresh_key(now);
            }
        }
    }

    fn offer_fresh_key(&mut self, now: Instant) {
        let key = self.random_key();
        self.offered = Some(key.clone());
        self.unmatched_polls = 0;
        let put = Request::Put {
            key: self.config.key.clone(),
            port: self.config.port,
            match_key: key.clone(),
            custom_addr: self.config.custom_addr.clone(),
        };
        self.send(put, Awaited::Put(key), now);
    }

    fn send(&mut self, request: Request, awaited: Awaited, now: Instant) {
        request.encode(&mut self.output);
        self.awaiting.push_back((awaited, now));
    }

    /// `"<key>:0.<digits>"`, the shape of TVM's `random_key`: the tracker splits the key at
    /// its last `:` to find the queue, so the prefix must be the device key.
    fn random_key(&mut self) -> String {
        self.keys_made += 1;
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(self.keys_made);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        format!("{}:0.{:016}", self.config.key, hasher.finish() % 10_000_000_000_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value as Json, json};

    fn reply(value: Json) -> Vec<u8> {
        let mut out = Vec::new();
        super::super::message::encode_json(&value, &mut out);
        out
    }

    /// Decodes what the registration wants sent, after the magic.
    fn sent(reg: &mut Registration) -> Vec<Json> {
        let mut reader = MessageReader::new();
        reader.push(&TRACKER_MAGIC.to_le_bytes());
        reader.next_unit().unwrap();
        let bytes = reg.output().to_vec();
        reg.consume_output(bytes.len());
        let bytes = bytes.strip_prefix(&TRACKER_MAGIC.to_le_bytes()[..]).unwrap_or(&bytes);
        reader.push(bytes);
        let mut out = Vec::new();
        while let Some(Incoming::Message(m)) = reader.next_unit().unwrap() {
            out.push(m);
        }
        out
    }

    fn registered(now: Instant) -> (Registration, String) {
        let mut reg = Registration::new(RegistrationConfig::new("mycpu", 9110, None), true, now);
        assert_eq!(reg.output(), TRACKER_MAGIC.to_le_bytes());
        reg.receive(&TRACKER_MAGIC.to_le_bytes(), now).unwrap();
        let msgs = sent(&mut reg);
        assert_eq!(msgs[0], json!([5, {"key": "server:mycpu", "addr": [null, 9110]}]));
        assert_eq!(msgs[1][0], 3);
        assert_eq!(msgs[1][1], "mycpu");
        assert_eq!(msgs[1][2][0], 9110);
        let key = msgs[1][2][1].as_str().unwrap().to_owned();
        assert!(key.starts_with("mycpu:0."), "{key}");
        assert_eq!(msgs[1][3], Json::Null);
        reg.receive(&[reply(json!(0)), reply(json!(0))].concat(), now).unwrap();
        assert!(reg.is_registered());
        assert!(reg.accepts(&key));
        (reg, key)
    }

    #[test]
    fn one_tracker_session_at_a_time_by_default() {
        let mut sessions = TrackerSessions::new(1);
        assert!(sessions.room(true));
        sessions.opened();
        assert!(!sessions.room(true), "no key while the session is open");
        sessions.ended();
        assert!(sessions.room(true), "a fresh key once it has ended");
    }

    #[test]
    fn a_larger_limit_allows_that_many_tracker_sessions_at_once() {
        let mut sessions = TrackerSessions::new(3);
        sessions.opened();
        sessions.opened();
        assert!(sessions.room(true));
        sessions.opened();
        assert!(!sessions.room(true));
        assert_eq!(sessions.open(), 3);
    }

    #[test]
    fn no_key_is_offered_while_the_server_itself_is_full() {
        assert!(!TrackerSessions::new(4).room(false));
    }

    #[test]
    fn a_limit_of_zero_means_one() {
        let mut sessions = TrackerSessions::new(0);
        assert!(sessions.room(true));
        sessions.opened();
        assert!(!sessions.room(true));
    }

    #[test]
    fn registers_like_tvms_server() {
        registered(Instant::now());
    }

    #[test]
    fn sends_nothing_after_the_magic_until_the_tracker_answers_it() {
        let now = Instant::now();
        let mut reg = Registration::new(RegistrationConfig::new("k", 1, None), true, now);
        reg.consume_output(4);
        reg.on_timer(now + Duration::from_secs(3)).unwrap();
        assert!(!reg.wants_write());
    }

    #[test]
    fn offers_a_fresh_key_once_the_offered_one_is_used() {
        let now = Instant::now();
        let (mut reg, first) = registered(now);
        reg.key_used(true, now);
        assert!(!reg.accepts(&first));
        let msgs = sent(&mut reg);
        let second = msgs[0][2][1].as_str().unwrap();
        assert_ne!(second, first);
        assert!(reg.accepts(second));
    }

    #[test]
    fn offers_no_key_while_full_and_one_when_room_returns() {
        let now = Instant::now();
        let (mut reg, _) = registered(now);
        reg.key_used(false, now);
        assert!(sent(&mut reg).is_empty());
        reg.set_room(true, now);
        assert_eq!(sent(&mut reg)[0][0], 3);
    }

    #[test]
    fn replaces_a_key_taken_by_a_client_that_never_came() {
        let start = Instant::now();
        let (mut reg, key) = registered(start);
        let mut now = start;
        let mut replaced = false;
        for _ in 0..5 {
            now += Duration::from_secs(2);
            reg.on_timer(now).unwrap();
            assert_eq!(sent(&mut reg), [json!([7])]);
            reg.receive(&reply(json!([])), now).unwrap();
            if !reg.accepts(&key) {
                replaced = true;
                break;
            }
        }
        assert!(replaced, "a key unused for 8 s is replaced");
        assert!(now - start > Duration::from_secs(6));
        assert_eq!(sent(&mut reg)[0][0], 3);
    }

    #[test]
    fn keeps_a_key_the_tracker_still_lists_as_pending() {
        let start = Instant::now();
        let (mut reg, key) = registered(start);
        for i in 1..10 {
            let now = start + Duration::from_secs(2 * i);
            reg.on_timer(now).unwrap();
            sent(&mut reg);
            reg.receive(&reply(json!([key.clone()])), now).unwrap();
        }
        assert!(reg.accepts(&key));
    }

    #[test]
    fn a_silent_tracker_times_out() {
        let now = Instant::now();
        let (mut reg, _) = registered(now);
        reg.on_timer(now + Duration::from_secs(2)).unwrap();
        assert!(reg.on_timer(now + Duration::from_secs(13)).is_err());
    }

    #[test]
    fn a_failed_put_is_an_error() {
        let now = Instant::now();
        let mut reg = Registration::new(RegistrationConfig::new("k", 1, None), true, now);
        reg.receive(&TRACKER_MAGIC.to_le_bytes(), now).unwrap();
        assert!(reg.receive(&[reply(json!(0)), reply(json!(-1))].concat(), now).is_err());
    }

    #[test]
    fn an_unsolicited_message_is_an_error() {
        let now = Instant::now();
        let (mut reg, _) = registered(now);
        assert!(reg.receive(&reply(json!(0)), now).is_err());
    }
}
