-- Issue 7: anonymized extracts of permits on the anonymized track. An extract is produced inside
-- the platform, approved by an operator, then downloaded by a researcher named on the permit.
CREATE TABLE extracts (
    id              INTEGER PRIMARY KEY,
    permit_id       INTEGER NOT NULL REFERENCES permits(id),
    requested_by    INTEGER NOT NULL REFERENCES users(id),
    dataset         TEXT NOT NULL,
    dataset_version BIGINT NOT NULL,
    table_name      TEXT NOT NULL,
    -- The anonymization configuration (TOML text, as `niji anonymize` reads it).
    config          TEXT NOT NULL,
    -- 'awaiting_approval' | 'approved' | 'rejected'
    status          TEXT NOT NULL,
    -- The JSON report (risk before and after, information loss, rules applied, levels).
    report          TEXT NOT NULL,
    -- hex SHA-256 of the extract's CSV bytes, and its rows.
    file_sha256     TEXT NOT NULL,
    rows_out        BIGINT NOT NULL,
    -- The analysis run that read the data (its consent registry receipt).
    run_id          INTEGER NOT NULL REFERENCES analysis_runs(id),
    decided_by      INTEGER REFERENCES users(id),
    decided_at      BIGINT,
    -- A fixed reason code when rejected.
    reason          TEXT,
    created_at      BIGINT NOT NULL,
    log_index       BIGINT
);
CREATE INDEX extracts_permit ON extracts(permit_id);
