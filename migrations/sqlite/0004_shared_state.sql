-- State shared by the processes on one host besides accounts: pending redirect
-- logins (`FlowStore`) and ids accepted once (`ReplayCache`). Timestamps as in
-- 0001 (INTEGER nanoseconds since the Unix epoch).

-- A consumed flow keeps its row with `used` set until it would have expired, so
-- a replay is named as one.
CREATE TABLE pending_flows (
    state         TEXT    PRIMARY KEY NOT NULL,
    module        TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    pkce_verifier TEXT    NOT NULL,
    return_to     TEXT,
    extra         TEXT,
    client        TEXT,
    cookie_digest BLOB    NOT NULL CHECK (length(cookie_digest) = 32),
    expires_at    INTEGER NOT NULL,
    used          INTEGER NOT NULL DEFAULT 0 CHECK (used IN (0, 1))
) WITHOUT ROWID;
CREATE INDEX pending_flows_expires ON pending_flows (expires_at);
CREATE INDEX pending_flows_client ON pending_flows (client) WHERE client IS NOT NULL AND used = 0;

-- `id` is the SHA-256 of the id, so any length takes one row of fixed size.
CREATE TABLE replay_ids (
    id         BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 32),
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX replay_ids_expires ON replay_ids (expires_at);
