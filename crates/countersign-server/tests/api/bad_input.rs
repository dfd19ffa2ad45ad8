//! Bad input at every entry point: each row is one request and the precise 4xx status and
//! error code it gets; nothing in the table is stored.

use countersign_server::Limits;

use crate::fixture::{Options, code, large_refund, spawn_with};

/// One request of the table: exactly these bytes, with this content type.
struct Request<'a> {
    method: &'a str,
    path: String,
    token: &'a str,
    content_type: Option<&'a str>,
    body: String,
}

fn get<'a>(path: &str, token: &'a str) -> Request<'a> {
    Request {
        method: "GET",
        path: path.to_owned(),
        token,
        content_type: None,
        body: String::new(),
    }
}

/// A JSON body, sent as `application/json`.
fn post<'a>(path: &str, token: &'a str, body: impl Into<String>) -> Request<'a> {
    sent_as(path, token, Some("application/json"), body)
}

fn sent_as<'a>(
    path: &str,
    token: &'a str,
    content_type: Option<&'a str>,
    body: impl Into<String>,
) -> Request<'a> {
    Request {
        method: "POST",
        path: path.to_owned(),
        token,
        content_type,
        body: body.into(),
    }
}

#[tokio::test]
async fn bad_input_gets_a_precise_4xx_at_every_endpoint() {
    let server = spawn_with(Options {
        limits: Limits {
            max_body_bytes: 4096,
            max_args_bytes: 256,
            ..Limits::default()
        },
        ..Options::default()
    })
    .await;
    let id = server.submit_id(large_refund()).await;
    let show = format!("/v1/actions/{id}");
    let decisions = format!("/v1/actions/{id}/decisions");
    let outcome = format!("/v1/actions/{id}/outcome");
    let review = format!("/v1/actions/{id}/review");
    let (agent, lead, admin) = (&server.agent, &server.lead, &server.admin);
    let big = format!(
        r#"{{"action":"a.b","args":{{"x":"{}"}}}}"#,
        "y".repeat(5000)
    );
    let wide = format!(r#"{{"action":"a.b","args":{{"x":"{}"}}}}"#, "y".repeat(300));
    let long_name = format!(r#"{{"action":"{}"}}"#, "a".repeat(201));
    #[rustfmt::skip]
    let cases: Vec<(Request, u16, &str)> = vec![
        (post("/v1/actions", agent, "{"), 400, "malformed_json"),
        (post("/v1/actions", agent, "[1,2]"), 422, "invalid_body"),
        // serde reads a struct from an array by position: a body or `hints` must be an object.
        (post("/v1/actions", agent, r#"["a.b"]"#), 422, "invalid_body"),
        (post("/v1/actions", agent, r#"{"action":"a.b","hints":[true]}"#), 422, "invalid_body"),
        (post("/v1/actions", agent, r#"{"args":{}}"#), 422, "invalid_body"),
        (post("/v1/actions", agent, r#"{"action":5}"#), 422, "invalid_body"),
        (post("/v1/actions", agent, r#"{"action":"a.b","args":[1]}"#), 422, "invalid_body"),
        (post("/v1/actions", agent, r#"{"action":"a.b","bogus":1}"#), 422, "invalid_body"),
        (post("/v1/actions", agent, r#"{"action":"a.b","hints":{"sneaky":true}}"#), 422, "invalid_body"),
        (post("/v1/actions", agent, r#"{"action":"refund create"}"#), 422, "invalid_action_name"),
        (post("/v1/actions", agent, r#"{"action":""}"#), 422, "invalid_action_name"),
        (post("/v1/actions", agent, long_name), 422, "invalid_action_name"),
        (post("/v1/actions", agent, r#"{"action":"a.b","confidence":1.5}"#), 422, "invalid_confidence"),
        (post("/v1/actions", agent, r#"{"action":"a.b","idempotency_key":""}"#), 422, "invalid_idempotency_key"),
        (post("/v1/actions", agent, wide), 422, "args_too_large"),
        (post("/v1/actions", agent, big), 413, "body_too_large"),
        (sent_as("/v1/actions", agent, Some("text/plain"), r#"{"action":"a.b"}"#), 415, "unsupported_media_type"),
        (sent_as("/v1/actions", agent, None, r#"{"action":"a.b"}"#), 415, "unsupported_media_type"),
        (get("/v1/actions/nope", agent), 404, "not_found"),
        (get(&format!("{show}?wait=soon"), agent), 400, "invalid_query"),
        (get(&format!("{show}?wait=-1"), agent), 400, "invalid_query"),
        // The document's bound: a longer wait is refused, not silently shortened.
        (get(&format!("{show}?wait=3601"), agent), 400, "invalid_query"),
        (get("/v1/actions?status=lost", lead), 400, "invalid_query"),
        (get("/v1/actions?action=a%20b", lead), 400, "invalid_query"),
        (get("/v1/actions?action=", lead), 400, "invalid_query"),
        (get("/v1/actions?limit=many", lead), 400, "invalid_query"),
        (get("/v1/actions?limit=0", lead), 400, "invalid_query"),
        (get("/v1/actions?limit=1001", lead), 400, "invalid_query"),
        (get("/v1/actions?cursor=forged", lead), 400, "invalid_cursor"),
        (get("/v1/actions?cursor=", lead), 400, "invalid_cursor"),
        // A bare id (what earlier versions handed out outside the queue) is no cursor.
        (get("/v1/actions?status=approved&cursor=01m8nnqzbvthtdda6we8qb70z3", lead), 400, "invalid_cursor"),
        (get("/v1/actions?colour=red", lead), 400, "invalid_query"),
        (post(&decisions, lead, r#"{"verdict":"maybe"}"#), 422, "invalid_body"),
        (post(&decisions, lead, "{}"), 422, "invalid_body"),
        (post(&decisions, lead, r#"{"verdict":"approve","extra":1}"#), 422, "invalid_body"),
        (post(&decisions, lead, r#"{"verdict":"modify"}"#), 422, "modify_without_args"),
        (post(&decisions, lead, r#"{"verdict":"approve","args":{}}"#), 422, "args_without_modify"),
        (post(&decisions, lead, "not json"), 400, "malformed_json"),
        (post(&decisions, lead, r#"["approve"]"#), 422, "invalid_body"),
        (post("/v1/actions/nope/decisions", lead, r#"{"verdict":"approve"}"#), 404, "not_found"),
        (post(&outcome, agent, r#"{"status":"great"}"#), 422, "invalid_body"),
        (sent_as("/v1/actions/nope/cancel", agent, None, ""), 404, "not_found"),
        (post(&review, lead, r#"{"verdict":"meh"}"#), 422, "invalid_body"),
        (get("/v1/reviews?status=closed", lead), 400, "invalid_query"),
        (get("/v1/reviews?limit=0", lead), 400, "invalid_query"),
        (get("/v1/reviews?cursor=", lead), 400, "invalid_cursor"),
        (get("/v1/audit?after=x", admin), 400, "invalid_query"),
        (get("/v1/audit?after=9223372036854775808", admin), 400, "invalid_query"),
        (get("/v1/audit?limit=0", admin), 400, "invalid_query"),
        (get("/v1/audit?limit=1001", admin), 400, "invalid_query"),
        (post("/v1/tokens", admin, r#"{"role":"root","name":"x"}"#), 422, "invalid_role"),
        (post("/v1/tokens", admin, r#"{"role":"agent","name":"a b"}"#), 422, "invalid_name"),
        (post("/v1/tokens", admin, r#"{"role":"agent"}"#), 422, "invalid_body"),
        (post("/v1/tokens", admin, r#"{"role":"reviewer","name":"x","groups":[""]}"#), 422, "invalid_group"),
        // An owner that no reviewer's name can equal would never be kept from approving.
        (post("/v1/tokens", admin, r#"{"role":"agent","name":"x","owner":"olivia "}"#), 422, "invalid_owner"),
        (get("/v1/stats?group_by=day", lead), 400, "invalid_query"),
        (get("/v1/stats?since=yesterday", lead), 400, "invalid_query"),
        (get("/v1/stats?since=2026-11-25%2012:00:00Z", lead), 400, "invalid_query"),
        (get("/v1/stats?until=2026-02-30T00:00:00Z", lead), 400, "invalid_query"),
        (get("/v1/stats?since=2026-11-25T12:00:00Z&until=2026-11-25T12:00:00Z", lead), 400, "invalid_window"),
        (get("/v1/stats?since=2026-11-26T00:00:00Z&until=2026-11-25T00:00:00Z", lead), 400, "invalid_window"),
        (get("/v1/stats?colour=red", lead), 400, "invalid_query"),
        (get("/v1/export?format=csv", admin), 400, "invalid_query"),
        (get("/v1/export?verdict=approved", admin), 400, "invalid_query"),
        (get("/v1/export?verdict=rejected,", admin), 400, "invalid_query"),
        (get("/v1/export?action=a%20b", admin), 400, "invalid_query"),
        (get("/v1/export?rule=", admin), 400, "invalid_query"),
        (get("/v1/export?since=2026-11-26T00:00:00Z&until=2026-11-25T00:00:00Z", admin), 400, "invalid_window"),
        (get("/v1/export?format=openai-chat&verdict=rejected,expired", admin), 400, "expired_is_not_a_judgment"),
        (get("/v1/export?format=eval&verdict=expired", admin), 400, "expired_is_not_a_judgment"),
        (post("/v1/policy/classify", agent, "{"), 400, "malformed_json"),
        (post("/v1/policy/classify", agent, "{}"), 422, "invalid_body"),
        (post("/v1/policy/classify", agent, r#"{"actions":[{"action":"a b"}]}"#), 422, "invalid_action_name"),
        (post("/v1/policy/classify", agent, r#"{"actions":[{"action":"a.b","confidence":2}]}"#), 422, "invalid_confidence"),
        (post("/v1/policy/classify", lead, r#"{"actions":[]}"#), 403, "wrong_role"),
        (post("/v1/policy/classify", agent, r#"{"actions":[{"action":"a.b","hints":[true]}]}"#), 422, "invalid_body"),
        (post("/v1/grants", lead, "{"), 400, "malformed_json"),
        (get("/v1/deliveries?limit=1001", admin), 400, "invalid_query"),
        (get("/v1/deliveries?limit=0", admin), 400, "invalid_query"),
        (post("/v1/grants", lead, format!(r#"{{"agent":"support-bot","actions":"{}","duration":"1h"}}"#, "a".repeat(201))), 422, "invalid_actions"),
        (post("/v1/grants", lead, r#"{"agent":"support-bot","actions":"x","duration":"1h","extra":1}"#), 422, "invalid_body"),
        (post("/v1/grants", lead, r#"{"agent":"support-bot","actions":"x","duration":"1h","max_uses":-1}"#), 422, "invalid_body"),
        (post("/v1/users", admin, r#"{"name":"pat","password":"short"}"#), 422, "invalid_password"),
        (post("/v1/users", admin, r#"{"name":"pat"}"#), 422, "invalid_body"),
        (post("/v1/users", admin, format!(r#"{{"name":"pat","password":"{}"}}"#, "p".repeat(257))), 422, "invalid_password"),
        (post("/v1/users", admin, r#"{"name":"pat","password":"tab\tinside password"}"#), 422, "invalid_password"),
        (post("/v1/users", lead, r#"{"name":"pat","password":"long enough password"}"#), 403, "wrong_role"),
        (post("/v1/users/nobody/password", admin, r#"{"password":"long enough password"}"#), 404, "not_found"),
        (get("/v1/nothing-here", agent), 404, "not_found"),
        (Request { method: "DELETE", ..get("/v1/actions", agent) }, 405, "method_not_allowed"),
    ];
    for (request, status, expected) in cases {
        let Request {
            method,
            path,
            token,
            content_type,
            body,
        } = request;
        let (got, value) = server
            .raw(
                method,
                &path,
                token,
                content_type,
                body.clone().into_bytes(),
            )
            .await;
        let shown: String = body.chars().take(60).collect();
        assert_eq!(got.as_u16(), status, "{method} {path} {shown}: {value}");
        assert_eq!(code(&value), expected, "{method} {path} {shown}: {value}");
        assert!(
            value["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{method} {path}: a message"
        );
    }
    // Nothing above was stored: the pending queue holds only the first submission.
    let (_, queue) = server.get("/v1/actions", lead).await;
    assert_eq!(queue["items"].as_array().unwrap().len(), 1);
}
