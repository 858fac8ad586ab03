//! A reproducer, not a regression test: ldap3 0.12 parses every LDAP message with
//! lber's recursive `parse_tag`, without a depth limit, so one ~40 KB message of
//! nested SEQUENCEs from the server overflows the stack of the Tokio worker that
//! drives the connection and aborts the process (see docs/security.md, "Input from
//! the directory"). Ignored because it aborts its test binary; run it with
//! `cargo test --features ldap --test ldap3_nesting -- --ignored` to see whether an
//! ldap3 upgrade fixed it (it then passes).
#![cfg(feature = "ldap")]

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A BER length field for `len`.
fn length(len: usize) -> Vec<u8> {
    match len {
        0..0x80 => vec![len as u8],
        0x80..0x100 => vec![0x81, len as u8],
        0x100..0x1_0000 => vec![0x82, (len >> 8) as u8, len as u8],
        _ => vec![0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8],
    }
}

fn tagged(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(length(body.len()));
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "aborts the process until ldap3 bounds its parser's recursion"]
async fn a_deeply_nested_server_message_does_not_abort_the_client() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = [0u8; 1024];
        let _ = socket.read(&mut request).await;
        // LDAPMessage { messageID 1, BindResponse [APPLICATION 1] { 10,000 nested SEQUENCEs } }
        let mut deep = vec![0x30, 0x00];
        for _ in 0..10_000 {
            deep = tagged(0x30, &deep);
        }
        let body = [&[0x02, 0x01, 0x01][..], &tagged(0x61, &deep)].concat();
        socket.write_all(&tagged(0x30, &body)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    });
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(&format!("ldap://{addr}"))
        .await
        .unwrap();
    ldap3::drive!(conn);
    // Any answer but an abort will do: an error is what a fixed parser gives.
    let _ = ldap.simple_bind("cn=x", "y").await;
    server.abort();
}
