-- Data keys (one per dataset version and purpose), each wrapped by the instance's master key.
-- The master key itself is never stored here; `master_fingerprint` names which master key
-- wrapped the row, so a wrong master key is reported before any decryption is tried.
CREATE TABLE data_keys (
    id                  TEXT PRIMARY KEY,
    wrapped             BLOB NOT NULL,
    master_fingerprint  TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    rewrapped_at        BIGINT
);
