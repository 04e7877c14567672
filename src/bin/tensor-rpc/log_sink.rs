//! The server's log: one line per record on stderr, written so that a log nobody reads
//! any more cannot stop the server.
//!
//! `simple_logger` writes with `eprintln!`, which panics when stderr is a pipe whose
//! reader has gone (a supervisor restarted, `| head` finished, a test harness exited). A
//! panic there killed whichever thread logged: the signal thread, leaving the server
//! deaf to SIGTERM, or the event loop, ending every session. Here a failed write is
//! dropped: the server's work matters more than its log lines.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

const STAMP: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Installs the stderr log at `level`; says why on stderr (if it can) when a log is
/// already installed.
pub fn init(level: LevelFilter) {
    static SINK: StderrLog = StderrLog;
    match log::set_logger(&SINK) {
        Ok(()) => log::set_max_level(level),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "cannot set up logging: {e}");
        }
    }
}

struct StderrLog;

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format_line(OffsetDateTime::now_utc(), record);
        // One write per line, so lines from several threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// `2026-12-04T22:44:52.240Z INFO  [tensor_rpc::server] message`: the layout
/// `simple_logger` used, which scripts and tests read (an address ends the line that
/// announces it).
fn format_line(now: OffsetDateTime, record: &Record) -> String {
    let stamp = now.format(STAMP).unwrap_or_default();
    format!("{stamp} {:<5} [{}] {}\n", record.level(), record.target(), record.args())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_line_has_a_millisecond_utc_stamp_the_padded_level_the_target_and_the_message() {
        let now = datetime!(2026-12-04 22:44:52.240_123 UTC);
        let line = format_line(
            now,
            &Record::builder()
                .level(log::Level::Info)
                .target("tensor_rpc::server")
                .args(format_args!("listening on {}", "0.0.0.0:9090"))
                .build(),
        );
        assert_eq!(
            line,
            "2026-12-04T22:44:52.240Z INFO  [tensor_rpc::server] listening on 0.0.0.0:9090\n"
        );
    }
}
