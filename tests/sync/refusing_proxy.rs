//! A TCP proxy in front of slapd that refuses persistent sync searches, as a
//! directory configured against them does: a SearchRequest carrying the RFC 4533
//! Sync Request control in refreshAndPersist mode is answered by the proxy itself
//! with a SearchResultDone of the configured result code, and never reaches slapd.
//! Everything else goes through both ways, one whole LDAP message at a time (so an
//! injected answer never lands inside one of slapd's). Garbage ends the connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::ldap_proxy::{self, element, encode};

const SYNC_REQUEST_OID: &[u8] = b"1.3.6.1.4.1.4203.1.9.1.1";
const SEARCH_REQUEST: u8 = 0x63;
const SEARCH_RESULT_DONE: u8 = 0x65;
const CONTROLS: u8 = 0xa0;
const REFRESH_ONLY: u8 = 1;
const REFRESH_AND_PERSIST: u8 = 3;

#[derive(Default)]
struct Counts {
    refused: AtomicUsize,
    refresh_only: AtomicUsize,
}

pub struct RefusingProxy {
    addr: String,
    counts: Arc<Counts>,
    task: JoinHandle<()>,
}

impl RefusingProxy {
    /// Proxies to the host:port of `upstream` (an ldap:// URL), answering persistent
    /// sync searches with `result_code`.
    pub async fn start(upstream: &str, result_code: u8) -> RefusingProxy {
        assert!(result_code < 0x80, "a one-byte ENUMERATED");
        let (listener, addr, upstream) = ldap_proxy::listen(upstream).await;
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream.clone(), result_code, shared.clone()));
            }
        });
        RefusingProxy { addr, counts, task }
    }

    pub fn url(&self) -> String {
        format!("ldap://{}", self.addr)
    }

    /// Persistent sync searches answered with the result code.
    pub fn refused(&self) -> usize {
        self.counts.refused.load(Ordering::SeqCst)
    }

    /// Refresh-only sync searches passed on to slapd.
    pub fn refresh_only(&self) -> usize {
        self.counts.refresh_only.load(Ordering::SeqCst)
    }
}

impl Drop for RefusingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client connection; whichever side ends first closes both.
async fn serve(client: TcpStream, upstream: String, result_code: u8, counts: Arc<Counts>) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, mut server_write) = server.into_split();
    let client_write = Mutex::new(client_write);
    let answers = async {
        let mut answers = Messages::new(server_read);
        while let Some(message) = answers.next().await {
            if client_write.lock().await.write_all(&message).await.is_err() {
                return;
            }
        }
    };
    let requests = async {
        let mut requests = Messages::new(client_read);
        while let Some(message) = requests.next().await {
            match sync_search(&message) {
                Some((id, REFRESH_AND_PERSIST)) => {
                    // Counted before the answer leaves: a test that saw the refusal sees the count.
                    counts.refused.fetch_add(1, Ordering::SeqCst);
                    if client_write
                        .lock()
                        .await
                        .write_all(&search_done(id, result_code))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    continue;
                }
                Some((_, REFRESH_ONLY)) => {
                    counts.refresh_only.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
            if server_write.write_all(&message).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = answers => {}
        () = requests => {}
    }
}

/// Whole BER-framed messages read from one side.
struct Messages {
    from: OwnedReadHalf,
    pending: Vec<u8>,
}

impl Messages {
    fn new(from: OwnedReadHalf) -> Self {
        Messages {
            from,
            pending: Vec::new(),
        }
    }

    /// The next message; `None` at the end of the stream, on an error or on garbage.
    async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(len) = ldap_proxy::frame_len(&self.pending).ok()? {
                return Some(self.pending.drain(..len).collect());
            }
            match self.from.read_buf(&mut self.pending).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}

/// The message id and the mode of a SearchRequest carrying the Sync Request control:
/// `LDAPMessage ::= SEQUENCE { messageID, protocolOp, controls [0] OPTIONAL }`,
/// `Control ::= SEQUENCE { controlType, criticality DEFAULT FALSE, controlValue OPTIONAL }`,
/// `syncRequestValue ::= SEQUENCE { mode ENUMERATED, cookie OPTIONAL, reloadHint DEFAULT FALSE }`.
fn sync_search(message: &[u8]) -> Option<(&[u8], u8)> {
    let (0x30, body, _) = element(message)? else {
        return None;
    };
    let (0x02, id, rest) = element(body)? else {
        return None;
    };
    let (SEARCH_REQUEST, _, rest) = element(rest)? else {
        return None;
    };
    let (CONTROLS, mut controls, _) = element(rest)? else {
        return None;
    };
    while let Some((tag, control, next)) = element(controls) {
        controls = next;
        let Some((0x04, oid, mut fields)) = element(control).filter(|_| tag == 0x30) else {
            continue;
        };
        if oid != SYNC_REQUEST_OID {
            continue;
        }
        if let Some((0x01, _, after_criticality)) = element(fields) {
            fields = after_criticality;
        }
        let (0x04, value, _) = element(fields)? else {
            return None;
        };
        let (0x30, value, _) = element(value)? else {
            return None;
        };
        let (0x0a, &[mode], _) = element(value)? else {
            return None;
        };
        return Some((id, mode));
    }
    None
}

/// `SearchResultDone` for message `id`: the result code, no matched DN, a diagnostic.
fn search_done(id: &[u8], result_code: u8) -> Vec<u8> {
    let result = [
        encode(0x0a, &[result_code]),
        encode(0x04, b""),
        encode(0x04, b"refused by the test proxy"),
    ]
    .concat();
    encode(
        0x30,
        &[encode(0x02, id), encode(SEARCH_RESULT_DONE, &result)].concat(),
    )
}

/// A sync SearchRequest as a client sends it, with another control before the sync one.
fn sync_request(id: &[u8], mode: u8, critical: bool) -> Vec<u8> {
    let search = encode(SEARCH_REQUEST, &encode(0x04, b"ou=people,dc=example,dc=org"));
    let other = encode(0x30, &encode(0x04, b"1.2.840.113556.1.4.319"));
    let value = encode(
        0x04,
        &encode(0x30, &[encode(0x0a, &[mode]), encode(0x04, b"cookie")].concat()),
    );
    let criticality = if critical {
        encode(0x01, &[0xff])
    } else {
        Vec::new()
    };
    let sync = encode(
        0x30,
        &[encode(0x04, SYNC_REQUEST_OID), criticality, value].concat(),
    );
    encode(
        0x30,
        &[
            encode(0x02, id),
            search,
            encode(CONTROLS, &[other, sync].concat()),
        ]
        .concat(),
    )
}

#[test]
fn sync_searches_are_recognised_and_answered() {
    for critical in [true, false] {
        let persist = sync_request(&[0x01, 0x2c], REFRESH_AND_PERSIST, critical);
        assert_eq!(
            sync_search(&persist),
            Some((&[0x01, 0x2c][..], REFRESH_AND_PERSIST))
        );
        let poll = sync_request(&[7], REFRESH_ONLY, critical);
        assert_eq!(sync_search(&poll), Some((&[7][..], REFRESH_ONLY)));
    }
    // No controls, or other controls only: not a sync search.
    let plain = encode(0x30, &[encode(0x02, &[3]), encode(SEARCH_REQUEST, b"")].concat());
    assert_eq!(sync_search(&plain), None);
    let done = search_done(&[0x01, 0x2c], 53);
    assert_eq!(ldap_proxy::frame_len(&done), Ok(Some(done.len())));
    let (_, body, _) = element(&done).unwrap();
    let (_, id, rest) = element(body).unwrap();
    let (tag, result, _) = element(rest).unwrap();
    assert_eq!(
        (id, tag, &result[..3]),
        (&[0x01, 0x2c][..], SEARCH_RESULT_DONE, &[0x0a, 1, 53][..])
    );
}

#[test]
fn truncated_or_mangled_messages_never_panic() {
    let message = sync_request(&[9], REFRESH_AND_PERSIST, true);
    for cut in 0..message.len() {
        assert_eq!(sync_search(&message[..cut]), None, "{cut} bytes");
    }
    for at in 0..message.len() {
        for byte in [0x00, 0x7f, 0x80, 0x84, 0xff] {
            let mut mangled = message.clone();
            mangled[at] = byte;
            let _ = ldap_proxy::frame_len(&mangled);
            let _ = sync_search(&mangled);
        }
    }
}

#[test]
fn framing_handles_long_lengths_partial_input_and_garbage() {
    let short = encode(0x04, b"abc");
    assert_eq!(short, [0x04, 3, b'a', b'b', b'c']);
    assert_eq!(ldap_proxy::frame_len(&short), Ok(Some(5)));
    let long = encode(0x30, &[7; 300]);
    assert_eq!(long[..4], [0x30, 0x82, 0x01, 0x2c]);
    assert_eq!(ldap_proxy::frame_len(&long), Ok(Some(304)));
    for cut in 0..long.len() {
        assert_eq!(ldap_proxy::frame_len(&long[..cut]), Ok(None), "{cut} bytes");
        assert_eq!(element(&long[..cut]), None);
    }
    let mut two = long.clone();
    two.extend_from_slice(&short);
    let (tag, content, rest) = element(&two).unwrap();
    assert_eq!((tag, content.len(), rest), (0x30, 300, &short[..]));
    // Indefinite length, a five-byte length, an absurd length, a high tag number.
    for garbage in [
        &[0x30, 0x80][..],
        &[0x30, 0x85, 1, 2, 3, 4, 5],
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        &[0x3f, 1, 0],
    ] {
        assert_eq!(
            ldap_proxy::frame_len(garbage),
            Err(ldap_proxy::Garbage),
            "{garbage:02x?}"
        );
        assert_eq!(element(garbage), None);
    }
}
