//! The real server process at the edge of its resources: more idle connections than it has
//! descriptors, no descriptor left at all, and a thousand long-polls on an action carrying
//! a megabyte of reasoning, with its memory read from `/proc`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use tempfile::TempDir;

use super::{BIN, Server, bootstrap_admin, scratch};

/// Generous: the timeouts configured below are a few seconds.
const BOUND: Duration = Duration::from_secs(30);

/// The open-file limit the server runs under, and so (less the 64 the server keeps for
/// itself) its connection cap when the config does not set one.
const DESCRIPTORS: usize = 256;
const CAP: usize = DESCRIPTORS - 64;

fn address(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Sends one request on `stream` and reads its response: status and body. The response
/// must carry `content-length` (every answer of this server does, but event streams).
fn exchange(stream: &mut TcpStream, request: &str) -> std::io::Result<(u16, Vec<u8>)> {
    stream.set_read_timeout(Some(BOUND))?;
    stream.write_all(request.as_bytes())?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                let status = head[9..12].parse().unwrap_or(0);
                return Ok((status, bytes[end + 4..end + 4 + length].to_vec()));
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

fn get(path: &str, token: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\r\n")
}

fn post(path: &str, token: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// One request on a new connection.
fn call(server: &Server, request: &str) -> std::io::Result<(u16, Vec<u8>)> {
    exchange(&mut TcpStream::connect(address(server))?, request)
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn metric(server: &Server, name: &str) -> u64 {
    let (_, body) = call(server, &get("/metrics", "")).unwrap();
    let text = String::from_utf8_lossy(&body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Asks `/healthz` on a new connection until it answers `expected`, within `BOUND`.
fn until_healthz(server: &Server, expected: u16) -> Value {
    let started = Instant::now();
    loop {
        if let Ok((status, body)) = call(server, &get("/healthz", ""))
            && status == expected
        {
            return json(&body);
        }
        assert!(
            started.elapsed() < BOUND,
            "/healthz did not answer {expected} within {BOUND:?}"
        );
        // The server frees connections on its own schedule (timeouts); ask again shortly.
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn under_descriptor_limit(dir: &TempDir, config: &str) -> Server {
    std::fs::write(dir.path().join("limits.toml"), config).unwrap();
    let mut command = Command::new("prlimit");
    command.arg(format!("--nofile={DESCRIPTORS}:{DESCRIPTORS}"));
    command.args(["--", BIN]);
    Server::start_command(dir.path(), command, &["--config", "limits.toml"])
}

#[test]
fn more_idle_connections_than_descriptors_are_refused_then_cut() {
    let dir = scratch();
    let server = under_descriptor_limit(&dir, "header_timeout_seconds = 6\n");
    // More idle connections than the process has descriptors: the first CAP are served
    // (and wait for a request), the rest are refused.
    let idle: Vec<TcpStream> = (0..DESCRIPTORS + 44)
        .map(|_| TcpStream::connect(address(&server)).unwrap())
        .collect();
    // While every slot is taken the server still answers, cleanly: 503, not a hang.
    let refused = until_healthz(&server, 503);
    assert_eq!(
        refused["error"]["code"], "too_many_connections",
        "{refused}"
    );
    // The idle connections are cut by the header timeout; then requests are served again.
    until_healthz(&server, 200);
    let started = Instant::now();
    while metric(&server, "countersign_connections_timed_out_total") < CAP as u64 {
        assert!(
            started.elapsed() < BOUND,
            "the idle connections were not all cut"
        );
        // They were accepted within moments of each other, and are cut as quickly.
        std::thread::sleep(Duration::from_millis(100));
    }
    let refusals = metric(&server, "countersign_connections_refused_total");
    assert!(refusals >= (idle.len() - CAP) as u64, "{refusals} refused");
    drop(idle);
}

/// Descriptors the process has open now.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Sets the process's soft open-file limit, leaving the hard one.
fn set_soft_limit(pid: u32, soft: usize) {
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--nofile={soft}:{DESCRIPTORS}"),
        ])
        .status()
        .unwrap();
    assert!(status.success());
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn out_of_descriptors_the_server_answers_503_and_recovers() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    let server = under_descriptor_limit(&dir, "");
    let pid = server.child.id();
    let mut kept = TcpStream::connect(address(&server)).unwrap();
    let (status, _) = exchange(&mut kept, &get("/v1/audit?limit=1", &admin)).unwrap();
    assert_eq!(status, 200);

    // Not one descriptor more for the server.
    set_soft_limit(pid, open_descriptors(pid));
    // Verifying opens a database connection, which now cannot be had: the server is short
    // of a resource, not broken (503, not 500), and says so in the API's format.
    let (status, body) = exchange(&mut kept, &get("/v1/audit/verify", &admin)).unwrap();
    let body = json(&body);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{body}"
    );
    // It keeps serving the connections it has.
    let (status, _) = exchange(&mut kept, &get("/healthz", "")).unwrap();
    assert_eq!(status, 200);
    // A new connection cannot be accepted now; the server retries without spinning.
    let mut waiting = TcpStream::connect(address(&server)).unwrap();
    waiting.write_all(get("/healthz", "").as_bytes()).unwrap();
    let before = cpu_ticks(pid);
    // Long enough to see a busy loop (it would burn the whole second).
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu_ticks(pid) - before;
    assert!(
        spent < 50,
        "{spent} ticks of CPU in one second while out of descriptors"
    );

    // Descriptors back: the waiting connection is taken and answered, verification works.
    set_soft_limit(pid, DESCRIPTORS);
    let (status, _) = exchange(&mut waiting, "").unwrap();
    assert_eq!(status, 200);
    let (status, body) = exchange(&mut kept, &get("/v1/audit/verify", &admin)).unwrap();
    assert_eq!((status, json(&body)["ok"].as_bool()), (200, Some(true)));
}

/// A process's memory figures from `/proc/PID/status`, in KiB: resident now, and the peak.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

const WAITERS: usize = 1000;
const REASONING: usize = 1024 * 1024;

#[test]
fn a_thousand_waiters_share_one_copy_of_a_large_action() {
    // A thousand client sockets and the server's thousand: more than a default soft limit.
    rlimit::increase_nofile_limit(4 * WAITERS as u64).unwrap();
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    // COUNTERSIGN_LEGACY_BIN measures another build the same way (one that knows none of the
    // limits: BENCHMARKS.md, "Waiters share one copy"); it only prints, asserting nothing.
    let legacy = std::env::var("COUNTERSIGN_LEGACY_BIN").ok();
    let config = if legacy.is_some() {
        "max_body_bytes = 2097152\n".to_owned()
    } else {
        format!(
            "max_body_bytes = 2097152\nmax_reasoning_bytes = {REASONING}\nmax_waits_per_token = {WAITERS}\n"
        )
    };
    std::fs::write(dir.path().join("limits.toml"), config).unwrap();
    let server = Server::start_command(
        dir.path(),
        Command::new(legacy.as_deref().unwrap_or(BIN)),
        &["--config", "limits.toml"],
    );
    let pid = server.child.id();
    let agent = server.token(
        &admin,
        &["--role", "agent", "--name", "bot", "--owner", "olivia"],
    );
    let reviewer = server.token(&admin, &["--role", "reviewer", "--name", "rita"]);

    let body = serde_json::json!({"action": "email.send", "reasoning": "r".repeat(REASONING)});
    let (status, answer) = call(&server, &post("/v1/actions", &agent, &body.to_string())).unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    let id = json(&answer)["id"].as_str().unwrap().to_owned();
    let (before, _) = memory_kib(pid);

    let wait = format!(
        "GET /v1/actions/{id}?wait=120 HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {agent}\r\n\
         connection: close\r\n\r\n"
    );
    let mut waiters: Vec<TcpStream> = (0..WAITERS)
        .map(|_| {
            let mut stream = TcpStream::connect(address(&server)).unwrap();
            stream.write_all(wait.as_bytes()).unwrap();
            stream
        })
        .collect();
    if legacy.is_none() {
        let started = Instant::now();
        while metric(&server, "countersign_open_waits") < WAITERS as u64 {
            assert!(started.elapsed() < BOUND, "the waits did not all start");
            // The server takes the thousand requests at its own pace; look again shortly.
            std::thread::sleep(Duration::from_millis(100));
        }
    } else {
        // An older build has no gauge of open waits: give it the time they take here.
        std::thread::sleep(Duration::from_secs(10));
    }
    let (waiting, _) = memory_kib(pid);

    let decide = post(
        &format!("/v1/actions/{id}/decisions"),
        &reviewer,
        r#"{"verdict":"approve"}"#,
    );
    // An older build answers the decision only after it has rendered every waiter's own
    // copy (minutes in a debug build): its answer is not waited for, the waiters' are.
    let patience = if legacy.is_some() {
        let mut decision = TcpStream::connect(address(&server)).unwrap();
        let decide = decide.replacen("\r\n", "\r\nconnection: close\r\n", 1);
        decision.write_all(decide.as_bytes()).unwrap();
        waiters.push(decision);
        Duration::from_secs(600)
    } else {
        let (status, _) = call(&server, &decide).unwrap();
        assert_eq!(status, 200);
        BOUND
    };
    let mut chunk = vec![0u8; 256 * 1024];
    let mut unanswered = 0;
    for stream in &mut waiters {
        stream.set_read_timeout(Some(patience)).unwrap();
        let mut head = Vec::new();
        let mut total = 0;
        loop {
            let n = match stream.read(&mut chunk) {
                Ok(n) => n,
                Err(error) if legacy.is_some() => {
                    eprintln!("no answer: {error}");
                    unanswered += 1;
                    break;
                }
                Err(error) => panic!("no answer: {error}"),
            };
            if n == 0 {
                break;
            }
            if head.len() < 4096 {
                head.extend_from_slice(&chunk[..n.min(4096)]);
            }
            total += n;
        }
        if legacy.is_some() {
            continue;
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains(r#""status":"approved""#), "{head}");
        assert!(total > REASONING, "the whole action: {total} bytes");
    }
    let (after_answers, peak) = memory_kib(pid);
    drop(waiters);
    let mib = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "{WAITERS} waiters on an action with {REASONING} bytes of reasoning: server RSS {:.1} MiB \
         before, {:.1} MiB while they wait, peak {:.1} MiB, {:.1} MiB after they were answered \
         ({unanswered} unanswered)",
        mib(before),
        mib(waiting),
        mib(peak),
        mib(after_answers)
    );
    if legacy.is_none() {
        // One shared copy of the action (record and JSON, ~2 MiB, and a few transient ones
        // while the first waiters read the store) plus each connection's own state: hyper's
        // buffers (8 KiB to read a header, the response queued by reference, not copied),
        // the task and its watch. 64 KiB a connection is several times what that comes to;
        // one copy per waiter, as before, would be 1,000 MiB.
        let bound_kib = (WAITERS * 64 + 16 * 1024) as u64;
        assert!(
            peak.saturating_sub(before) < bound_kib,
            "peak {} KiB over {} KiB before: more than {bound_kib} KiB",
            peak,
            before
        );
    }
}
