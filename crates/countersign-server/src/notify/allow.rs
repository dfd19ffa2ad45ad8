//! `callback_allow`: where agents' callbacks may go. A gateway that POSTs wherever an agent
//! says is an SSRF hole (an agent, or whoever steers it, could make the server call
//! `http://169.254.169.254/` or an internal admin port), so a `callback_url` is refused at
//! submission unless it matches a pattern the operator wrote.
//!
//! Patterns are URLs whose parts are matched separately, never as one string: the scheme
//! exactly, the host as a glob over the host alone (`*.agents.internal`), the port exactly
//! (default for the scheme, or `*`), and the path and query as a glob (`/hooks/*`). The URL
//! is parsed and normalised first (WHATWG rules: `http://2130706433/` is `127.0.0.1`), and
//! one with credentials is refused; so `https://agents.internal/*` never admits
//! `https://agents.internal.evil.com/` or `https://agents.internal@evil.com/`. The sender
//! follows no redirects, so an admitted receiver cannot bounce a callback elsewhere.

use reqwest::Url;

/// One `callback_allow` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlPattern {
    source: String,
    scheme: String,
    host: String,
    /// `None`: any port.
    port: Option<u16>,
    path: String,
}

impl UrlPattern {
    pub fn parse(text: &str) -> Result<UrlPattern, String> {
        let (scheme, rest) = text.split_once("://").ok_or_else(|| {
            format!("expected a URL pattern like \"https://agents.internal/*\", found {text:?}")
        })?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "https" => 443,
            "http" => 80,
            _ => return Err(format!("{text:?}: only http and https callbacks are sent")),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => {
                return Err(format!(
                    "{text:?} has no path: add one, like \"{text}/*\" (every path) or \"{text}/hook\""
                ));
            }
        };
        if authority.contains('@') {
            return Err(format!("{text:?}: a pattern may not carry credentials"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, "*")) if !host.ends_with(']') || host.starts_with('[') => (host, None),
            Some((host, port)) if !port.contains(']') => (
                host,
                Some(
                    port.parse::<u16>()
                        .map_err(|_| format!("{text:?}: the port must be a number or *"))?,
                ),
            ),
            _ => (authority, Some(default_port)),
        };
        let host = host.to_ascii_lowercase();
        if host.is_empty()
            || !host.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*' | '[' | ']' | ':')
            })
        {
            return Err(format!("{text:?}: {host:?} is not a host name or pattern"));
        }
        Ok(UrlPattern {
            source: text.to_owned(),
            scheme,
            host,
            port,
            path: path.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `url` (parsed and normalised) is admitted.
    pub fn admits(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let mut path = url.path().to_owned();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        url.scheme() == self.scheme
            && url.username().is_empty()
            && url.password().is_none()
            && glob(&self.host, &host.to_ascii_lowercase())
            && self
                .port
                .is_none_or(|port| url.port_or_known_default() == Some(port))
            && glob(&self.path, &path)
    }
}

/// Why a callback URL is refused.
pub fn check(allow: &[UrlPattern], text: &str) -> Result<Url, String> {
    if allow.is_empty() {
        return Err(
            "this server sends no callbacks (its configuration has no callback_allow)".to_owned(),
        );
    }
    if text.len() > 2048 {
        return Err("callback_url is longer than 2048 characters".to_owned());
    }
    let url = Url::parse(text).map_err(|e| format!("callback_url {text:?} is not a URL ({e})"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("callback_url {text:?} may not carry credentials"));
    }
    if allow.iter().any(|pattern| pattern.admits(&url)) {
        Ok(url)
    } else {
        let patterns: Vec<&str> = allow.iter().map(UrlPattern::as_str).collect();
        Err(format!(
            "callback_url {:?} matches no callback_allow pattern of this server ({})",
            url.as_str(),
            patterns.join(", ")
        ))
    }
}

/// `*` matches any run of characters (none included); everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let pattern = pattern.as_bytes();
    let text = text.as_bytes();
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admitted_and_refused() {
        let allow: Vec<UrlPattern> = [
            "https://agents.internal/*",
            "https://*.hooks.example.com/cb/*",
            "http://127.0.0.1:9000/callback",
        ]
        .iter()
        .map(|p| UrlPattern::parse(p).unwrap())
        .collect();
        let cases: &[(&str, bool)] = &[
            ("https://agents.internal/", true),
            ("https://agents.internal/runs/7?step=4", true),
            ("https://AGENTS.internal/x", true),
            ("https://agents.internal:443/x", true),
            ("https://agents.internal:8443/x", false),
            ("http://agents.internal/x", false),
            ("https://agents.internal.evil.com/x", false),
            ("https://agents.internal@evil.com/x", false),
            ("https://evil.com/?https://agents.internal/", false),
            ("https://a.hooks.example.com/cb/1", true),
            ("https://hooks.example.com/cb/1", false),
            ("https://a.hooks.example.com/other", false),
            ("http://127.0.0.1:9000/callback", true),
            ("http://127.0.0.1:9000/callback/x", false),
            ("http://2130706433:9000/callback", true),
            ("http://127.0.0.1/", false),
            ("http://169.254.169.254/latest/meta-data/", false),
            ("http://[::1]:9000/callback", false),
            ("file:///etc/passwd", false),
            ("gopher://agents.internal/", false),
            ("not a url", false),
        ];
        for (url, admitted) in cases {
            assert_eq!(check(&allow, url).is_ok(), *admitted, "{url}");
        }
        assert!(check(&[], "https://agents.internal/").is_err());
    }

    #[test]
    fn patterns() {
        for bad in [
            "agents.internal/*",
            "ftp://agents.internal/*",
            "https://agents.internal",
            "https://user@agents.internal/*",
            "https://agents.internal:x/*",
            "https:///x",
        ] {
            assert!(UrlPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(UrlPattern::parse("http://127.0.0.1:*/cb").is_ok());
        assert!(glob("a*b*c", "aXbYc") && !glob("a*b", "aXc") && glob("*", ""));
    }
}
