//! The router: every endpoint, registered through utoipa-axum so that the OpenAPI document
//! is built from the same list, plus the body limit and the JSON fallbacks.

pub mod actions;
mod audit;
mod checkpoints;
pub mod decisions;
pub mod deliveries;
mod graduation;
mod grants;
mod ops;
mod policy;
mod reviews;
mod slack;
mod stats;
pub mod tokens;
mod users;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Every documented endpoint.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::base())
        .routes(routes!(actions::submit, actions::list))
        .routes(routes!(actions::show))
        .routes(routes!(actions::events))
        .routes(routes!(policy::classify))
        .routes(routes!(decisions::decide))
        .routes(routes!(decisions::cancel))
        .routes(routes!(decisions::outcome))
        .routes(routes!(reviews::list))
        .routes(routes!(reviews::review))
        .routes(routes!(audit::list))
        .routes(routes!(audit::verify, audit::verify_against))
        .routes(routes!(checkpoints::latest))
        .routes(routes!(checkpoints::sign))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(graduation::show))
        .routes(routes!(graduation::replay))
        .routes(routes!(deliveries::list))
        .routes(routes!(deliveries::retry))
        .routes(routes!(slack::interactions))
        .routes(routes!(stats::show))
        .routes(routes!(stats::export))
        .routes(routes!(grants::create, grants::list))
        .routes(routes!(grants::show))
        .routes(routes!(grants::revoke))
        .routes(routes!(users::create, users::list))
        .routes(routes!(users::password))
        .routes(routes!(users::disable))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
}

pub fn router(state: AppState) -> axum::Router {
    let (router, _) = api().split_for_parts();
    let limit = state.limits().max_body_bytes;
    // The web UI's pages are routes of their own, outside the API document.
    router
        .merge(crate::web::router(state.clone()))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), count_errors))
        .with_state(state)
}

/// Counts 4xx answers for `/metrics`.
async fn count_errors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status().is_client_error() {
        state.metrics().client_error();
    }
    response
}
