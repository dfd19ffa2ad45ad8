//! `countersign grant create|list|revoke` against a real server: a reviewer gives a bounded
//! grant, the agent's submissions run without asking until it is revoked, and the owner and
//! bad flags are refused with a reason.

use crate::{Server, bootstrap_admin, json, scratch, stderr, stdout};

#[test]
fn a_reviewer_grants_lists_and_revokes() {
    let dir = scratch();
    let admin = bootstrap_admin(&dir);
    let server = Server::start(dir.path());
    let agent = server.token(
        &admin,
        &[
            "--role",
            "agent",
            "--name",
            "support-bot",
            "--owner",
            "olivia",
        ],
    );
    let rita = server.token(&admin, &["--role", "reviewer", "--name", "rita"]);
    let olivia = server.token(&admin, &["--role", "reviewer", "--name", "olivia"]);
    let submit = || {
        let output = server.run(&agent, &["submit", "--action", "email.send", "--json"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        json(&output)
    };
    assert_eq!(submit()["status"], "pending", "no grant yet");

    let grant = [
        "grant",
        "create",
        "--agent",
        "support-bot",
        "--actions",
        "email.*",
        "--for",
        "1h",
        "--uses",
        "2",
        "--reason",
        "newsletter run",
    ];
    let refused = server.run(&olivia, &grant);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("owner"), "{}", stderr(&refused));
    let refused = server.run(&agent, &grant);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("role"), "{}", stderr(&refused));
    let mut too_long = grant.to_vec();
    too_long[7] = "45d";
    let refused = server.run(&rita, &too_long);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("30d"), "{}", stderr(&refused));
    let mut not_a_number = grant.to_vec();
    not_a_number[9] = "two";
    let refused = server.run(&rita, &not_a_number);
    assert_eq!(refused.status.code(), Some(1), "a usage error exits 1");

    let given = server.run(&rita, &grant);
    assert_eq!(given.status.code(), Some(0), "{}", stderr(&given));
    let text = stdout(&given);
    assert!(
        text.contains("support-bot") && text.contains("at most 2 times"),
        "{text}"
    );
    let listed = json(&server.run(&rita, &["grant", "list", "--json"]));
    let id = listed["items"][0]["id"].as_str().unwrap().to_owned();

    let first = submit();
    assert_eq!(
        (&first["status"], &first["grant"]),
        (&"allowed".into(), &id.clone().into())
    );
    let shown = server.run(&rita, &["show", first["id"].as_str().unwrap()]);
    assert!(stdout(&shown).contains(&id), "{}", stdout(&shown));
    let table = stdout(&server.run(&rita, &["grant", "list", "--live"]));
    assert!(table.contains("1/2") && table.contains("live"), "{table}");

    let revoked = server.run(&rita, &["grant", "revoke", &id]);
    assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));
    assert_eq!(submit()["status"], "pending", "revoked: asked again");
    let table = stdout(&server.run(&rita, &["grant", "list"]));
    assert!(table.contains("revoked by rita"), "{table}");
    let live = json(&server.run(&rita, &["grant", "list", "--live", "--json"]));
    assert_eq!(live["items"], serde_json::json!([]));
    let unknown = server.run(&rita, &["grant", "revoke", "no-such-grant"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no grant"),
        "{}",
        stderr(&unknown)
    );
}
