//! Short-lived state in Redis (feature `redis`): pending redirect logins
//! ([`FlowStore`]), the replay cache ([`ReplayCache`]) and throttle counters
//! ([`AttemptStore`]), shared by every replica of the host.
//!
//! Every key carries a TTL, so nothing outlives its use: a flow its lifetime
//! (plus a minute, to name late callbacks "expired" rather than "unknown"), a
//! replay id its `NotOnOrAfter`, a throttle counter its window. Every key starts
//! with the configured prefix (default `authchain:`), so several services can
//! share one Redis.
//!
//! The client is the `redis` crate's [`ConnectionManager`]: one multiplexed
//! connection that reconnects by itself after Redis restarts. Every call is
//! bounded by the response timeout, so a down or hung Redis answers at once with
//! a backend error (redirect logins `Unavailable`) instead of holding requests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use crate::StoreError;
use crate::account::{AttemptStore, FailureCount, MAX_FAILURES_PER_KEY};
use crate::error::OtherError;
use crate::flow::{FlowError, FlowStore, PendingFlow, ReplayCache, ReplayError};

/// The default key prefix.
pub const DEFAULT_REDIS_PREFIX: &str = "authchain:";
/// The most pending redirect logins one client address may start within one flow
/// lifetime, by default.
pub const DEFAULT_REDIS_MAX_FLOWS_PER_CLIENT: u32 = 1_000;
/// How long after its expiry a consumed or expired flow is still named as such.
const FLOW_GRACE: Duration = Duration::from_secs(60);
/// The longest key prefix accepted.
pub const MAX_REDIS_PREFIX_BYTES: usize = 128;

/// How [`RedisState::connect`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// Prefix of every key (default [`DEFAULT_REDIS_PREFIX`]; at most
    /// [`MAX_REDIS_PREFIX_BYTES`]).
    pub prefix: String,
    /// How long connecting may take (default 1 s).
    pub connect_timeout: Duration,
    /// How long one command may take (default 2 s): a hung server fails calls
    /// after this.
    pub response_timeout: Duration,
    /// The most failures kept per throttle key (default [`MAX_FAILURES_PER_KEY`]).
    pub max_failures_per_key: u32,
    /// The most redirect logins one client address may start within one flow
    /// lifetime (default [`DEFAULT_REDIS_MAX_FLOWS_PER_CLIENT`]).
    pub max_flows_per_client: u32,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(2),
            max_failures_per_key: MAX_FAILURES_PER_KEY as u32,
            max_flows_per_client: DEFAULT_REDIS_MAX_FLOWS_PER_CLIENT,
        }
    }
}

impl RedisOptions {
    /// Sets the key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the most failures kept per throttle key (0 counts as 1).
    pub fn max_failures_per_key(mut self, max: u32) -> Self {
        self.max_failures_per_key = max.max(1);
        self
    }
}

/// Pending logins, replay ids and throttle counters in Redis. Cloning is cheap
/// and shares the connection.
#[derive(Clone)]
pub struct RedisState {
    conn: ConnectionManager,
    options: RedisOptions,
}

impl std::fmt::Debug for RedisState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisState")
            .field("prefix", &self.options.prefix)
            .finish_non_exhaustive()
    }
}

fn redis_error(err: redis::RedisError) -> OtherError {
    // The crate's messages name commands and server replies, never arguments.
    OtherError::new(err)
}

/// Milliseconds since the Unix epoch (0 before it), for Redis expiry times.
fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Nanoseconds since the Unix epoch (0 before it), zero-padded to 20 digits so
/// that Lua compares them as strings in time order.
fn nanos_text(at: SystemTime) -> String {
    let nanos = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{nanos:020}")
}

fn from_nanos_text(text: &[u8]) -> Option<SystemTime> {
    let nanos: u64 = std::str::from_utf8(text.get(..20)?).ok()?.parse().ok()?;
    Some(UNIX_EPOCH + Duration::from_nanos(nanos))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stores the flow hash unless its client has started its share of logins in
/// the current window. KEYS: flow, client counter. ARGV: max per client (0: no
/// bound), window ms, flow expiry (ms since the epoch), then field/value pairs.
const INSERT_FLOW: &str = r#"
if ARGV[1] ~= '0' then
  local n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
  if n > tonumber(ARGV[1]) then return 0 end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
"#;

/// The one-time take, checks included, in one atomic step. KEYS: flow, used
/// marker. ARGV: module, cookie digest (hex, empty for none), now (ms), marker
/// expiry (ms). Answers a status, then the flow's fields on success.
const TAKE_FLOW: &str = r#"
local f = redis.call('HGETALL', KEYS[1])
if #f == 0 then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {'replayed'} end
  return {'unknown'}
end
local h = {}
for i = 1, #f, 2 do h[f[i]] = f[i + 1] end
if h['m'] ~= ARGV[1] then return {'other'} end
if tonumber(h['em']) <= tonumber(ARGV[3]) then
  redis.call('DEL', KEYS[1])
  return {'expired'}
end
if ARGV[2] == '' or h['c'] ~= ARGV[2] then return {'mismatch'} end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PXAT', ARGV[4])
table.insert(f, 1, 'ok')
return f
"#;

/// Records a failure. KEYS: the counter. ARGV: cutoff (µs), at (µs), member,
/// max per key, TTL (ms).
const RECORD_FAILURE: &str = r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[4]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"#;

/// Counts failures at or after a time. KEYS: the counter. ARGV: since (µs,
/// floor), since (20-digit ns). Scores are microseconds; members start with the
/// exact nanoseconds, which decide within the boundary microsecond.
const COUNT_FAILURES: &str = r#"
local n = redis.call('ZCOUNT', KEYS[1], ARGV[1], '+inf')
local edge = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
for _, m in ipairs(edge) do
  if string.sub(m, 1, 20) < ARGV[2] then n = n - 1 end
end
local first = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'LIMIT', 0, #edge + 1)
for _, m in ipairs(first) do
  if string.sub(m, 1, 20) >= ARGV[2] then return {n, m} end
end
return {n, ''}
"#;

/// The scripts, hashed once (Redis runs them by their SHA-1 after the first load).
struct Scripts {
    insert_flow: Script,
    take_flow: Script,
    record_failure: Script,
    count_failures: Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::LazyLock<Scripts> = std::sync::LazyLock::new(|| Scripts {
        insert_flow: Script::new(INSERT_FLOW),
        take_flow: Script::new(TAKE_FLOW),
        record_failure: Script::new(RECORD_FAILURE),
        count_failures: Script::new(COUNT_FAILURES),
    });
    &SCRIPTS
}

impl RedisState {
    /// Connects to the Redis at `url` (`redis://[user:password@]host:port/db`;
    /// `rediss://` for TLS is not built in). The URL may hold a password: read it
    /// from a secret; errors never quote it.
    pub async fn connect(url: &str, options: RedisOptions) -> Result<RedisState, StoreError> {
        if options.prefix.len() > MAX_REDIS_PREFIX_BYTES {
            return Err(StoreError::InvalidValue {
                field: "prefix",
                reason: "longer than MAX_REDIS_PREFIX_BYTES",
            });
        }
        let client = redis::Client::open(url)
            .map_err(|_| StoreError::Backend(OtherError::msg("not a valid redis:// URL")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.response_timeout))
            // Few, short retries: a call during an outage fails within about the
            // timeouts; the next call tries to reconnect again.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(250));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| StoreError::Backend(redis_error(e)))?;
        Ok(RedisState { conn, options })
    }

    /// The options it was connected with.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}{kind}:{rest}", self.options.prefix)
    }

    /// Runs `call` on the connection, bounded by the response timeout (also
    /// while a reconnection is under way).
    async fn run<T, F, Fut>(&self, call: F) -> Result<T, OtherError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let limit = self.options.response_timeout + self.options.connect_timeout;
        match tokio::time::timeout(limit, call(self.conn.clone())).await {
            Ok(result) => result.map_err(redis_error),
            Err(_) => Err(OtherError::msg("redis did not answer in time")),
        }
    }
}

#[async_trait]
impl FlowStore for RedisState {
    async fn insert(&self, flow: PendingFlow) -> Result<(), FlowError> {
        let now = SystemTime::now();
        let ttl = flow.expires_at.duration_since(now).unwrap_or_default();
        let client = flow.client.map(|ip| ip.to_string());
        let mut fields: Vec<(&str, String)> = vec![
            ("m", flow.module.clone()),
            ("n", flow.nonce.clone()),
            ("v", flow.pkce_verifier.clone()),
            ("c", hex(&flow.cookie_digest)),
            ("e", nanos_text(flow.expires_at)),
            ("em", millis(flow.expires_at).to_string()),
        ];
        fields.extend(flow.return_to.clone().map(|r| ("r", r)));
        fields.extend(flow.extra.clone().map(|x| ("x", x)));
        fields.extend(client.clone().map(|i| ("i", i)));
        let mut invocation = scripts().insert_flow.key(self.key("flow", &flow.state));
        invocation.key(self.key("flows-of", client.as_deref().unwrap_or("-")));
        let bound = if client.is_some() {
            self.options.max_flows_per_client.max(1)
        } else {
            0
        };
        invocation
            .arg(bound)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg(millis(flow.expires_at + FLOW_GRACE));
        for (field, value) in &fields {
            invocation.arg(*field).arg(value);
        }
        let stored: i64 = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
            .map_err(FlowError::Backend)?;
        match stored {
            1 => Ok(()),
            0 => Err(FlowError::Full),
            _ => Err(FlowError::Backend(OtherError::msg(
                "a flow with this state exists",
            ))),
        }
    }

    async fn take(
        &self,
        module: &str,
        state: &str,
        cookie_digest: Option<[u8; 32]>,
        now: SystemTime,
    ) -> Result<PendingFlow, FlowError> {
        let mut invocation = scripts().take_flow.key(self.key("flow", state));
        invocation
            .key(self.key("used", state))
            .arg(module)
            .arg(cookie_digest.map(|d| hex(&d)).unwrap_or_default())
            .arg(millis(now))
            .arg(millis(now + FLOW_GRACE));
        let answer: Vec<Vec<u8>> = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
            .map_err(FlowError::Backend)?;
        let (status, fields) = answer.split_first().ok_or(FlowError::Unknown)?;
        match status.as_slice() {
            b"ok" => {}
            b"replayed" => return Err(FlowError::Replayed),
            b"other" => return Err(FlowError::OtherModule),
            b"expired" => return Err(FlowError::Expired),
            b"mismatch" => return Err(FlowError::CookieMismatch),
            _ => return Err(FlowError::Unknown),
        }
        let malformed = || FlowError::Backend(OtherError::msg("malformed flow in redis"));
        let text = |bytes: &Vec<u8>| String::from_utf8(bytes.clone()).map_err(|_| malformed());
        let mut flow = PendingFlowParts::default();
        for pair in fields.chunks(2) {
            let [name, value] = pair else {
                return Err(malformed());
            };
            match name.as_slice() {
                b"n" => flow.nonce = Some(text(value)?),
                b"v" => flow.verifier = Some(text(value)?),
                b"r" => flow.return_to = Some(text(value)?),
                b"x" => flow.extra = Some(text(value)?),
                b"i" => flow.client = text(value)?.parse().ok(),
                b"e" => flow.expires_at = from_nanos_text(value),
                _ => {}
            }
        }
        let (Some(nonce), Some(verifier), Some(expires_at), Some(digest)) =
            (flow.nonce, flow.verifier, flow.expires_at, cookie_digest)
        else {
            return Err(malformed());
        };
        Ok(PendingFlow {
            state: state.to_owned(),
            nonce,
            pkce_verifier: verifier,
            return_to: flow.return_to,
            module: module.to_owned(),
            expires_at,
            cookie_digest: digest,
            extra: flow.extra,
            client: flow.client,
        })
    }
}

#[derive(Default)]
struct PendingFlowParts {
    nonce: Option<String>,
    verifier: Option<String>,
    return_to: Option<String>,
    extra: Option<String>,
    client: Option<std::net::IpAddr>,
    expires_at: Option<SystemTime>,
}

#[async_trait]
impl ReplayCache for RedisState {
    async fn check_and_remember(&self, id: &str, expires_at: SystemTime) -> Result<bool, ReplayError> {
        use sha2::Digest;
        let key = self.key("replay", &hex(&sha2::Sha256::digest(id.as_bytes())));
        let now = SystemTime::now();
        if expires_at <= now {
            // Nothing to remember; a live entry still names a replay.
            let exists: bool = self
                .run(|mut conn| async move { conn.exists(&key).await })
                .await
                .map_err(ReplayError::Backend)?;
            return Ok(!exists);
        }
        let at = millis(expires_at);
        let set: Option<String> = self
            .run(|mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("PXAT")
                    .arg(at)
                    .query_async(&mut conn)
                    .await
            })
            .await
            .map_err(ReplayError::Backend)?;
        Ok(set.is_some())
    }
}

fn micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[async_trait]
impl AttemptStore for RedisState {
    async fn failures_since(&self, key: &str, since: SystemTime) -> Result<FailureCount, StoreError> {
        let mut invocation = scripts().count_failures.key(self.key("throttle", key));
        invocation.arg(micros(since)).arg(nanos_text(since));
        let (count, oldest): (i64, Vec<u8>) = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
            .map_err(StoreError::Backend)?;
        Ok(FailureCount {
            count: u32::try_from(count.max(0)).unwrap_or(u32::MAX),
            oldest: from_nanos_text(&oldest),
        })
    }

    async fn record_failure(&self, key: &str, at: SystemTime, window: Duration) -> Result<(), StoreError> {
        let cutoff = at.checked_sub(window).unwrap_or(UNIX_EPOCH);
        let mut unique = [0u8; 8];
        getrandom::fill(&mut unique).map_err(|_| StoreError::Backend(OtherError::msg("no randomness")))?;
        let member = format!("{}:{}", nanos_text(at), hex(&unique));
        // The counter lives as long as its newest failure counts.
        let ttl = millis(at + window)
            .saturating_sub(millis(SystemTime::now()))
            .max(1_000);
        let mut invocation = scripts().record_failure.key(self.key("throttle", key));
        invocation
            .arg(micros(cutoff))
            .arg(micros(at))
            .arg(member)
            .arg(self.options.max_failures_per_key.max(1))
            .arg(ttl);
        let _: i64 = self
            .run(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
            .map_err(StoreError::Backend)?;
        Ok(())
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        let key = self.key("throttle", key);
        let _: i64 = self
            .run(|mut conn| async move { conn.del(&key).await })
            .await
            .map_err(StoreError::Backend)?;
        Ok(())
    }
}
