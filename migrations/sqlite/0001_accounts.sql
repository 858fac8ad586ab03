-- authchain SQLite store: accounts, external links, roles, throttle counters and
-- directory-sync cookies. Timestamps are INTEGER nanoseconds since the Unix epoch
-- (UTC), so `SystemTime` values round-trip exactly (range 1677..2262).

-- `id` is the `AccountId` (its decimal text). AUTOINCREMENT: an id is never reused
-- after a deletion, so a host session naming a deleted account cannot wake up as
-- somebody else.
CREATE TABLE accounts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    login         TEXT    NOT NULL,
    -- Rust's `str::to_lowercase(login)`: SQLite's lower() folds ASCII only.
    login_key     TEXT    NOT NULL,
    email         TEXT,
    email_key     TEXT,
    display_name  TEXT,
    password_hash TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    last_login    INTEGER,
    CHECK ((email IS NULL) = (email_key IS NULL))
);
-- Login names are unique case-insensitively; email addresses are not unique.
CREATE UNIQUE INDEX accounts_login_key ON accounts (login_key);
CREATE INDEX accounts_email_key ON accounts (email_key) WHERE email_key IS NOT NULL;

-- External identities: one account per (provider, subject).
CREATE TABLE account_links (
    provider   TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, subject)
) WITHOUT ROWID;
CREATE INDEX account_links_account ON account_links (account_id);

-- Roles granted by hand; logins never remove them.
CREATE TABLE account_roles (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role       TEXT    NOT NULL,
    PRIMARY KEY (account_id, role)
) WITHOUT ROWID;

-- Providers whose role mapping manages roles of the account (a row even when the
-- mapping gave no role, so "mapped to nothing" differs from "never mapped") ...
CREATE TABLE account_role_sources (
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    provider   TEXT    NOT NULL,
    PRIMARY KEY (account_id, provider)
) WITHOUT ROWID;

-- ... and the roles each of them mapped, replaced as a whole per provider.
CREATE TABLE account_mapped_roles (
    account_id INTEGER NOT NULL,
    provider   TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    PRIMARY KEY (account_id, provider, role),
    FOREIGN KEY (account_id, provider)
        REFERENCES account_role_sources (account_id, provider) ON DELETE CASCADE
) WITHOUT ROWID;

-- Throttle counters: one row per failure.
CREATE TABLE login_failures (
    key TEXT    NOT NULL,
    at  INTEGER NOT NULL
);
CREATE INDEX login_failures_key_at ON login_failures (key, at);
CREATE INDEX login_failures_at ON login_failures (at);

-- Directory synchroniser: where each source stopped (RFC 4533 cookie).
CREATE TABLE sync_state (
    source     TEXT    PRIMARY KEY NOT NULL,
    cookie     BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
