//! The state processes on one host share besides accounts: pending redirect logins
//! ([`FlowStore`]) and ids accepted once ([`ReplayCache`]).

use std::time::SystemTime;

use async_trait::async_trait;
use sqlx::SqlitePool;

use super::SqliteStore;
use crate::StoreError;
use crate::account::sql::{DEFAULT_MAX_PENDING_FLOWS_PER_CLIENT, purge_due};
use crate::account::sql::{refusal, replay_key, taken_flow, to_nanos, to_nanos_saturating};
use crate::error::OtherError;
use crate::flow::{FlowError, FlowStore, PendingFlow, ReplayCache, ReplayError};

fn flow_backend(err: sqlx::Error) -> FlowError {
    FlowError::Backend(OtherError::new(err))
}

fn flow_store_error(err: StoreError) -> FlowError {
    FlowError::Backend(OtherError::new(err))
}

fn replay_backend(err: sqlx::Error) -> ReplayError {
    ReplayError::Backend(OtherError::new(err))
}

pub(super) async fn purge_flows(pool: &SqlitePool, now: SystemTime) -> Result<u64, StoreError> {
    let result = sqlx::query("DELETE FROM pending_flows WHERE expires_at <= ?1")
        .bind(to_nanos_saturating(now))
        .execute(pool)
        .await
        .map_err(crate::account::sql::backend)?;
    Ok(result.rows_affected())
}

pub(super) async fn purge_replay_ids(pool: &SqlitePool, now: SystemTime) -> Result<u64, StoreError> {
    let result = sqlx::query("DELETE FROM replay_ids WHERE expires_at <= ?1")
        .bind(to_nanos_saturating(now))
        .execute(pool)
        .await
        .map_err(crate::account::sql::backend)?;
    Ok(result.rows_affected())
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn insert(&self, flow: PendingFlow) -> Result<(), FlowError> {
        let _turn = self.write_turn().await;
        let now = SystemTime::now();
        if purge_due(&self.attempts.flows) {
            purge_flows(&self.pool, now).await.map_err(flow_store_error)?;
        }
        let client = flow.client.map(|ip| ip.to_string());
        // The per-client bound and the insert in one statement: a flood from one
        // address inserts nothing once it holds its share of live logins.
        let inserted = sqlx::query(
            "INSERT INTO pending_flows \
               (state, module, nonce, pkce_verifier, return_to, extra, client, cookie_digest, expires_at) \
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 \
             WHERE ?7 IS NULL OR (SELECT count(*) FROM pending_flows \
               WHERE client = ?7 AND used = 0 AND expires_at > ?10) < ?11",
        )
        .bind(&flow.state)
        .bind(&flow.module)
        .bind(&flow.nonce)
        .bind(&flow.pkce_verifier)
        .bind(&flow.return_to)
        .bind(&flow.extra)
        .bind(&client)
        .bind(flow.cookie_digest.as_slice())
        .bind(to_nanos(flow.expires_at).map_err(flow_store_error)?)
        .bind(to_nanos_saturating(now))
        .bind(i64::from(DEFAULT_MAX_PENDING_FLOWS_PER_CLIENT))
        .execute(&self.pool)
        .await
        .map_err(flow_backend)?;
        if inserted.rows_affected() == 0 {
            return Err(FlowError::Full);
        }
        Ok(())
    }

    async fn take(
        &self,
        module: &str,
        state: &str,
        cookie_digest: Option<[u8; 32]>,
        now: SystemTime,
    ) -> Result<PendingFlow, FlowError> {
        let _turn = self.write_turn().await;
        let now_nanos = to_nanos_saturating(now);
        if let Some(digest) = cookie_digest {
            // The one-time take: of replicas racing for one state, one UPDATE wins.
            let taken = sqlx::query(
                "UPDATE pending_flows SET used = 1 \
                 WHERE state = ?1 AND module = ?2 AND used = 0 AND expires_at > ?3 AND cookie_digest = ?4 \
                 RETURNING nonce, pkce_verifier, return_to, extra, client, expires_at",
            )
            .bind(state)
            .bind(module)
            .bind(now_nanos)
            .bind(digest.as_slice())
            .fetch_optional(&self.pool)
            .await
            .map_err(flow_backend)?;
            if let Some(row) = taken {
                return taken_flow(&row, state, module, digest).map_err(flow_backend);
            }
        }
        // Not taken: say why, in the memory store's order.
        let found: Option<(String, bool, i64)> =
            sqlx::query_as("SELECT module, used, expires_at FROM pending_flows WHERE state = ?1")
                .bind(state)
                .fetch_optional(&self.pool)
                .await
                .map_err(flow_backend)?;
        let refused = refusal(found, module, now_nanos);
        if refused == FlowError::Expired {
            sqlx::query("DELETE FROM pending_flows WHERE state = ?1 AND used = 0")
                .bind(state)
                .execute(&self.pool)
                .await
                .map_err(flow_backend)?;
        }
        Err(refused)
    }
}

#[async_trait]
impl ReplayCache for SqliteStore {
    async fn check_and_remember(&self, id: &str, expires_at: SystemTime) -> Result<bool, ReplayError> {
        let _turn = self.write_turn().await;
        let now = SystemTime::now();
        if purge_due(&self.attempts.replays) {
            purge_replay_ids(&self.pool, now)
                .await
                .map_err(|e| ReplayError::Backend(OtherError::new(e)))?;
        }
        // Inserted, or an expired entry taken over: first use. A live entry: replay.
        let fresh: Option<i64> = sqlx::query_scalar(
            "INSERT INTO replay_ids (id, expires_at) VALUES (?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at \
               WHERE replay_ids.expires_at <= ?3 \
             RETURNING 1",
        )
        .bind(replay_key(id))
        .bind(to_nanos_saturating(expires_at))
        .bind(to_nanos_saturating(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(replay_backend)?;
        Ok(fresh.is_some())
    }
}
