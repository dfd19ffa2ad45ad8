//! Who is calling: the bearer token, looked up in the store, and the role checks of SPEC
//! section 3. Handlers take a [`Caller`] and say which roles they admit; the finer rules
//! (approver groups, owners, four eyes) are the lifecycle's, applied by the store.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use countersign_core::name;
use countersign_store::{ActionRecord, Actor, Role, Token};

use crate::error::AppError;
use crate::state::AppState;

/// The authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub token: Token,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            AppError::unauthorized("this endpoint needs an Authorization: Bearer TOKEN header")
        })?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| {
                let (scheme, rest) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                AppError::unauthorized("expected an Authorization header of the form Bearer TOKEN")
            })?;
        match state.store().authenticate(secret).await {
            Ok(Some(token)) => Ok(Caller { token }),
            Ok(None) => Err(AppError::unauthorized(
                "the token is unknown or was revoked",
            )),
            Err(error) => Err(error.into()),
        }
    }
}

impl Caller {
    pub fn name(&self) -> &str {
        &self.token.name
    }

    fn require(&self, allowed: &[Role], what: &str) -> Result<(), AppError> {
        if allowed.contains(&self.token.role) {
            Ok(())
        } else {
            let roles: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
            Err(AppError::forbidden(
                "wrong_role",
                format!(
                    "{what} needs a token with role {}; this token's role is {}",
                    roles.join(" or "),
                    self.token.role
                ),
            ))
        }
    }

    /// Submitting, cancelling, reporting outcomes: agents (and admins).
    pub fn require_agent(&self, what: &str) -> Result<(), AppError> {
        self.require(&[Role::Agent, Role::Admin], what)
    }

    /// Queues, decisions, reviews: reviewers (and admins).
    pub fn require_reviewer(&self, what: &str) -> Result<(), AppError> {
        self.require(&[Role::Reviewer, Role::Admin], what)
    }

    pub fn require_admin(&self, what: &str) -> Result<(), AppError> {
        self.require(&[Role::Admin], what)
    }

    /// May this caller see `record`? Agents see only their own actions; to them another
    /// agent's action does not exist (a 404 does not reveal that the id is in use). Names
    /// compare without regard to case, as identities do.
    pub fn check_read(&self, record: &ActionRecord) -> Result<(), AppError> {
        match self.token.role {
            Role::Agent if !name::same(&record.gate.agent, &self.token.name) => {
                Err(not_found(&record.id))
            }
            _ => Ok(()),
        }
    }

    /// May this caller act for the agent that submitted `record` (cancel, outcome)?
    pub fn check_own(&self, record: &ActionRecord, what: &str) -> Result<(), AppError> {
        self.require_agent(what)?;
        self.check_read(record)
    }

    /// The caller as the audit log records it (name and token) and as a deciding reviewer
    /// (groups).
    pub fn actor(&self) -> Actor {
        Actor::of(&self.token)
    }
}

pub fn not_found(id: &str) -> AppError {
    AppError::not_found(format!("no action with id {id:?}"))
}
