-- The consent and opt-out registry (issue 6), in a file of its own beside the vault
-- (`registry.sqlite`): an intake's batch holds the vault file's write lock for minutes, and a
-- citizen's opt-out must not wait for it. It is keyed by person key, and only the vault maps a
-- citizen's credential (a subject handle) to a person. A vault made before has its rows of these
-- tables (vault migration 0003) moved here, ids and all, when it is first opened.

-- Which vault this file goes with: the same 16 random bytes as the vault's
-- `vault_meta.registry_id`. A vault refuses a registry file that names another id, or none.
CREATE TABLE registry_meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    registry_id BLOB NOT NULL CHECK (length(registry_id) = 16)
);

-- Subject handles: random texts the metadata store uses to name a person (a citizen's
-- credential) without holding a person key.
CREATE TABLE subjects (
    handle TEXT PRIMARY KEY,
    person_key BLOB NOT NULL UNIQUE CHECK (length(person_key) = 32)
);

-- The registry: one row per choice (notice delivered, opt-out, consent, withdrawal), append-only.
-- `sealed` = nonce || XChaCha20-Poly1305 of the entry's body (JSON, opaque here: a consent's
-- scope may name diseases), bound to the person key and the time recorded.
CREATE TABLE registry_entries (
    id INTEGER PRIMARY KEY,
    person_key BLOB NOT NULL CHECK (length(person_key) = 32),
    -- Unix time in nanoseconds.
    recorded_at BIGINT NOT NULL,
    -- Whether the entry can change who a use includes (an opt-out, consent or withdrawal; not a
    -- notice): runs read only these. Not identifying; bound into the seal.
    decisive BOOLEAN NOT NULL,
    sealed BLOB NOT NULL
);
CREATE INDEX registry_entries_person ON registry_entries (person_key, id);
CREATE INDEX registry_entries_decisive ON registry_entries (id) WHERE decisive;

-- Nothing is overwritten: a change of mind is a new entry.
CREATE TRIGGER registry_entries_never_updated BEFORE UPDATE ON registry_entries
BEGIN SELECT RAISE(ABORT, 'registry entries are never changed'); END;
CREATE TRIGGER registry_entries_never_deleted BEFORE DELETE ON registry_entries
BEGIN SELECT RAISE(ABORT, 'registry entries are never deleted'); END;
