//! php-fpm's status page (`pm.status_path`, asked with `?json`, optionally `&full`), parsed once
//! for `fcgi status` and `fcgi exporter`.
//!
//! php-fpm counts the request asking for the page as one of its active processes: the worker
//! serving it would be idle but for the check. [`PoolStatus::own_worker_idle`] moves it back,
//! so that `idle processes` means what an operator expects (`pm = ondemand` at rest shows 1
//! active, 0 idle without this; with it, 0 active and 1 idle).

use serde_json::Value;

/// One process from `?full` (php-fpm's `processes` array).
#[derive(Clone, Debug, PartialEq)]
pub struct Process {
    /// Its place in php-fpm's list (the scoreboard slot), `0..pm.max_children`: the per-process
    /// label, bounded however often php-fpm respawns children (a pid label would grow forever).
    pub slot: usize,
    /// Its pid.
    pub pid: u64,
    /// `Idle`, `Running`, `Reading headers`, `Info`, `Finishing`, `Ending`.
    pub state: String,
    /// Requests served since it started (`requests`).
    pub requests: u64,
    /// Duration of the current request (of the last one when idle), in microseconds.
    pub request_duration_us: u64,
    /// `request method`, `request uri` (what it serves or last served).
    pub request_method: String,
    /// The URI, as php-fpm printed it.
    pub request_uri: String,
    /// `script`: the file of the request (`-` when none).
    pub script: String,
    /// `last request cpu`, percent of one CPU (0 while a request runs).
    pub last_request_cpu: f64,
    /// `last request memory`, bytes (0 while a request runs).
    pub last_request_memory: u64,
    /// Whether this is the worker serving the status request itself (see the module docs).
    pub is_self: bool,
}

impl Process {
    /// Whether it is busy with a request (any state but `Idle`; the status request itself is
    /// counted as idle).
    pub fn is_busy(&self) -> bool {
        !self.is_self && !self.state.eq_ignore_ascii_case("idle")
    }

    /// The state as reported to users: `Idle` for the worker serving the status request.
    pub fn shown_state(&self) -> &str {
        if self.is_self { "Idle" } else { &self.state }
    }
}

/// The pool-wide part of the page, and the processes when `?full` was asked.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolStatus {
    /// `pool`: the pool's name.
    pub pool: String,
    /// `process manager`: `static`, `dynamic` or `ondemand`.
    pub process_manager: String,
    /// `start time` (Unix seconds) and `start since` (seconds running).
    pub start_time: u64,
    /// Seconds since the pool started.
    pub start_since: u64,
    /// `accepted conn`.
    pub accepted_conn: u64,
    /// `listen queue`: connections waiting for a worker (always 0 on a unix socket, see CLI.md).
    pub listen_queue: u64,
    /// `max listen queue`.
    pub max_listen_queue: u64,
    /// `listen queue len`: the socket's backlog size.
    pub listen_queue_len: u64,
    /// `idle processes`, with the status request's own worker counted here.
    pub idle: u64,
    /// `active processes`, without the status request's own worker.
    pub active: u64,
    /// `total processes`.
    pub total: u64,
    /// `max active processes` (since start; stays high after a burst).
    pub max_active: u64,
    /// `max children reached`: times pm.max_children stopped the pool from growing.
    pub max_children_reached: u64,
    /// `slow requests` (needs `request_slowlog_timeout`).
    pub slow_requests: u64,
    /// `processes`, present with `?full`.
    pub processes: Option<Vec<Process>>,
}

impl PoolStatus {
    /// Parses the JSON document; `request_uri` is the REQUEST_URI the page was asked with (to
    /// recognise the worker serving it among `?full`'s processes). The status request's own
    /// worker is counted as idle ([`PoolStatus::own_worker_idle`]).
    #[cfg(test)]
    pub fn parse(body: &[u8], request_uri: &str) -> Result<PoolStatus, String> {
        let doc: Value = serde_json::from_slice(body).map_err(|err| not_json(body, &err.to_string()))?;
        PoolStatus::from_json(&doc, request_uri)
    }

    /// [`PoolStatus::parse`] from an already parsed document.
    pub fn from_json(doc: &Value, request_uri: &str) -> Result<PoolStatus, String> {
        let Some(object) = doc.as_object() else {
            return Err("the status page is JSON but not an object".into());
        };
        let text = |key: &str| match object.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!("{key:?} is not a string: {other}")),
            None => Err(format!("no {key:?} in the status (is this php-fpm's status page?)")),
        };
        let count = |key: &str| count_of(object.get(key), key);
        let processes = match object.get("processes") {
            None => None,
            Some(Value::Array(list)) => Some(
                list.iter()
                    .enumerate()
                    .map(|(slot, entry)| Process::from_json(slot, entry, request_uri))
                    .collect::<Result<Vec<_>, String>>()?,
            ),
            Some(other) => return Err(format!("\"processes\" is not a list: {other}")),
        };
        let status = PoolStatus {
            pool: text("pool")?,
            process_manager: text("process manager")?,
            start_time: count("start time")?,
            start_since: count("start since")?,
            accepted_conn: count("accepted conn")?,
            listen_queue: count("listen queue")?,
            max_listen_queue: count("max listen queue")?,
            listen_queue_len: count("listen queue len")?,
            idle: count("idle processes")?,
            active: count("active processes")?,
            total: count("total processes")?,
            max_active: count("max active processes")?,
            max_children_reached: count("max children reached")?,
            slow_requests: count("slow requests")?,
            processes,
        };
        Ok(status.own_worker_idle().keep_one_self())
    }

    /// Moves the worker serving the status request from active to idle (php-fpm counts it as
    /// active; it would be idle but for the check). In `?full`, that worker is the one running
    /// the status URI; if none is recognised, the first running process is left as it is.
    fn own_worker_idle(mut self) -> PoolStatus {
        if self.active > 0 {
            self.active -= 1;
            self.idle += 1;
        }
        self
    }

    /// The value of a php-fpm key (`idle processes`, ...), after [`PoolStatus::own_worker_idle`].
    pub fn count(&self, key: &str) -> Option<u64> {
        Some(match key {
            "start time" => self.start_time,
            "start since" => self.start_since,
            "accepted conn" => self.accepted_conn,
            "listen queue" => self.listen_queue,
            "max listen queue" => self.max_listen_queue,
            "listen queue len" => self.listen_queue_len,
            "idle processes" => self.idle,
            "active processes" => self.active,
            "total processes" => self.total,
            "max active processes" => self.max_active,
            "max children reached" => self.max_children_reached,
            "slow requests" => self.slow_requests,
            _ => return None,
        })
    }

    /// `pm.max_children` when the page implies it: with `pm = static`, every child is always
    /// there (`total processes`). For `dynamic` and `ondemand` the page does not say.
    pub fn implied_max_children(&self) -> Option<u64> {
        self.process_manager.eq_ignore_ascii_case("static").then_some(self.total)
    }

    /// Workers able to take a request now or soon: idle ones plus the room left below
    /// `max_children` (children php-fpm may still start). `None` when `max_children` is
    /// neither given nor implied ([`PoolStatus::implied_max_children`]).
    pub fn available(&self, max_children: Option<u64>) -> Option<u64> {
        let max = max_children.or_else(|| self.implied_max_children())?;
        Some(self.idle + max.saturating_sub(self.total))
    }
}

impl Process {
    fn from_json(slot: usize, entry: &Value, request_uri: &str) -> Result<Process, String> {
        let Some(object) = entry.as_object() else {
            return Err(format!("process {slot} of the status is not an object: {entry}"));
        };
        let key = |name: &str| format!("process {slot}: {name}");
        let text = |name: &str| match object.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Null) | None => Ok(String::new()),
            Some(other) => Err(format!("{:?} is not a string: {other}", key(name))),
        };
        let count = |name: &str| count_of(object.get(name), &key(name));
        let cpu = match object.get("last request cpu") {
            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
            None => 0.0,
            Some(other) => return Err(format!("{:?} is not a number: {other}", key("last request cpu"))),
        };
        let state = text("state")?;
        let request_uri_seen = text("request uri")?;
        let is_self = !state.eq_ignore_ascii_case("idle") && request_uri_seen == request_uri;
        Ok(Process {
            slot,
            pid: count("pid")?,
            state,
            requests: count("requests")?,
            request_duration_us: count("request duration")?,
            request_method: text("request method")?,
            request_uri: request_uri_seen,
            script: text("script")?,
            last_request_cpu: cpu,
            last_request_memory: count("last request memory")?,
            is_self,
        })
    }
}

impl PoolStatus {
    /// Marks at most one process as the status request's own worker (several processes may
    /// show the same URI when several checks run at once; only one is ours to discount).
    fn keep_one_self(mut self) -> PoolStatus {
        if let Some(processes) = &mut self.processes {
            let mut seen = false;
            for process in processes.iter_mut() {
                if process.is_self {
                    process.is_self = !seen;
                    seen = true;
                }
            }
        }
        self
    }
}

fn count_of(value: Option<&Value>, key: &str) -> Result<u64, String> {
    match value {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .ok_or_else(|| format!("{key:?} is not a count: {n}")),
        Some(other) => Err(format!("{key:?} is not a count: {other}")),
        None => Err(format!("no {key:?} in the status (is this php-fpm's status page?)")),
    }
}

/// The reason given when the page is not JSON: what it starts with, escaped and cut (a wrong
/// `--path` reaches a PHP script or php-fpm's "No input file specified.", not the status).
pub fn not_json(body: &[u8], error: &str) -> String {
    let start = &body[..body.len().min(60)];
    let more = if body.len() > start.len() { "…" } else { "" };
    format!(
        "the answer is not php-fpm's JSON status ({error}); it starts with \"{}{more}\"",
        crate::records::escape(start)
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What php-fpm 8.2 answers on `/status?json&full` (shape as captured from a static pool of
    /// two, the second serving the request).
    pub const FULL: &str = r#"{"pool":"www","process manager":"static","start time":1764680000,"start since":42,"accepted conn":7,"listen queue":0,"max listen queue":0,"listen queue len":0,"idle processes":1,"active processes":1,"total processes":2,"max active processes":2,"max children reached":0,"slow requests":0,"processes":[{"pid":101,"state":"Idle","start time":1764680000,"start since":42,"requests":4,"request duration":1520,"request method":"GET","request uri":"/hello.php","content length":0,"user":"-","script":"/srv/hello.php","last request cpu":0.00,"last request memory":2097152},{"pid":102,"state":"Running","start time":1764680000,"start since":42,"requests":3,"request duration":180,"request method":"GET","request uri":"/status?json&full","content length":0,"user":"-","script":"-","last request cpu":0.00,"last request memory":0}]}"#;

    #[test]
    fn full_status_parses_with_the_own_worker_idle() {
        let status = PoolStatus::parse(FULL.as_bytes(), "/status?json&full").unwrap();
        assert_eq!(status.pool, "www");
        assert_eq!(status.process_manager, "static");
        assert_eq!((status.idle, status.active, status.total), (2, 0, 2));
        assert_eq!(status.count("idle processes"), Some(2));
        assert_eq!(status.count("nope"), None);
        let processes = status.processes.as_ref().unwrap();
        assert_eq!(processes.len(), 2);
        assert_eq!(processes[0].slot, 0);
        assert_eq!(processes[0].pid, 101);
        assert_eq!(processes[0].last_request_memory, 2_097_152);
        assert!(!processes[0].is_busy() && !processes[0].is_self);
        assert!(processes[1].is_self && !processes[1].is_busy());
        assert_eq!(processes[1].shown_state(), "Idle");
        assert_eq!(status.available(None), Some(2));
    }

    #[test]
    fn plain_status_has_no_processes() {
        let doc: Value = serde_json::from_str(FULL).unwrap();
        let mut object = doc.as_object().unwrap().clone();
        object.remove("processes");
        let status = PoolStatus::from_json(&Value::Object(object), "/status?json").unwrap();
        assert_eq!(status.processes, None);
    }

    #[test]
    fn ondemand_at_rest_is_one_idle_and_needs_max_children() {
        let body = FULL
            .replace("\"static\"", "\"ondemand\"")
            .replace("\"idle processes\":1", "\"idle processes\":0")
            .replace("\"total processes\":2", "\"total processes\":1");
        let status = PoolStatus::parse(body.as_bytes(), "/status?json").unwrap();
        assert_eq!((status.idle, status.active), (1, 0));
        assert_eq!(status.available(None), None);
        assert_eq!(status.available(Some(5)), Some(1 + 4));
        assert_eq!(status.available(Some(0)), Some(1), "a max below total adds no room");
    }

    #[test]
    fn several_matching_processes_count_one_as_self() {
        let body = FULL
            .replace("\"request uri\":\"/hello.php\"", "\"request uri\":\"/status?json&full\"")
            .replace("\"state\":\"Idle\"", "\"state\":\"Running\"");
        let status = PoolStatus::parse(body.as_bytes(), "/status?json&full").unwrap();
        let selves = status.processes.unwrap().iter().filter(|p| p.is_self).count();
        assert_eq!(selves, 1);
    }

    #[test]
    fn malformed_pages_say_what_is_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (b"No input file specified.\n", "not php-fpm's JSON status"),
            (b"[1,2]", "not an object"),
            (b"{}", "no \"pool\""),
            (br#"{"pool":3}"#, "\"pool\" is not a string"),
            (br#"{"pool":"www","process manager":"static"}"#, "no \"start time\""),
            (br#"{"pool":"www","process manager":"static","start time":-4}"#, "is not a count"),
            (b"\xff\x1b[2J", "starts with \"\\xff\\u{1b}[2J\""),
        ];
        for (body, expected) in cases {
            let err = PoolStatus::parse(body, "/status?json").unwrap_err();
            assert!(err.contains(expected), "{body:?}: {err}");
        }
        let bad_processes = FULL.replace("\"processes\":[", "\"processes\":[7,");
        let err = PoolStatus::parse(bad_processes.as_bytes(), "/status?json&full").unwrap_err();
        assert!(err.contains("process 0 of the status is not an object"), "{err}");
        let bad_pid = FULL.replace("\"pid\":101", "\"pid\":\"x\"");
        let err = PoolStatus::parse(bad_pid.as_bytes(), "/status?json&full").unwrap_err();
        assert!(err.contains("process 0: pid"), "{err}");
        let long = vec![b'N'; 10_000];
        assert!(PoolStatus::parse(&long, "/").unwrap_err().len() < 300);
    }
}
