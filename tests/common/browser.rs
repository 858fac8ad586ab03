//! A browser for the redirect-login tests: no automatic redirects, cookies kept by
//! name (no domain or path rules: each test talks to one server).
#![allow(dead_code)]

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

pub struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Browser::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The value of a cookie the server set.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn remember(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap_or_default();
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies.insert(name.trim().to_owned(), value.to_owned());
                }
            }
        }
    }

    /// Sends the request with the cookies kept so far; keeps the ones it sets.
    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let response = request
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("request to the server");
        self.remember(&response);
        response
    }
}

/// The absolute URL a redirect answered at `url` points to.
pub fn location(response: &reqwest::Response, url: &str) -> String {
    let next = response.headers()[LOCATION].to_str().expect("location");
    url::Url::parse(url)
        .expect("url")
        .join(next)
        .expect("join")
        .to_string()
}
