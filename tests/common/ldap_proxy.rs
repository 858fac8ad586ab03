//! What the tests' TCP proxies in front of slapd share: their listener, and the BER
//! framing of LDAP messages — where a message ends and what its elements hold,
//! without trusting the bytes (garbage is an error, never a panic).
#![allow(dead_code)] // each proxy uses part of it

use tokio::net::TcpListener;

/// A listener on a free port of 127.0.0.1, its address, and the host:port of
/// `upstream` (an ldap:// URL) to forward to.
pub async fn listen(upstream: &str) -> (TcpListener, String, String) {
    let upstream = upstream
        .trim_start_matches("ldap://")
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr, upstream)
}

/// Longest element accepted: more is taken for garbage rather than buffered.
const MAX_LEN: usize = 64 << 20;

/// Bytes that are not a BER element the proxies accept.
#[derive(Debug, PartialEq, Eq)]
pub struct Garbage;

/// The length of the first element of `buf` once it is complete; `Ok(None)` while
/// more bytes are needed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, Garbage> {
    Ok(header(buf)?.and_then(|(_, start, len)| (buf.len() >= start + len).then_some(start + len)))
}

/// The first element of `buf` — its tag, its content — and the bytes after it;
/// `None` when `buf` does not start with a complete element.
pub fn element(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (tag, start, len) = header(buf).ok()??;
    Some((tag, buf.get(start..start + len)?, buf.get(start + len..)?))
}

/// An element with a definite length (short or long form).
pub fn encode(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    if content.len() < 0x80 {
        out.push(content.len() as u8);
    } else {
        let len = content.len().to_be_bytes();
        let significant = &len[len.iter().take_while(|&&b| b == 0).count()..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// Tag, header length and content length of the first element, once its header is
/// complete.
fn header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, Garbage> {
    let (Some(&tag), Some(&first)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    // LDAP uses no high tag numbers (which would continue into further bytes).
    if tag & 0x1f == 0x1f {
        return Err(Garbage);
    }
    if first < 0x80 {
        return Ok(Some((tag, 2, usize::from(first))));
    }
    // 0x80 is the indefinite length, which LDAP forbids; four length bytes are
    // already far beyond MAX_LEN.
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return Err(Garbage);
    }
    let Some(bytes) = buf.get(2..2 + n) else {
        return Ok(None);
    };
    let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    if len > MAX_LEN {
        return Err(Garbage);
    }
    Ok(Some((tag, 2 + n, len)))
}
