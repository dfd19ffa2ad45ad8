//! The reviewer web UI through the real server: sign-in, sessions and their expiry, and the
//! attacks a browser-facing surface must refuse (forged forms, cross-site posts, stale and
//! ended sessions, an owner approving, one person confirming twice, a stale session
//! confirming without its password, brute-forced sign-ins), each with its status; every
//! decision is checked through the API as the agent sees it.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use countersign_core::Name;
use countersign_server::ManualClock;
use countersign_server::web::NewPassword;
use countersign_store::{Actor, NewUser};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::fixture::{Options, Server, large_refund, spawn, spawn_with};

const PASSWORD: &str = "correct horse battery";

/// A person's browser: a cookie jar of one cookie, no redirects followed.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookie: Option<String>,
    csrf: String,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Browser {
    fn new(server: &Server) -> Browser {
        Browser {
            base: server.base.as_str().trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
            csrf: String::new(),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(set) = headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()) {
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        let body = response.text().await.unwrap();
        if let Some(csrf) = body
            .split("name=\"csrf-token\" content=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .filter(|t| !t.is_empty())
        {
            self.csrf = csrf.to_owned();
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Answer {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// Posts a form, with the session's CSRF token unless the fields name one.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let mut fields: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone();
        if !fields.iter().any(|(k, _)| *k == "csrf") && path != "/sign-in" {
            fields.push(("csrf", &csrf));
        }
        let request = self.http.post(format!("{}{path}", self.base)).form(&fields);
        self.send(request).await
    }

    async fn sign_in(server: &Server, name: &str) -> Browser {
        let mut browser = Browser::new(server);
        let answer = browser
            .post("/sign-in", &[("name", name), ("password", PASSWORD)])
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        assert_eq!(answer.location(), "/queue");
        let queue = browser.get("/queue").await;
        assert_eq!(queue.status, StatusCode::OK, "{}", queue.body);
        browser
    }

    /// Decides through the page's form, with the version the page shows.
    async fn decide(&mut self, id: &str, fields: &[(&str, &str)]) -> Answer {
        let page = self.get(&format!("/actions/{id}")).await;
        let version = page
            .body
            .split("name=\"version\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("0")
            .to_owned();
        let mut fields = fields.to_vec();
        fields.push(("version", &version));
        self.post(&format!("/actions/{id}/decide"), &fields).await
    }
}

/// Logins for the fixture's people: rita and sam (support leads, admins group), olivia
/// (owns support-bot), ada (an administrator).
async fn people(server: &Server) {
    let hash = NewPassword::parse(PASSWORD).unwrap().hash().unwrap();
    for (name, groups, admin) in [
        ("rita", &["support-leads", "admins"][..], false),
        ("sam", &["support-leads", "admins"][..], false),
        ("olivia", &["support-leads"][..], false),
        ("ada", &["admins"][..], true),
    ] {
        server
            .store
            .create_user(NewUser {
                name: Name::parse(name).unwrap(),
                groups: groups.iter().map(|g| Name::parse(g).unwrap()).collect(),
                admin,
                password_hash: hash.clone(),
                created_by: Actor::named("cli"),
                at: Utc::now(),
            })
            .await
            .unwrap();
    }
}

async fn action(server: &Server, id: &str) -> serde_json::Value {
    let (status, value) = server
        .call("GET", &format!("/v1/actions/{id}"), &server.lead, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    value
}

#[tokio::test]
async fn sign_in_queue_approve_and_sign_out() {
    let server = spawn().await;
    people(&server).await;
    let pending = server.submit(large_refund()).await;
    let id = pending["id"].as_str().unwrap();

    // Pages need a session.
    let mut anonymous = Browser::new(&server);
    let queue = anonymous.get("/queue").await;
    assert_eq!(queue.status, StatusCode::SEE_OTHER);
    assert_eq!(queue.location(), "/sign-in?next=%2Fqueue");

    let mut rita = Browser::sign_in(&server, "Rita").await;
    let queue = rita.get("/queue").await;
    assert!(queue.body.contains(id), "the queue lists the action");
    assert!(
        queue.body.contains("amount=2500"),
        "with a summary of its arguments"
    );
    // Security headers on every page.
    let csp = queue.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(queue.headers["x-frame-options"], "DENY");
    assert_eq!(queue.headers["cache-control"], "no-store");

    let page = rita.get(&format!("/actions/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    for shown in [
        "refund.create",
        "charged twice",
        "large refunds",
        "support-bot",
        "Approve",
    ] {
        assert!(page.body.contains(shown), "the single view shows {shown:?}");
    }
    let approved = rita.decide(id, &[("verdict", "approve")]).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    assert!(
        approved.location().contains("decided="),
        "{}",
        approved.location()
    );
    let seen = action(&server, id).await;
    assert_eq!(seen["status"], "approved");
    assert_eq!(seen["decisions"][0]["reviewer"], "rita");

    // The audit log names the session where tokens put their id.
    let entries = server
        .store
        .audit_window(countersign_store::AuditFilter {
            action_id: Some(id.to_owned()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        entries.entries[0]
            .body
            .contains("\"actor_token_id\":\"web:")
    );

    // Signing out ends the session for good: the old cookie is refused.
    let old_cookie = rita.cookie.clone();
    let out = rita.post("/sign-out", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    rita.cookie = old_cookie;
    let after = rita.get("/queue").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert!(
        after.location().starts_with("/sign-in"),
        "{}",
        after.location()
    );
}

#[tokio::test]
async fn reject_needs_a_reason_and_modify_shows_the_difference_first() {
    let server = spawn().await;
    people(&server).await;
    let mut rita = Browser::sign_in(&server, "rita").await;
    let first = server.submit(large_refund()).await;
    let id = first["id"].as_str().unwrap();

    let refused = rita
        .decide(id, &[("verdict", "reject"), ("reason", "  ")])
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Say why you reject it"));
    let rejected = rita
        .decide(id, &[("verdict", "reject"), ("reason", "not a duplicate")])
        .await;
    assert_eq!(rejected.status, StatusCode::SEE_OTHER, "{}", rejected.body);
    let seen = action(&server, id).await;
    assert_eq!(
        (
            seen["status"].as_str(),
            seen["decisions"][0]["reason"].as_str()
        ),
        (Some("rejected"), Some("not a duplicate"))
    );

    let second = server.submit(large_refund()).await;
    let id = second["id"].as_str().unwrap();
    #[rustfmt::skip]
    let bad_args: &[(&str, StatusCode, &str)] = &[
        ("{\"amount\": ", StatusCode::UNPROCESSABLE_ENTITY, "not valid JSON"),
        ("[1, 2]", StatusCode::UNPROCESSABLE_ENTITY, "must be a JSON object"),
        ("{\"amount\": 1, \"amount\": 2}", StatusCode::UNPROCESSABLE_ENTITY, "name a key twice"),
        ("{\"amount\": 2500}", StatusCode::UNPROCESSABLE_ENTITY, "Nothing changed"),
    ];
    for (args, status, message) in bad_args {
        let answer = rita
            .decide(id, &[("verdict", "modify"), ("args", args)])
            .await;
        assert_eq!(answer.status, *status, "{args}");
        assert!(answer.body.contains(message), "{args}: {message}");
    }
    let preview = rita
        .decide(id, &[("verdict", "modify"), ("args", "{\"amount\": 250}")])
        .await;
    assert_eq!(preview.status, StatusCode::OK);
    assert!(
        preview.body.contains("<code>amount</code>") && preview.body.contains("<code>250</code>")
    );
    assert_eq!(
        action(&server, id).await["status"],
        "pending",
        "a preview decides nothing"
    );
    let modified = rita
        .decide(
            id,
            &[
                ("verdict", "modify"),
                ("args", "{\"amount\": 250}"),
                ("step", "submit"),
            ],
        )
        .await;
    assert_eq!(modified.status, StatusCode::SEE_OTHER, "{}", modified.body);
    let seen = action(&server, id).await;
    assert_eq!(seen["status"], "approved");
    assert_eq!(seen["args"], json!({"amount": 250}));
    assert_eq!(seen["original_args"], json!({"amount": 2500}));
}

#[tokio::test]
async fn forged_and_cross_site_forms_are_refused() {
    let server = spawn().await;
    people(&server).await;
    let mut rita = Browser::sign_in(&server, "rita").await;
    let pending = server.submit(large_refund()).await;
    let id = pending["id"].as_str().unwrap();
    let path = format!("/actions/{id}/decide");

    let forged = rita
        .post(&path, &[("verdict", "approve"), ("csrf", "guessed")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("security token"));
    let missing = rita
        .send(
            rita.http
                .post(format!("{}{path}", rita.base))
                .form(&[("verdict", "approve")]),
        )
        .await;
    assert_eq!(
        missing.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no token at all: a form this page never sends"
    );
    let csrf = rita.csrf.clone();
    let cross_site = rita
        .send(
            rita.http
                .post(format!("{}{path}", rita.base))
                .header("origin", "http://evil.example")
                .form(&[("verdict", "approve"), ("csrf", csrf.as_str())]),
        )
        .await;
    assert_eq!(cross_site.status, StatusCode::FORBIDDEN);
    let fetch_site = rita
        .send(
            rita.http
                .post(format!("{}{path}", rita.base))
                .header("sec-fetch-site", "cross-site")
                .form(&[("verdict", "approve"), ("csrf", csrf.as_str())]),
        )
        .await;
    assert_eq!(fetch_site.status, StatusCode::FORBIDDEN);
    // Another session's token does not fit this session.
    let sam = Browser::sign_in(&server, "sam").await;
    let swapped = rita
        .post(
            &path,
            &[("verdict", "approve"), ("csrf", sam.csrf.as_str())],
        )
        .await;
    assert_eq!(swapped.status, StatusCode::FORBIDDEN);
    assert_eq!(
        action(&server, id).await["status"],
        "pending",
        "nothing forged went through"
    );

    // Bad input is a precise 4xx, never a 5xx.
    #[rustfmt::skip]
    let gets: &[(&str, StatusCode)] = &[
        ("/queue?tier=urgent", StatusCode::BAD_REQUEST),
        ("/queue?agent=not%20a%20name", StatusCode::BAD_REQUEST),
        ("/queue?action=%5Bx", StatusCode::BAD_REQUEST),
        ("/queue?after=garbage", StatusCode::BAD_REQUEST),
        ("/queue?bogus=1", StatusCode::BAD_REQUEST),
        ("/actions/no-such-action", StatusCode::NOT_FOUND),
        ("/audit", StatusCode::FORBIDDEN),
        ("/sign-in?next=%2F%2Fevil.example", StatusCode::SEE_OTHER),
    ];
    for (path, status) in gets {
        assert_eq!(rita.get(path).await.status, *status, "{path}");
    }
    let csrf = rita.csrf.clone();
    #[rustfmt::skip]
    let posts: &[(&[(&str, &str)], StatusCode)] = &[
        (&[("verdict", "maybe"), ("csrf", &csrf)], StatusCode::UNPROCESSABLE_ENTITY),
        (&[("verdict", "approve"), ("verdict", "reject"), ("csrf", &csrf)], StatusCode::UNPROCESSABLE_ENTITY),
        (&[("verdict", "approve"), ("args", "{}"), ("csrf", &csrf)], StatusCode::UNPROCESSABLE_ENTITY),
        (&[("verdict", "approve"), ("version", "x"), ("csrf", &csrf)], StatusCode::UNPROCESSABLE_ENTITY),
        (&[("verdict", "approve"), ("version", "999"), ("csrf", &csrf)], StatusCode::CONFLICT),
    ];
    for (fields, status) in posts {
        assert_eq!(rita.post(&path, fields).await.status, *status, "{fields:?}");
    }
    let json_body = rita
        .send(
            rita.http
                .post(format!("{}{path}", rita.base))
                .json(&json!({"verdict": "approve"})),
        )
        .await;
    assert_eq!(json_body.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(action(&server, id).await["status"], "pending");
}

#[tokio::test]
async fn the_api_rules_hold_in_the_browser() {
    let server = spawn().await;
    people(&server).await;
    // Olivia owns support-bot: she sees no buttons, and a forged approval is refused as the
    // API refuses it.
    let mut olivia = Browser::sign_in(&server, "olivia").await;
    let pending = server.submit(large_refund()).await;
    let id = pending["id"].as_str().unwrap();
    let queue = olivia.get("/queue").await;
    assert!(!queue.body.contains(id), "not in the owner's queue");
    let page = olivia.get(&format!("/actions/{id}")).await;
    assert!(!page.body.contains("approve-form") && page.body.contains("owns the agent"));
    // (A forged form: her page has no form, so no version either.)
    let forged = olivia
        .post(&format!("/actions/{id}/decide"), &[("verdict", "approve")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("owns the agent"));

    // A confirm action: re-typed name; a second approval by the same person is refused; a
    // session signed in too long ago must type its password again.
    let clock_server = {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let server = spawn_with(Options {
            clock: clock.clone(),
            ..Options::default()
        })
        .await;
        people(&server).await;
        (server, clock)
    };
    let (server, clock) = clock_server;
    let closure = server
        .submit(json!({"action": "account.close", "args": {"account": "c_9"}}))
        .await;
    let id = closure["id"].as_str().unwrap();
    let mut rita = Browser::sign_in(&server, "rita").await;
    let wrong_name = rita
        .decide(id, &[("verdict", "approve"), ("confirm", "account.open")])
        .await;
    assert_eq!(wrong_name.status, StatusCode::UNPROCESSABLE_ENTITY);
    let first = rita
        .decide(id, &[("verdict", "approve"), ("confirm", "account.close")])
        .await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let page = rita.get(&format!("/actions/{id}")).await;
    assert!(
        !page.body.contains("approve-form")
            && page.body.contains("You approved this action already")
    );
    let twice = rita
        .post(
            &format!("/actions/{id}/decide"),
            &[("verdict", "approve"), ("confirm", "account.close")],
        )
        .await;
    assert_eq!(twice.status, StatusCode::FORBIDDEN);
    assert!(twice.body.contains("already approved"));
    let mut sam = Browser::sign_in(&server, "sam").await;
    let page = sam.get(&format!("/actions/{id}")).await;
    assert!(
        page.body.contains("<b>rita</b> approved first"),
        "the second approver sees the first"
    );
    clock.advance(TimeDelta::minutes(6));
    let stale = sam
        .decide(id, &[("verdict", "approve"), ("confirm", "account.close")])
        .await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    assert!(stale.body.contains("type your password again"));
    let wrong = sam
        .decide(
            id,
            &[
                ("verdict", "approve"),
                ("confirm", "account.close"),
                ("password", "not my password"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let confirmed = sam
        .decide(
            id,
            &[
                ("verdict", "approve"),
                ("confirm", "account.close"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        confirmed.status,
        StatusCode::SEE_OTHER,
        "{}",
        confirmed.body
    );
    assert_eq!(action(&server, id).await["status"], "approved");

    // Sessions expire when idle and at their maximum age.
    clock.advance(TimeDelta::minutes(31));
    let idle = sam.get("/queue").await;
    assert_eq!(idle.status, StatusCode::SEE_OTHER);
    assert!(idle.location().contains("idle"), "{}", idle.location());
    let mut ada = Browser::sign_in(&server, "ada").await;
    // Used every 29 minutes, never idle: still over after 12 hours.
    for _ in 0..24 {
        clock.advance(TimeDelta::minutes(29));
        assert_eq!(ada.get("/queue").await.status, StatusCode::OK);
    }
    clock.advance(TimeDelta::minutes(29));
    let aged = ada.get("/queue").await;
    assert_eq!(aged.status, StatusCode::SEE_OTHER);
    assert!(aged.location().contains("maximum"), "{}", aged.location());
}

#[tokio::test]
async fn disabling_a_person_ends_their_session_and_tokens() {
    let server = spawn().await;
    people(&server).await;
    let mut rita = Browser::sign_in(&server, "rita").await;
    server
        .store
        .disable_user("rita".into(), Actor::named("cli"), Utc::now())
        .await
        .unwrap();
    let after = rita.get("/queue").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    let (status, _) = server.call("GET", "/v1/actions", &server.lead, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "rita's reviewer token was revoked with her"
    );
    let again = Browser::new(&server)
        .post("/sign-in", &[("name", "rita"), ("password", PASSWORD)])
        .await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_in_is_throttled_per_account_and_per_address() {
    let server = spawn().await;
    people(&server).await;
    let mut browser = Browser::new(&server);
    #[rustfmt::skip]
    let attempts: &[(&str, &str, StatusCode)] = &[
        ("rita", "wrong password 1", StatusCode::UNAUTHORIZED),
        ("nobody", "wrong password", StatusCode::UNAUTHORIZED),
        ("not a name", "x", StatusCode::UNPROCESSABLE_ENTITY),
        ("rita", "wrong password 2", StatusCode::UNAUTHORIZED),
        ("rita", "wrong password 3", StatusCode::UNAUTHORIZED),
        ("rita", "wrong password 4", StatusCode::UNAUTHORIZED),
        ("rita", "wrong password 5", StatusCode::UNAUTHORIZED),
        // Locked now, even with the right password.
        ("rita", PASSWORD, StatusCode::TOO_MANY_REQUESTS),
        ("sam", PASSWORD, StatusCode::SEE_OTHER),
    ];
    for (name, password, status) in attempts {
        let answer = browser
            .post("/sign-in", &[("name", name), ("password", password)])
            .await;
        assert_eq!(answer.status, *status, "{name} {password}");
        if *status == StatusCode::TOO_MANY_REQUESTS {
            assert!(answer.headers.contains_key("retry-after"));
            assert!(
                answer
                    .body
                    .contains("Too many failed sign-ins for this name")
            );
        }
        if *status == StatusCode::UNAUTHORIZED {
            assert!(answer.body.contains("The name or the password is wrong."));
        }
    }
    // Many names from one address lock the address.
    for n in 0..20 {
        let name = format!("guess{n}");
        browser
            .post(
                "/sign-in",
                &[("name", &name), ("password", "wrong password")],
            )
            .await;
    }
    let locked = Browser::new(&server)
        .post("/sign-in", &[("name", "ada"), ("password", PASSWORD)])
        .await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.body.contains("from this address"));
}

#[tokio::test]
async fn the_ui_stays_out_of_the_api_document() {
    let server = spawn().await;
    let (status, document) = server.call("GET", "/v1/openapi.json", "", None).await;
    assert_eq!(status, StatusCode::OK);
    for path in document["paths"].as_object().unwrap().keys() {
        assert!(
            path.starts_with("/v1/") || ["/healthz", "/metrics"].contains(&path.as_str()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn approve_and_allow_similar_then_revoke_from_the_grants_page() {
    let server = spawn().await;
    people(&server).await;
    let refund = json!({"action": "refund.create", "args": {"amount": 700}, "confidence": 0.95});
    let first = server.submit(refund.clone()).await;
    let id = first["id"].as_str().unwrap();

    let mut rita = Browser::sign_in(&server, "rita").await;
    let page = rita.get(&format!("/actions/{id}")).await;
    assert!(page.body.contains("Approve and allow similar for 1 h"));
    // Only with an approval, and only for an hour.
    for (verdict, grant) in [("approve", "7d"), ("reject", "1h")] {
        let refused = rita
            .decide(
                id,
                &[("verdict", verdict), ("grant", grant), ("reason", "no")],
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{grant}");
    }
    assert_eq!(action(&server, id).await["status"], "pending");

    let approved = rita
        .decide(id, &[("verdict", "approve"), ("grant", "1h")])
        .await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER, "{}", approved.body);
    assert!(
        approved.location().contains("grant="),
        "{}",
        approved.location()
    );
    let after = rita.get(approved.location()).await;
    assert!(
        after.body.contains("without asking for an hour"),
        "{}",
        after.body
    );
    assert_eq!(action(&server, id).await["status"], "approved");

    let second = server.submit(refund.clone()).await;
    assert_eq!(second["status"], "allowed");
    let grant_id = second["grant"].as_str().unwrap().to_owned();
    let shown = rita
        .get(&format!("/actions/{}", second["id"].as_str().unwrap()))
        .await;
    assert!(shown.body.contains("Allowed without asking by a grant"));
    // Another action name, another agent: still asked.
    let other = server
        .submit(json!({"action": "refund.void", "args": {"amount": 700}}))
        .await;
    assert_eq!(other["status"], "pending");

    let grants = rita.get("/grants").await;
    assert_eq!(grants.status, StatusCode::OK);
    assert!(grants.body.contains(&grant_id) && grants.body.contains("Revoke"));
    assert!(grants.body.contains("1 (no limit)"), "{}", grants.body);
    // A forged revoke (no CSRF token of this session) changes nothing.
    let forged = rita
        .post(&format!("/grants/{grant_id}/revoke"), &[("csrf", "forged")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(server.submit(refund.clone()).await["status"], "allowed");
    let revoked = rita.post(&format!("/grants/{grant_id}/revoke"), &[]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    let grants = rita.get(revoked.location()).await;
    assert!(grants.body.contains("You revoked grant"), "{}", grants.body);
    assert!(grants.body.contains("revoked by rita"));
    assert_eq!(server.submit(refund).await["status"], "pending");
}
