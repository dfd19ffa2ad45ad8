//! The wire shapes of people with a web login: `POST /v1/users`, a password change, and a
//! person as listed. Never a password or its hash.

use chrono::{DateTime, Utc};
use countersign_store::User;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/users`: a web login for a person.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "rita", "groups": ["support-leads"], "admin": false, "password": "correct horse battery"}))]
pub struct UserBody {
    /// The person's name: the identity the audit log records, the same as their tokens'
    /// (`system` and `cli` are reserved).
    #[schema(
        pattern = r"^(?![Ss][Yy][Ss][Tt][Ee][Mm]$|[Cc][Ll][Ii]$)[A-Za-z0-9._:/@-]{1,200}$",
        min_length = 1,
        max_length = 200
    )]
    pub name: String,
    /// The groups the person decides for.
    #[serde(default)]
    #[schema(inline, value_type = Vec<GroupName>)]
    pub groups: Vec<String>,
    /// An administrator (sees the audit log; decides where no group is named).
    #[serde(default)]
    pub admin: bool,
    /// At least 10 characters, at most 1024 bytes, no control characters.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$",
        min_length = 10,
        max_length = 256
    )]
    pub password: String,
}

/// A group name.
#[derive(ToSchema)]
#[schema(
    pattern = r"^[A-Za-z0-9._:/@-]{1,200}$",
    min_length = 1,
    max_length = 200
)]
#[allow(dead_code)]
pub struct GroupName(String);

/// `POST /v1/users/{name}/password`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    /// At least 10 characters, at most 1024 bytes, no control characters.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$",
        min_length = 10,
        max_length = 256
    )]
    pub password: String,
}

/// A person with a web login.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    pub name: String,
    pub groups: Vec<String>,
    pub admin: bool,
    /// A disabled person cannot sign in, and their tokens were revoked.
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub password_changed_at: DateTime<Utc>,
}

impl From<&User> for UserView {
    fn from(user: &User) -> UserView {
        UserView {
            name: user.name.to_string(),
            groups: user.groups.iter().map(ToString::to_string).collect(),
            admin: user.admin,
            disabled: user.disabled,
            created_at: user.created_at,
            password_changed_at: user.password_changed_at,
        }
    }
}

/// People with a login, by name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
}
