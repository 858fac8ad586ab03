//! Cross-site request refusal for the login and logout POSTs, from the headers
//! browsers set themselves: `Sec-Fetch-Site` (every current browser), else
//! `Origin` against `Host`. A request with neither is no browser's cross-site form
//! post (curl, a server-side client) and passes.

use http::{HeaderMap, header};

use super::WebError;

/// Refuses a POST another site made the browser send.
pub(crate) fn check_same_origin(headers: &HeaderMap) -> Result<(), WebError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        // `none`: typed by the user, a bookmark; `same-site` is a sibling
        // subdomain, which may be somebody else's.
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err(WebError::CrossSite),
        };
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, host)| host);
    match (origin_host, host) {
        (Some(origin_host), Some(host)) if origin_host.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(WebError::CrossSite),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn cross_site_posts_are_refused() {
        for ok in [
            headers(&[]),
            headers(&[("sec-fetch-site", "same-origin")]),
            headers(&[("origin", "http://app.test:3000"), ("host", "app.test:3000")]),
        ] {
            assert_eq!(check_same_origin(&ok), Ok(()), "{ok:?}");
        }
        for bad in [
            headers(&[
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://app.test"),
                ("host", "app.test"),
            ]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("origin", "http://evil.test"), ("host", "app.test")]),
            headers(&[("origin", "null"), ("host", "app.test")]),
        ] {
            assert_eq!(check_same_origin(&bad), Err(WebError::CrossSite), "{bad:?}");
        }
    }
}
