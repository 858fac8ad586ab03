-- authchain PostgreSQL store: the tables of the SQLite store (accounts, links,
-- roles, throttle counters, directory sync, public keys) plus the state several
-- replicas share: pending redirect logins and the replay cache. Timestamps are
-- BIGINT nanoseconds since the Unix epoch (UTC), so `SystemTime` values round-trip
-- exactly, as in the SQLite store.

-- `id` is the `AccountId` (its decimal text); a sequence never hands an id out twice.
-- Indexed names are at most 1000 bytes (MAX_PG_NAME_BYTES, checked by the store).
CREATE TABLE accounts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    login         TEXT    NOT NULL,
    -- Rust's `str::to_lowercase(login)` (lower() depends on the collation).
    login_key     TEXT    NOT NULL,
    email         TEXT,
    email_key     TEXT,
    display_name  TEXT,
    password_hash TEXT,
    disabled      BOOLEAN NOT NULL DEFAULT false,
    created_at    BIGINT  NOT NULL,
    last_login    BIGINT,
    CHECK ((email IS NULL) = (email_key IS NULL))
);
CREATE UNIQUE INDEX accounts_login_key ON accounts (login_key);
CREATE INDEX accounts_email_key ON accounts (email_key) WHERE email_key IS NOT NULL;

CREATE TABLE account_links (
    provider   TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX account_links_account ON account_links (account_id);

CREATE TABLE account_roles (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role       TEXT   NOT NULL,
    PRIMARY KEY (account_id, role)
);

CREATE TABLE account_role_sources (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    provider   TEXT   NOT NULL,
    PRIMARY KEY (account_id, provider)
);

CREATE TABLE account_mapped_roles (
    account_id BIGINT NOT NULL,
    provider   TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    PRIMARY KEY (account_id, provider, role),
    FOREIGN KEY (account_id, provider)
        REFERENCES account_role_sources (account_id, provider) ON DELETE CASCADE
);

-- Throttle counters: one row per failure. `key` holds the key's UTF-8 bytes (a
-- login name typed by anyone may hold a NUL, which `text` cannot).
CREATE TABLE login_failures (
    id  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key BYTEA  NOT NULL,
    at  BIGINT NOT NULL
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);
CREATE INDEX login_failures_at ON login_failures (at);

CREATE TABLE sync_state (
    source     TEXT   PRIMARY KEY,
    cookie     BYTEA  NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE account_keys (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    family     TEXT   NOT NULL CHECK (family IN ('rsa', 'p256', 'ed25519')),
    spki       BYTEA  NOT NULL CHECK (length(spki) BETWEEN 1 AND 2048),
    label      TEXT   CHECK (label IS NULL OR octet_length(label) <= 128),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX account_keys_account_spki ON account_keys (account_id, spki);

-- Pending redirect logins (`FlowStore`). A consumed flow keeps its row with
-- `used` set until it would have expired, so a replay is named as one.
CREATE TABLE pending_flows (
    state         TEXT    PRIMARY KEY,
    module        TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    pkce_verifier TEXT    NOT NULL,
    return_to     TEXT,
    extra         TEXT,
    client        TEXT,
    cookie_digest BYTEA   NOT NULL CHECK (length(cookie_digest) = 32),
    expires_at    BIGINT  NOT NULL,
    used          BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX pending_flows_expires ON pending_flows (expires_at);
CREATE INDEX pending_flows_client ON pending_flows (client) WHERE client IS NOT NULL AND NOT used;

-- Ids accepted once (`ReplayCache`), until they expire; `id` is the SHA-256 of
-- the id, so any length takes one row of fixed size.
CREATE TABLE replay_ids (
    id         BYTEA  PRIMARY KEY CHECK (length(id) = 32),
    expires_at BIGINT NOT NULL
);
CREATE INDEX replay_ids_expires ON replay_ids (expires_at);
