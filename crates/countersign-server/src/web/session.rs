//! Who is signed in: the session cookie, looked up in the store and judged against the
//! idle and absolute expiry; the CSRF token every state-changing form carries; and the
//! origin check that refuses cross-site requests before anything else.
//!
//! The cookie is `HttpOnly`, `SameSite=Strict`, and behind HTTPS (`public_url` https)
//! `Secure` with the `__Host-` prefix (no `Domain`, path `/`: no sibling host can set or
//! shadow it). The CSRF token is derived from the session's secret (SHA-256 with a label),
//! so it needs no storage, differs per session, and cannot be computed without the cookie,
//! which scripts cannot read.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use countersign_store::{Actor, Session, User};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::WebError;
use crate::state::AppState;

/// The session cookie's name over plain HTTP.
pub const COOKIE_NAME: &str = "countersign_session";
/// Over HTTPS: the `__Host-` prefix makes browsers insist on `Secure`, path `/` and no
/// domain.
pub const SECURE_COOKIE_NAME: &str = "__Host-countersign_session";

/// A session is marked as seen at most this often (each mark is a write).
const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

/// The web UI's session settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WebSettings {
    /// Cookies are `Secure` (the server is reached over HTTPS, `public_url` says so).
    pub secure_cookies: bool,
    /// A session unused this long ends.
    pub idle_timeout: TimeDelta,
    /// A session ends this long after sign-in, used or not.
    pub max_age: TimeDelta,
    /// An irreversible (`confirm`) approval asks for the password again when it was last
    /// typed longer ago than this.
    pub reauth_window: TimeDelta,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            secure_cookies: false,
            idle_timeout: TimeDelta::minutes(30),
            max_age: TimeDelta::hours(12),
            reauth_window: TimeDelta::minutes(5),
        }
    }
}

impl WebSettings {
    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            SECURE_COOKIE_NAME
        } else {
            COOKIE_NAME
        }
    }

    /// The `Set-Cookie` value that keeps `secret`.
    pub fn set_cookie(&self, secret: &str) -> String {
        format!(
            "{}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.cookie_name(),
            self.max_age.num_seconds(),
            if self.secure_cookies { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that removes the cookie.
    pub fn clear_cookie(&self) -> String {
        format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            self.cookie_name(),
            if self.secure_cookies { "; Secure" } else { "" }
        )
    }
}

/// The value of cookie `name` in the request, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The CSRF token of the session whose secret this is.
pub fn csrf_token(secret: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"countersign csrf token\0")
        .chain_update(secret.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Why a session does not count (any more), in words for the sign-in page.
pub fn expired(
    session: &Session,
    user: &User,
    settings: &WebSettings,
    now: DateTime<Utc>,
) -> Option<&'static str> {
    if user.disabled {
        Some("your account was disabled")
    } else if session.ended {
        Some("you were signed out")
    } else if now - session.created_at > settings.max_age {
        Some("your session reached its maximum age; sign in again")
    } else if now - session.last_seen_at > settings.idle_timeout {
        Some("your session was idle for too long; sign in again")
    } else {
        None
    }
}

/// The signed-in person of a request.
#[derive(Clone, Debug)]
pub struct Person {
    pub session: Session,
    pub user: User,
    /// For forms: the CSRF token of this session.
    pub csrf: String,
}

impl Person {
    /// The actor the person acts as: the same rules as a token of theirs.
    pub fn actor(&self) -> Actor {
        self.session.actor(&self.user)
    }

    /// Did the person type their password within the re-authentication window?
    pub fn recently_authenticated(&self, settings: &WebSettings, now: DateTime<Utc>) -> bool {
        now - self.session.authenticated_at <= settings.reauth_window
    }

    /// Refuses a state-changing request whose CSRF token is not this session's.
    pub fn check_csrf(&self, presented: &str) -> Result<(), WebError> {
        if bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(WebError::forbidden(
                "This form is out of date or did not come from this site (its security token does not match your session). Reload the page and try again.",
            ))
        }
    }
}

impl FromRequestParts<AppState> for Person {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let settings = state.web_settings();
        let next = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|_| parts.method == Method::GET);
        let Some(secret) = cookie(&parts.headers, settings.cookie_name()) else {
            return Err(WebError::SignIn { next, why: None });
        };
        let Some(found) = state.store().signed_in(secret).await? else {
            return Err(WebError::SignIn {
                next,
                why: Some("your session is no longer known; sign in again"),
            });
        };
        let now = state.clock().now();
        if let Some(why) = expired(&found.session, &found.user, &settings, now) {
            return Err(WebError::SignIn {
                next,
                why: Some(why),
            });
        }
        let mut session = found.session;
        if now - session.last_seen_at >= TOUCH_EVERY {
            session = match state
                .store()
                .touch_session(session.id.clone(), now, false)
                .await
            {
                Ok(session) => session,
                Err(countersign_store::StoreError::SessionEnded(_)) => {
                    return Err(WebError::SignIn {
                        next,
                        why: Some("you were signed out"),
                    });
                }
                Err(error) => return Err(error.into()),
            };
        }
        Ok(Person {
            csrf: csrf_token(secret),
            session,
            user: found.user,
        })
    }
}

/// The address a request came from (none when the server is driven without a socket).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

/// Refuses a state-changing request sent from another site: a browser says where a request
/// came from in `Sec-Fetch-Site` (modern browsers) and `Origin` (every browser on POST).
/// Requests that carry neither (curl, old clients) pass here and meet the CSRF token.
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), WebError> {
    let refused = || {
        WebError::forbidden(
            "This request came from another site; Countersign accepts forms only from its own pages.",
        )
    };
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(refused());
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().map_err(|_| refused())?;
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .ok_or_else(refused)?;
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .ok_or_else(refused)?;
        if !origin_host.eq_ignore_ascii_case(host) {
            return Err(refused());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_and_origins() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; countersign_session=s3cret; b=2"),
        );
        assert_eq!(cookie(&headers, COOKIE_NAME), Some("s3cret"));
        assert_eq!(cookie(&headers, SECURE_COOKIE_NAME), None);
        let secure = WebSettings {
            secure_cookies: true,
            ..WebSettings::default()
        };
        assert_eq!(
            secure.set_cookie("x"),
            "__Host-countersign_session=x; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200; Secure"
        );
        assert_ne!(csrf_token("a"), csrf_token("b"));

        #[rustfmt::skip]
        let origins: &[(&[(&str, &str)], bool)] = &[
            (&[], true),
            (&[("host", "127.0.0.1:7878"), ("origin", "http://127.0.0.1:7878")], true),
            (&[("host", "127.0.0.1:7878"), ("origin", "http://evil.example")], false),
            (&[("host", "127.0.0.1:7878"), ("origin", "null")], false),
            (&[("sec-fetch-site", "same-origin")], true),
            (&[("sec-fetch-site", "cross-site")], false),
            (&[("sec-fetch-site", "same-site")], false),
        ];
        for (pairs, allowed) in origins {
            let mut headers = HeaderMap::new();
            for (name, value) in *pairs {
                headers.insert(*name, HeaderValue::from_str(value).unwrap());
            }
            assert_eq!(check_same_origin(&headers).is_ok(), *allowed, "{pairs:?}");
        }
    }
}
