//! Hardening: no client can starve or bloat the server (connection caps and timeouts,
//! bounded memory, unambiguous bodies). The process-level stories (descriptor exhaustion,
//! the memory of a thousand waiters) are in the CLI tests' `limits` module.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fixture::{Options, Server, SseReader, code, large_refund, ok, spawn_with};
use countersign_server::Limits;

/// Generous: every timeout configured below is a second or less.
const BOUND: Duration = Duration::from_secs(15);

fn limits(change: impl FnOnce(&mut Limits)) -> Options {
    let mut limits = Limits::default();
    change(&mut limits);
    Options {
        limits,
        ..Options::default()
    }
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(server.address).await.unwrap()
}

/// Reads until the server closes the connection; `false` if it is still open after `BOUND`.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut sink = [0u8; 4096];
    tokio::time::timeout(BOUND, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Reads one response with a `content-length` body: its status and body.
async fn read_response(stream: &mut TcpStream) -> (u16, Value) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = tokio::time::timeout(BOUND, async {
        loop {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if bytes.len() >= end + 4 + length {
                    let status = text[9..12].parse().unwrap();
                    let body = serde_json::from_slice(&bytes[end + 4..end + 4 + length])
                        .unwrap_or(Value::Null);
                    return (status, body);
                }
            }
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before a whole response: {text:?}");
            bytes.extend_from_slice(&chunk[..n]);
        }
    });
    read.await.expect("a response within the bound")
}

// ---- item 9: timeouts, connection cap, waits per token ---------------------------------------

#[tokio::test]
async fn slow_headers_idle_connections_and_slow_bodies_are_cut() {
    let server = spawn_with(limits(|l| {
        l.header_timeout = Duration::from_millis(500);
        l.idle_timeout = Duration::from_secs(1);
        l.body_timeout = Duration::from_millis(500);
    }))
    .await;

    // Slowloris: a header line every 100 ms, never the blank line that ends the header.
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let trickle = tokio::time::timeout(BOUND, async {
        let mut sink = [0u8; 64];
        loop {
            tokio::select! {
                read = slow.read(&mut sink) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                },
                // The attack is the trickle itself: one more byte-sized line at a time.
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    if slow.write_all(b"x-slow: 1\r\n").await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(
        trickle.is_ok(),
        "a trickled header is cut by the header timeout"
    );

    // A connection that sends nothing is a slow header too.
    let mut silent = connect(&server).await;
    assert!(closed_by_server(&mut silent).await);

    // A keep-alive connection resting after its request is closed by the idle timeout.
    let mut resting = connect(&server).await;
    resting
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut resting).await.0, 200);
    assert!(closed_by_server(&mut resting).await);

    // A body that stops arriving is answered 408.
    let mut slow_body = connect(&server).await;
    let head = format!(
        "POST /v1/actions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"action\"",
        server.agent
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();
    let (status, body) = read_response(&mut slow_body).await;
    assert_eq!((status, code(&body)), (408, "body_timeout"), "{body}");

    // A request in flight is never cut: a long-poll outlasts the idle and header timeouts.
    let id = server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, action) = server.wait(&id, &server.agent, 2).await;
    assert_eq!(
        (status, action["status"].as_str()),
        (StatusCode::OK, Some("pending"))
    );

    let (_, metrics) = server.call("GET", "/metrics", "", None).await;
    let timed_out = metric(
        metrics.as_str().unwrap(),
        "countersign_connections_timed_out_total",
    );
    assert!(timed_out >= 3, "{timed_out}");
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_with_503_and_the_rest_served() {
    let server = spawn_with(limits(|l| {
        l.max_connections = 3;
        l.header_timeout = Duration::from_secs(60);
    }))
    .await;
    // Three idle connections take every slot (and the server cannot tell them from slow
    // clients until the header timeout).
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(connect(&server).await);
    }
    // The fourth is answered, in the API's error format, and closed.
    let mut refused = connect(&server).await;
    refused
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, body) = read_response(&mut refused).await;
    assert_eq!(
        (status, code(&body)),
        (503, "too_many_connections"),
        "{body}"
    );
    assert!(closed_by_server(&mut refused).await);
    let (status, body) = server.call("GET", "/healthz", "", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // A slot given back is a slot served: once an idle client leaves, requests go through.
    drop(idle.pop());
    let mut answered = None;
    for _ in 0..100 {
        // The server sees the close when it next polls that socket: ask again shortly.
        let (status, _) = server.call("GET", "/healthz", "", None).await;
        if status == StatusCode::OK {
            answered = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered, Some(StatusCode::OK));
}

async fn open_waits(server: &Server) -> u64 {
    let (_, metrics) = server.call("GET", "/metrics", "", None).await;
    metric(metrics.as_str().unwrap(), "countersign_open_waits")
}

async fn until_open_waits(server: &Server, expected: u64) {
    for _ in 0..300 {
        if open_waits(server).await == expected {
            return;
        }
        // The waits run in other tasks; look again shortly, up to 15 s.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("open waits never reached {expected}");
}

#[tokio::test]
async fn each_token_holds_at_most_max_waits_per_token_long_polls_and_streams() {
    let server = spawn_with(limits(|l| l.max_waits_per_token = 2)).await;
    let id = server.submit_id(large_refund()).await;
    let show = format!("/v1/actions/{id}?wait=60");
    let long_poll = tokio::spawn({
        let (client, url, token) = (
            server.client.clone(),
            server.url(&["v1", "actions", &id], &[("wait", "60")]),
            server.agent.clone(),
        );
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    });
    let mut stream = server.events(&id, &server.agent).await;
    let mut sse = SseReader::default();
    assert_eq!(sse.next(&mut stream).await.unwrap()["status"], "pending");
    until_open_waits(&server, 2).await;

    // A third wait by the same token is refused at once; without `wait` it is a plain read.
    for path in [show.clone(), format!("/v1/actions/{id}/events")] {
        let (status, body) = server.call("GET", &path, &server.agent, None).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_waits")
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains('2'),
            "{body}"
        );
    }
    ok(server.show(&id, &server.agent).await);
    // Another token has its own count.
    ok(server.wait(&id, &server.lead, 1).await);

    // Closing the stream gives its place back.
    drop(stream);
    until_open_waits(&server, 1).await;
    ok(server.wait(&id, &server.agent, 1).await);
    let (status, _) = server
        .decide(&id, &server.lead, json!({"verdict": "approve"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let answered: Value = long_poll.await.unwrap().json().await.unwrap();
    assert_eq!(answered["status"], "approved");
    until_open_waits(&server, 0).await;
}

#[tokio::test]
async fn openapi_documents_the_new_answers() {
    let server = spawn_with(Options::default()).await;
    let (_, doc) = server.call("GET", "/v1/openapi.json", "", None).await;
    assert!(doc["paths"]["/v1/actions/{id}"]["get"]["responses"]["429"].is_object());
    assert!(doc["paths"]["/v1/actions/{id}/events"]["get"]["responses"]["429"].is_object());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = &operation["responses"];
            assert!(responses["503"].is_object(), "{method} {path}: 503");
            if operation.get("requestBody").is_some() {
                assert!(responses["408"].is_object(), "{method} {path}: 408");
                assert!(responses["400"].is_object(), "{method} {path}: 400");
            }
        }
    }
}

// ---- item 10: memory bounded by configuration -------------------------------------------------

#[tokio::test]
async fn reasoning_and_context_are_capped() {
    let server = spawn_with(limits(|l| {
        l.max_reasoning_bytes = 100;
        l.max_context_bytes = 100;
    }))
    .await;
    // `{"k":"` + 92 bytes + `"}` is exactly 100 bytes of JSON.
    let context_at = |n: usize| json!({"k": "c".repeat(n)});
    #[rustfmt::skip]
    let cases = [
        (json!({"action": "a.b", "reasoning": "r".repeat(100)}), 201, ""),
        (json!({"action": "a.b", "reasoning": "r".repeat(101)}), 422, "reasoning_too_large"),
        // Bytes, not characters: 34 three-byte characters are 102 bytes.
        (json!({"action": "a.b", "reasoning": "€".repeat(34)}), 422, "reasoning_too_large"),
        (json!({"action": "a.b", "context": context_at(92)}), 201, ""),
        (json!({"action": "a.b", "context": context_at(93)}), 422, "context_too_large"),
        // `hints` are four booleans; anything else is refused whatever its size.
        (json!({"action": "a.b", "hints": {"k".repeat(10_000): true}}), 422, "invalid_body"),
    ];
    for (body, status, expected) in cases {
        let (got, value) = server
            .call("POST", "/v1/actions", &server.agent, Some(body.clone()))
            .await;
        let shown: String = body.to_string().chars().take(80).collect();
        assert_eq!(got.as_u16(), status, "{shown}: {value}");
        if !expected.is_empty() {
            assert_eq!(code(&value), expected, "{shown}");
        }
        if expected.ends_with("_too_large") {
            let message = value["error"]["message"].as_str().unwrap();
            assert!(message.contains("at most 100 bytes"), "{message}");
        }
    }
}

/// Follows `next_cursor` (or `next_after`) from `first` to the end: every page's item count.
async fn walk(
    server: &Server,
    token: &str,
    first: &str,
    cursor_field: &str,
) -> (Vec<usize>, Vec<Value>) {
    let mut sizes = Vec::new();
    let mut items = Vec::new();
    let mut path = first.to_owned();
    loop {
        let (status, page) = server.call("GET", &path, token, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page_items = page["items"].as_array().unwrap();
        sizes.push(page_items.len());
        items.extend(page_items.iter().cloned());
        match &page[cursor_field] {
            Value::Null => return (sizes, items),
            next => {
                let param = if cursor_field == "next_after" {
                    "after"
                } else {
                    "cursor"
                };
                let next = next.to_string().trim_matches('"').to_owned();
                path = format!("{first}&{param}={next}");
            }
        }
        assert!(sizes.len() < 100, "pages never end");
    }
}

#[tokio::test]
async fn pages_end_early_once_they_hold_max_page_bytes() {
    let server = spawn_with(limits(|l| l.max_page_bytes = 8 * 1024)).await;
    let padding = "p".repeat(3000);
    let mut submitted = Vec::new();
    for n in 0..6 {
        // Small refunds: `logged`, allowed at once and all sampled for review.
        let logged = server
            .submit(json!({"action": "refund.create", "args": {"amount": n, "pad": padding}}))
            .await;
        // Pending, for the queue.
        let pending = server
            .submit(json!({"action": "email.send", "args": {"n": n, "pad": padding}}))
            .await;
        submitted.push((logged["id"].clone(), pending["id"].clone()));
    }
    let lead = server.lead.clone();
    // Three actions of ~3 KiB pass 8 KiB: no page holds more than three.
    let (sizes, queue) = walk(&server, &lead, "/v1/actions?limit=1000", "next_cursor").await;
    assert!(sizes.iter().all(|n| (1..=3).contains(n)), "{sizes:?}");
    let pending: Vec<&Value> = submitted.iter().map(|(_, p)| p).collect();
    assert_eq!(queue.iter().map(|a| &a["id"]).collect::<Vec<_>>(), pending);

    let (sizes, allowed) = walk(
        &server,
        &lead,
        "/v1/actions?status=allowed&limit=1000",
        "next_cursor",
    )
    .await;
    assert!(sizes.iter().all(|n| (1..=3).contains(n)), "{sizes:?}");
    assert_eq!(allowed.len(), 6);

    let (sizes, reviews) = walk(&server, &lead, "/v1/reviews?limit=1000", "next_cursor").await;
    assert!(sizes.iter().all(|n| (1..=3).contains(n)), "{sizes:?}");
    assert_eq!(reviews.len(), 6);

    // The audit log's submission entries carry the args: pages end early there too, and
    // following `next_after` reads every entry once, in order.
    let admin = server.admin.clone();
    let (sizes, entries) = walk(&server, &admin, "/v1/audit?limit=1000", "next_after").await;
    assert!(sizes.len() > 1, "{sizes:?}");
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    let (_, verify) = server.call("GET", "/v1/audit/verify", &admin, None).await;
    assert_eq!(Some(seqs.len() as u64), verify["entries"].as_u64());
}

// ---- item 11: unambiguous bodies --------------------------------------------------------------

#[tokio::test]
async fn duplicate_keys_are_refused_at_every_json_endpoint() {
    let server = spawn_with(Options::default()).await;
    let id = server.submit(large_refund()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let json = Some("application/json");
    let decisions = format!("/v1/actions/{id}/decisions");
    let outcome = format!("/v1/actions/{id}/outcome");
    let review = format!("/v1/actions/{id}/review");
    let (agent, lead, admin) = (&server.agent, &server.lead, &server.admin);
    #[rustfmt::skip]
    let cases: [(&str, &str, &str, &str); 10] = [
        // Read by the last occurrence, this was a small refund: allowed without a person.
        ("/v1/actions", agent, r#"{"action":"refund.create","args":{"amount":99999,"amount":1}}"#, "\"amount\" appears twice in the object at args"),
        ("/v1/actions", agent, r#"{"action":"refund.create","action":"order.get"}"#, "\"action\" appears twice in the top-level object"),
        ("/v1/actions", agent, r#"{"action":"a.b","context":{"c":[{"id":1},{"id":1,"id":2}]}}"#, "in the object at context.c[1]"),
        // Escapes are decoded before keys compare.
        ("/v1/actions", agent, r#"{"action":"a.b","hints":{"destructive":true,"destructiv\u0065":false}}"#, "\"destructive\" appears twice in the object at hints"),
        // Duplicates are refused before the shape is judged.
        ("/v1/actions", agent, r#"{"action":"a.b","bogus":1,"bogus":2}"#, "\"bogus\""),
        (&decisions, lead, r#"{"verdict":"reject","verdict":"approve"}"#, "\"verdict\""),
        (&decisions, lead, r#"{"verdict":"modify","args":{"amount":1,"amount":2}}"#, "at args"),
        (&outcome, agent, r#"{"status":"failed","detail":{"x":1,"x":2}}"#, "at detail"),
        (&review, lead, r#"{"verdict":"ok","note":"a","note":"b"}"#, "\"note\""),
        ("/v1/tokens", admin, r#"{"role":"admin","role":"agent","name":"x"}"#, "\"role\""),
    ];
    for (path, token, body, expected) in cases {
        let (status, value) = server
            .raw("POST", path, token, json, body.as_bytes().to_vec())
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {value}");
        assert_eq!(code(&value), "duplicate_key", "{path} {body}");
        let message = value["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{path} {body}: {message}");
    }
    // Nothing above happened: one pending action, no decision, no new token.
    let (_, action) = server
        .call("GET", &format!("/v1/actions/{id}"), lead, None)
        .await;
    assert_eq!(action["status"], "pending");
    assert_eq!(action["decisions"], json!([]));
    let (_, allowed) = server
        .call("GET", "/v1/actions?status=allowed", lead, None)
        .await;
    assert_eq!(allowed["items"], json!([]));
    // The same key in sibling objects is not a duplicate.
    let (status, _) = server
        .call(
            "POST",
            "/v1/actions",
            agent,
            Some(json!({"action": "a.b", "args": {"id": 1}, "context": {"id": 2}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}
