-- Public keys registered to accounts, for key-based login (the `key_login`
-- module). `spki` is the DER SubjectPublicKeyInfo as registered; the store does not
-- parse it. Timestamps as in 0001 (INTEGER nanoseconds since the Unix epoch).

-- `id` is the `KeyId` (its decimal text); AUTOINCREMENT: never reused, so a
-- revocation naming an old id cannot hit a newer key.
CREATE TABLE account_keys (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    family     TEXT    NOT NULL CHECK (family IN ('rsa', 'p256', 'ed25519')),
    spki       BLOB    NOT NULL CHECK (length(spki) BETWEEN 1 AND 2048),
    label      TEXT    CHECK (label IS NULL OR length(CAST(label AS BLOB)) <= 128),
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
-- The same key bytes once per account (a revoked key cannot be registered again
-- while its row is kept).
CREATE UNIQUE INDEX account_keys_account_spki ON account_keys (account_id, spki);
