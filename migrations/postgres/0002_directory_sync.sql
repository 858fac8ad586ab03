-- Directory synchroniser (the PostgreSQL store as a `DirectoryTarget`): the
-- entries each source mirrors, and group members, as in the SQLite store.
-- `dn_key` is the DN lower-cased with the spaces around separators removed, so
-- that member values written differently from the entry's DN still match.
-- Indexed values are at most MAX_PG_NAME_BYTES (checked by the store: an entry
-- with a longer one is skipped).

CREATE TABLE directory_entries (
    source     TEXT   NOT NULL,
    -- RFC 4533 syncUUID (entryUUID text): what deletions name.
    sync_id    TEXT   NOT NULL,
    kind       TEXT   NOT NULL CHECK (kind IN ('user', 'group')),
    dn         TEXT   NOT NULL,
    dn_key     TEXT   NOT NULL,
    -- The login name (users) or the group name (groups).
    name       TEXT   NOT NULL,
    -- Users: the local account. Deleting the account forgets the entry, so the
    -- next change to it is a first sight again.
    account_id BIGINT REFERENCES accounts (id) ON DELETE CASCADE,
    PRIMARY KEY (source, sync_id),
    CHECK ((kind = 'user') = (account_id IS NOT NULL))
);
CREATE INDEX directory_entries_dn ON directory_entries (source, kind, dn_key);
CREATE INDEX directory_entries_account ON directory_entries (account_id) WHERE account_id IS NOT NULL;

-- Group membership by member DN, as the group entries list it (memberOf is not
-- replicated). Members that are no synced user are kept and match nobody.
CREATE TABLE directory_members (
    source        TEXT NOT NULL,
    group_sync_id TEXT NOT NULL,
    member_dn_key TEXT NOT NULL,
    PRIMARY KEY (source, group_sync_id, member_dn_key),
    FOREIGN KEY (source, group_sync_id)
        REFERENCES directory_entries (source, sync_id) ON DELETE CASCADE
);
CREATE INDEX directory_members_member ON directory_members (source, member_dn_key);
