//! Which return-to URLs a redirect login accepts: no open redirects.

/// Longest accepted return-to URL, in bytes.
const MAX_RETURN_TO_BYTES: usize = 2048;

/// Why a return-to URL (or an allow-list prefix) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReturnToError {
    /// Empty, or longer than 2,048 bytes.
    #[error("return-to URL is empty or too long")]
    Length,
    /// A control character, a backslash or white space.
    #[error("return-to URL contains a control character, a backslash or white space")]
    Character,
    /// Neither a relative path nor on the allow-list: an open redirect.
    #[error("return-to URL must be a relative path or on the allow-list")]
    NotAllowed,
    /// An allow-list prefix that is not `scheme://host[:port]/path/`.
    #[error("{0:?} must be an http(s) URL of the form `scheme://host[:port]/path/`")]
    BadPrefix(String),
}

/// Which return-to URLs are accepted: relative paths always (`/app/page`, not
/// `//host`, no backslash, no scheme), absolute URLs only when they start with an
/// allowed prefix (`https://app.example.org/`). Anything else is an open redirect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReturnToPolicy {
    allowed_prefixes: Vec<String>,
}

impl ReturnToPolicy {
    /// Relative paths only.
    pub fn relative_only() -> Self {
        ReturnToPolicy::default()
    }

    /// Relative paths, plus absolute URLs starting with one of these prefixes. A
    /// prefix must be an `http(s)` origin followed by a path ending in `/`
    /// (`https://app.example.org/`), so that `https://app.example.org.evil.test`
    /// does not match.
    pub fn with_allowed(
        prefixes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, ReturnToError> {
        let mut allowed = Vec::new();
        for prefix in prefixes {
            let prefix: String = prefix.into();
            let host = prefix
                .strip_prefix("https://")
                .or_else(|| prefix.strip_prefix("http://"))
                .and_then(|rest| rest.split_once('/'))
                .map(|(host, _path)| host);
            match host {
                Some(host)
                    if !host.is_empty()
                        && prefix.ends_with('/')
                        && !prefix.contains('\\')
                        && !prefix.contains('@') => {}
                _ => return Err(ReturnToError::BadPrefix(prefix)),
            }
            allowed.push(prefix);
        }
        Ok(ReturnToPolicy {
            allowed_prefixes: allowed,
        })
    }

    /// Checks a return-to URL; the error says why it is refused.
    pub fn check(&self, url: &str) -> Result<(), ReturnToError> {
        if url.is_empty() || url.len() > MAX_RETURN_TO_BYTES {
            return Err(ReturnToError::Length);
        }
        if url
            .chars()
            .any(|c| c.is_control() || c == '\\' || c.is_whitespace())
        {
            return Err(ReturnToError::Character);
        }
        if url.starts_with('/') && !url.starts_with("//") {
            return Ok(());
        }
        if self.allowed_prefixes.iter().any(|p| url.starts_with(p.as_str())) {
            return Ok(());
        }
        Err(ReturnToError::NotAllowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_policy() {
        let p = ReturnToPolicy::with_allowed(["https://app.example.org/"]).unwrap();
        for ok in ["/", "/app?x=1", "https://app.example.org/x"] {
            assert!(p.check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "//evil.test",
            "https://evil.test",
            "/\\evil.test",
            "javascript:alert(1)",
            "https://app.example.org.evil.test/",
            "",
            "relative",
            "/a\nb",
        ] {
            assert!(p.check(bad).is_err(), "{bad}");
        }
        assert!(ReturnToPolicy::with_allowed(["https://app.example.org"]).is_err());
    }
}
