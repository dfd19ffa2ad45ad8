//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations and
//! the wire types' schemas as the router is built, so that it cannot drift from the API.

use std::sync::OnceLock;

use axum::http::StatusCode;
use utoipa::OpenApi;
use utoipa::openapi::RefOr;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Countersign",
        description = "A human-in-the-loop approval gateway for AI agents: agents submit proposed actions, a policy sorts them into tiers, people approve, modify or reject what needs them.",
    ),
    tags(
        (name = "actions", description = "Submitting, reading and watching actions"),
        (name = "decisions", description = "Verdicts, cancellation and outcomes"),
        (name = "reviews", description = "Post-hoc review of sampled logged actions"),
        (name = "audit", description = "The tamper-evident audit log"),
        (name = "tokens", description = "API tokens"),
        (name = "graduation", description = "Earned autonomy: policy changes the history supports, and candidate policies replayed over it"),
        (name = "deliveries", description = "Notification and callback deliveries (admins)"),
        (name = "integrations", description = "Slack approvals, verified by Slack's request signature"),
        (name = "stats", description = "Approval metrics and training data"),
        (name = "grants", description = "Time-boxed, bounded autonomy a reviewer gives an agent"),
        (name = "users", description = "People who sign in to the web UI"),
        (name = "operations", description = "Health, metrics and this document"),
    ),
)]
struct ApiDoc;

/// The base document the router adds its paths to.
pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Answers any operation can give, whatever its handler does: they come from the layers
/// around the handlers (the connection cap, the store), or, for operations with a body,
/// from reading it (the body timeout, duplicate keys).
const EVERY_OPERATION: &[(&str, &str)] = &[(
    "503",
    "The server is at its connection cap, short of descriptors, or its store cannot take writes; try again shortly",
)];
const WITH_A_BODY: &[(&str, &str)] = &[
    (
        "400",
        "Malformed JSON, or an object that names a key twice (`duplicate_key`)",
    ),
    (
        "408",
        "The request body did not arrive within the server's body timeout",
    ),
];

/// Where an answer leads: `(operation, status, link, target operation, where the target's
/// `id` is in the answer)`. A reader sees what to do with an id; a fuzzer's stateful phase
/// follows them, so it decides on, cancels, reviews and reports on actions that exist
/// instead of guessing ids.
const LINKS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "submit_action",
        "201",
        "show",
        "show_action",
        "$response.body#/id",
    ),
    (
        "submit_action",
        "201",
        "watch",
        "watch_action",
        "$response.body#/id",
    ),
    (
        "submit_action",
        "201",
        "decide",
        "decide_action",
        "$response.body#/id",
    ),
    (
        "submit_action",
        "201",
        "cancel",
        "cancel_action",
        "$response.body#/id",
    ),
    (
        "submit_action",
        "201",
        "report_outcome",
        "report_outcome",
        "$response.body#/id",
    ),
    (
        "submit_action",
        "201",
        "review",
        "review_action",
        "$response.body#/id",
    ),
    (
        "submit_action",
        "200",
        "show",
        "show_action",
        "$response.body#/id",
    ),
    (
        "submit_action",
        "200",
        "decide",
        "decide_action",
        "$response.body#/id",
    ),
    (
        "submit_action",
        "200",
        "report_outcome",
        "report_outcome",
        "$response.body#/id",
    ),
    (
        "show_action",
        "200",
        "decide",
        "decide_action",
        "$response.body#/id",
    ),
    (
        "show_action",
        "200",
        "report_outcome",
        "report_outcome",
        "$response.body#/id",
    ),
    (
        "decide_action",
        "200",
        "show",
        "show_action",
        "$response.body#/id",
    ),
    (
        "decide_action",
        "200",
        "decide_again",
        "decide_action",
        "$response.body#/id",
    ),
    (
        "decide_action",
        "200",
        "report_outcome",
        "report_outcome",
        "$response.body#/id",
    ),
    (
        "cancel_action",
        "200",
        "show",
        "show_action",
        "$response.body#/id",
    ),
    (
        "report_outcome",
        "200",
        "show",
        "show_action",
        "$response.body#/id",
    ),
    (
        "report_outcome",
        "200",
        "review",
        "review_action",
        "$response.body#/id",
    ),
    (
        "review_action",
        "200",
        "show",
        "show_action",
        "$response.body#/id",
    ),
    (
        "list_actions",
        "200",
        "show_first",
        "show_action",
        "$response.body#/items/0/id",
    ),
    (
        "list_actions",
        "200",
        "decide_first",
        "decide_action",
        "$response.body#/items/0/id",
    ),
    (
        "list_reviews",
        "200",
        "review_first",
        "review_action",
        "$response.body#/items/0/id",
    ),
    (
        "create_token",
        "201",
        "revoke",
        "revoke_token",
        "$response.body#/id",
    ),
    (
        "list_tokens",
        "200",
        "revoke_first",
        "revoke_token",
        "$response.body#/items/0/id",
    ),
];

/// Adds what the route annotations cannot say: the bearer-token scheme, the answers every
/// operation can give, a description for every response that has none (OpenAPI 3.1
/// requires one; utoipa leaves it out when the annotation gives only a status and a body),
/// and the [`LINKS`].
pub fn finish(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let with_a_body = operation.request_body.is_some();
            let added = EVERY_OPERATION
                .iter()
                .chain(if with_a_body { WITH_A_BODY } else { &[] });
            for (status, description) in added {
                operation
                    .responses
                    .responses
                    .entry((*status).to_owned())
                    .or_insert_with(|| RefOr::T(error_response(description)));
            }
            let operation_id = operation.operation_id.clone().unwrap_or_default();
            for (status, response) in &mut operation.responses.responses {
                let RefOr::T(response) = response else {
                    continue;
                };
                if response.description.is_empty() {
                    response.description = StatusCode::from_bytes(status.as_bytes())
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("Response")
                        .to_owned();
                }
                let links = LINKS
                    .iter()
                    .filter(|(from, answer, ..)| *from == operation_id && answer == status);
                for (_, _, name, target, id) in links {
                    let link = LinkBuilder::new()
                        .operation_id(*target)
                        .parameter("id", *id)
                        .build();
                    response.links.insert((*name).to_owned(), RefOr::T(link));
                }
            }
        }
    }
    openapi
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A token from `countersign token create` (roles: agent, reviewer, admin)",
                    ))
                    .build(),
            ),
        );
    openapi
}

/// A response whose body is the API's error object.
fn error_response(description: &str) -> utoipa::openapi::Response {
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// The document as JSON, built once.
pub fn document_json() -> String {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| {
            let (_, openapi) = crate::routes::api().split_for_parts();
            finish(openapi)
                .to_pretty_json()
                .unwrap_or_else(|_| "{}".to_owned())
        })
        .clone()
}
