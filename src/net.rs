//! Which peers are trusted proxies, and the client address behind them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderMap;
use http::header::{FORWARDED, HeaderName};
pub use ipnet::IpNet;

/// The header a trusted proxy uses to pass on the client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
    /// Ignore forwarding headers: the client is the direct peer.
    None,
}

/// The set of proxies whose forwarding and identity headers are believed.
///
/// Empty by default: nobody is trusted, the client is the direct peer and proxy
/// headers are ignored.
#[derive(Clone, Default)]
pub struct ProxyTrust {
    nets: Vec<IpNet>,
    /// The IPv4 networks of `nets` as (network, mask), the IPv6 ones likewise:
    /// a peer is checked on every login, several times.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
    any_peer: bool,
    header: ForwardedHeader,
}

impl std::fmt::Debug for ProxyTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyTrust")
            .field("nets", &self.nets)
            .field("any_peer", &self.any_peer)
            .field("header", &self.header)
            .finish()
    }
}

/// One entry of a trusted-proxy list: `10.0.0.0/8`, `::1/128`, or a bare address
/// meaning just that host. Deserializes from such a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet(pub IpNet);

impl std::str::FromStr for ProxyNet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(ProxyNet(net));
        }
        text.parse::<IpAddr>()
            .map(|ip| ProxyNet(IpNet::from(ip)))
            .map_err(|_| format!("{:?} is not an IP address or CIDR network", truncate(text, 64)))
    }
}

impl<'de> serde::Deserialize<'de> for ProxyNet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A forwarding header that a trusted proxy sent but that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {header} header: {reason}")]
pub struct ForwardedError {
    /// Which header.
    pub header: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl ProxyTrust {
    /// Trust the peers in these networks.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let nets: Vec<IpNet> = nets.into_iter().map(|n| n.trunc()).collect();
        let mut trust = ProxyTrust {
            any_peer: false,
            header: ForwardedHeader::default(),
            ..ProxyTrust::default()
        };
        for net in &nets {
            match net {
                IpNet::V4(net) => trust.v4.push((net.network().into(), net.netmask().into())),
                IpNet::V6(net) => trust.v6.push((net.network().into(), net.netmask().into())),
            }
        }
        trust.nets = nets;
        trust
    }

    /// Trust nobody (the default).
    pub fn none() -> Self {
        ProxyTrust::default()
    }

    /// **Insecure**: trust every peer, so any client can assert any identity by
    /// sending a header. For tests only.
    pub fn insecure_trust_any_peer() -> Self {
        ProxyTrust {
            any_peer: true,
            ..ProxyTrust::default()
        }
    }

    /// Chooses the forwarding header to read.
    pub fn with_forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// Whether nobody is trusted.
    pub fn trusts_nobody(&self) -> bool {
        !self.any_peer && self.nets.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        if self.any_peer {
            return true;
        }
        match canonical(ip) {
            IpAddr::V4(ip) => {
                let ip = u32::from(ip);
                self.v4.iter().any(|&(net, mask)| ip & mask == net)
            }
            IpAddr::V6(ip) => {
                let ip = u128::from(ip);
                self.v6.iter().any(|&(net, mask)| ip & mask == net)
            }
        }
    }

    /// The client address: the direct peer, unless the peer is a trusted proxy, in
    /// which case the forwarding header is read right to left, skipping trusted
    /// hops; the first untrusted address is the client. Left parts written by the
    /// client itself are never reached while a trusted hop appended its peer.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<IpAddr, ForwardedError> {
        let mut client = canonical(peer.ip());
        if !self.is_trusted(client) {
            return Ok(client);
        }
        // Header names as constants: a lookup by `&str` would parse the name first.
        const XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
        let (name, read, other, parse): (&'static str, HeaderName, HeaderName, NodeParser) = match self.header
        {
            ForwardedHeader::None => return Ok(client),
            ForwardedHeader::XForwardedFor => ("X-Forwarded-For", XFF, FORWARDED, parse_xff_element),
            ForwardedHeader::Forwarded => ("Forwarded", FORWARDED, XFF, parse_forwarded_element),
        };
        let values = headers.get_all(&read);
        if values.iter().next().is_none() && headers.contains_key(&other) {
            warn_unread_header(client, name, other.as_str());
        }
        // Several header lines form one list, in order (RFC 9110 §5.3): read from
        // the last element of the last line backwards.
        for value in values.iter().rev() {
            let value = value.to_str().map_err(|_| ForwardedError {
                header: name,
                reason: "not visible ASCII".into(),
            })?;
            for element in elements_from_the_right(value) {
                match parse(element).map_err(|reason| ForwardedError { header: name, reason })? {
                    Some(ip) => {
                        client = canonical(ip);
                        if !self.is_trusted(client) {
                            return Ok(client);
                        }
                    }
                    // `unknown` or an obfuscated node: nothing further left can be
                    // attributed, the last trusted hop is the best we know.
                    None => return Ok(client),
                }
            }
        }
        Ok(client)
    }
}

/// Seconds since the epoch of the last [`warn_unread_header`] warning.
static LAST_UNREAD_HEADER_WARNING: AtomicU64 = AtomicU64::new(0);
/// At most one such warning per this many seconds: a busy proxy must not flood the log.
const UNREAD_HEADER_WARNING_INTERVAL: u64 = 60;

/// A trusted proxy sent the forwarding header the chain does not read (and not the
/// one it reads): the client address is then the proxy's own, which is almost
/// certainly a configuration mistake. Warned at most once a minute.
fn warn_unread_header(proxy: IpAddr, read: &str, sent: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_UNREAD_HEADER_WARNING.load(Ordering::Relaxed);
    if now.saturating_sub(last) < UNREAD_HEADER_WARNING_INTERVAL && last != 0 {
        return;
    }
    if LAST_UNREAD_HEADER_WARNING
        .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        tracing::warn!(target: crate::audit::AUDIT_TARGET, proxy = %proxy, read = read, sent = sent,
            "a trusted proxy sent a forwarding header the chain does not read: the client address is the proxy's own (set `forwarded_header`)");
    }
}

/// Reads one element of a forwarding header: `Ok(None)` for `unknown` nodes.
type NodeParser = fn(&str) -> Result<Option<IpAddr>, String>;

/// The comma-separated elements of a header line, trimmed, last first (what
/// `rsplit(',')` gives, by a byte loop: the line is visible ASCII and short, and
/// the generic searcher costs more than the search).
fn elements_from_the_right(line: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let text = rest?;
        let element = match text.bytes().rposition(|b| b == b',') {
            Some(at) => {
                let (left, right) = text.split_at(at);
                rest = Some(left);
                &right[1..]
            }
            None => {
                rest = None;
                text
            }
        };
        Some(element.trim_ascii())
    })
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

fn parse_xff_element(element: &str) -> Result<Option<IpAddr>, String> {
    parse_node(element)
}

/// One `Forwarded` element: `for=...;proto=...;by=...`. Only `for` matters.
fn parse_forwarded_element(element: &str) -> Result<Option<IpAddr>, String> {
    let mut node = None;
    for pair in element.split(';') {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("parameter {pair:?} has no value"))?;
        if key.trim().eq_ignore_ascii_case("for") {
            if node.is_some() {
                return Err("element has two `for` parameters".into());
            }
            let value = value.trim();
            let value = match value.strip_prefix('"') {
                Some(rest) => rest
                    .strip_suffix('"')
                    .ok_or_else(|| format!("unterminated quoted value {value:?}"))?,
                None => value,
            };
            node = Some(value.to_owned());
        }
    }
    match node {
        Some(node) => parse_node(&node),
        None => Err("element has no `for` parameter".into()),
    }
}

/// A node: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:443`,
/// `unknown` or an obfuscated `_name`.
fn parse_node(node: &str) -> Result<Option<IpAddr>, String> {
    if node.is_empty() {
        return Err("empty element".into());
    }
    if let Some(ip) = dotted_quad(node) {
        return Ok(Some(IpAddr::V4(ip)));
    }
    if node.eq_ignore_ascii_case("unknown") || node.starts_with('_') {
        return Ok(None);
    }
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    if let Ok(sock) = node.parse::<SocketAddr>() {
        return Ok(Some(sock.ip()));
    }
    if let Some(inner) = node.strip_prefix('[').and_then(|rest| rest.strip_suffix(']'))
        && let Ok(ip) = inner.parse::<IpAddr>()
    {
        return Ok(Some(ip));
    }
    Err(format!("{:?} is not an IP address", truncate(node, 64)))
}

/// `a.b.c.d` in decimal without leading zeros (what a proxy writes), read by a
/// byte loop; `None` for any other text, which std's parser then reads. Every
/// address this accepts, std reads the same.
fn dotted_quad(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut index = 0;
    let (mut value, mut digits) = (0u32, 0u32);
    for &byte in text.as_bytes() {
        let digit = byte.wrapping_sub(b'0');
        if digit < 10 {
            value = value * 10 + u32::from(digit);
            digits += 1;
            if digits > 3 {
                return None;
            }
        } else if byte == b'.' && index < 3 {
            octets[index] = octet(value, digits)?;
            index += 1;
            (value, digits) = (0, 0);
        } else {
            return None;
        }
    }
    if index != 3 {
        return None;
    }
    octets[3] = octet(value, digits)?;
    Some(Ipv4Addr::from(octets))
}

/// An octet of `digits` decimal digits: one to three, at most 255, and no
/// leading zero (`010` reads differently in other parsers).
fn octet(value: u32, digits: u32) -> Option<u8> {
    let shortest = match digits {
        1 => 0,
        2 => 10,
        3 => 100,
        _ => return None,
    };
    if value < shortest {
        return None;
    }
    u8::try_from(value).ok()
}

/// The unit per-client bounds count by: an IPv4 address, or the /64 network of
/// an IPv6 address (what one host is usually given).
pub(crate) fn client_bucket(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !(u128::MAX >> 64)).into()),
        v4 => v4,
    }
}

pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_come_right_to_left_as_rsplit_gives_them() {
        for line in [
            "",
            ",",
            "a",
            " a , b ,c",
            "a,,b",
            "198.51.100.7",
            ", 10.0.0.1 ,\t10.0.0.2,",
        ] {
            let expected: Vec<&str> = line.rsplit(',').map(str::trim).collect();
            assert_eq!(
                elements_from_the_right(line).collect::<Vec<_>>(),
                expected,
                "{line:?}"
            );
        }
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    fn trust(nets: &[&str]) -> ProxyTrust {
        ProxyTrust::new(nets.iter().map(|n| n.parse().unwrap()))
    }

    #[test]
    fn forwarded_forms() {
        let t = trust(&["10.0.0.0/8"]).with_forwarded_header(ForwardedHeader::Forwarded);
        let peer: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let h = headers(
            "forwarded",
            &[r#"for="[2001:db8:cafe::17]:4711";proto=https, for=10.1.1.1"#],
        );
        assert_eq!(
            t.client_ip(peer, &h).unwrap(),
            "2001:db8:cafe::17".parse::<IpAddr>().unwrap()
        );
        let h = headers("forwarded", &["for=192.0.2.60;proto=http;by=203.0.113.43"]);
        assert_eq!(
            t.client_ip(peer, &h).unwrap(),
            "192.0.2.60".parse::<IpAddr>().unwrap()
        );
        let h = headers("forwarded", &["proto=http"]);
        assert!(t.client_ip(peer, &h).is_err());
        let h = headers("forwarded", &[r#"for="1.2.3.4"#]);
        assert!(t.client_ip(peer, &h).is_err());
    }

    #[test]
    fn dotted_quads_read_as_std_reads_them() {
        for text in [
            "0.0.0.0",
            "198.51.100.7",
            "255.255.255.255",
            "10.0.0.1",
            "1.22.133.4",
        ] {
            assert_eq!(dotted_quad(text), Some(text.parse().unwrap()), "{text}");
        }
        for text in [
            "",
            ".",
            "1.2.3",
            "1.2.3.4.",
            ".1.2.3.4",
            "1.2.3.4.5",
            "1..3.4",
            "256.1.1.1",
            "1.2.3.256",
            "01.2.3.4",
            "1.2.3.04",
            "1.2.3.4:80",
            " 1.2.3.4",
            "1.2.3.4 ",
            "1.2.3.-4",
            "9999999999.1.1.1",
            "::1",
            "::ffff:1.2.3.4",
            "unknown",
            "1.2.3.a",
        ] {
            assert_eq!(dotted_quad(text), None, "{text}");
        }
        // Every text of these bytes up to 9 long (sampled): wherever the fast path
        // answers, std answers the same.
        let alphabet = b"0123456789.:a ";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let length = (state % 10) as usize;
            let text: String = (0..length)
                .map(|i| char::from(alphabet[((state >> (4 + i * 5)) % alphabet.len() as u64) as usize]))
                .collect();
            if let Some(ip) = dotted_quad(&text) {
                assert_eq!(text.parse::<Ipv4Addr>().ok(), Some(ip), "{text:?}");
            }
        }
    }

    #[test]
    fn trust_checks_networks_of_both_families() {
        let t = trust(&["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "0.0.0.0/0"]);
        assert!(t.is_trusted("203.0.113.1".parse().unwrap()));
        let t = trust(&["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]);
        for (ip, trusted) in [
            ("10.255.0.1", true),
            ("11.0.0.1", false),
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("2001:db8:1::5", true),
            ("2001:db9::5", false),
            ("::ffff:10.1.2.3", true),
            ("::ffff:11.1.2.3", false),
        ] {
            assert_eq!(t.is_trusted(ip.parse().unwrap()), trusted, "{ip}");
        }
        assert!(!ProxyTrust::none().is_trusted("10.0.0.1".parse().unwrap()));
        assert!(ProxyTrust::insecure_trust_any_peer().is_trusted("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn mapped_v6_peer_is_v4() {
        let t = trust(&["127.0.0.1/32"]);
        let peer: SocketAddr = "[::ffff:127.0.0.1]:80".parse().unwrap();
        assert!(t.is_trusted(peer.ip()));
    }

    #[test]
    fn unknown_node_stops_at_last_trusted_hop() {
        let t = trust(&["10.0.0.0/8"]);
        let peer: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let h = headers("x-forwarded-for", &["unknown, 10.0.0.2"]);
        assert_eq!(
            t.client_ip(peer, &h).unwrap(),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
    }
}
