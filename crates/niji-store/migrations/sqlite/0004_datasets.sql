-- Datasets handed in by data holders (issue 3) and their versions. A version row is written in
-- state 'writing' before anything else of an intake, and set to 'committed' last: a version
-- exists only when it is committed; recovery deletes 'writing' rows and what they left behind.
-- Counters are BIGINT (not INTEGER) so that a PostgreSQL schema decodes them as the same i64.
CREATE TABLE datasets (
    id              INTEGER PRIMARY KEY,
    -- Slug chosen by the holder: [a-z0-9-], 1..64 (checked by the caller).
    name            TEXT NOT NULL UNIQUE,
    holder_id       INTEGER NOT NULL REFERENCES organizations(id),
    -- 'ehr' | 'claims' | 'registry' | 'mixed'
    kind            TEXT NOT NULL,
    title_ja        TEXT NOT NULL,
    title_en        TEXT NOT NULL,
    description_ja  TEXT NOT NULL,
    description_en  TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX datasets_holder ON datasets(holder_id);

CREATE TABLE dataset_versions (
    id                INTEGER PRIMARY KEY,
    dataset_id        INTEGER NOT NULL REFERENCES datasets(id),
    -- 1, 2, ... per dataset.
    number            BIGINT NOT NULL,
    -- 'writing' | 'committed'
    state             TEXT NOT NULL,
    -- Actor id, e.g. 'user:3'.
    submitted_by      TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    committed_at      BIGINT,
    files             BIGINT NOT NULL DEFAULT 0,
    records_accepted  BIGINT NOT NULL DEFAULT 0,
    -- Quarantined records (only when the holder accepted them).
    records_rejected  BIGINT NOT NULL DEFAULT 0,
    warnings          BIGINT NOT NULL DEFAULT 0,
    persons           BIGINT NOT NULL DEFAULT 0,
    -- Persons also present in another dataset.
    persons_shared    BIGINT NOT NULL DEFAULT 0,
    link_records      BIGINT NOT NULL DEFAULT 0,
    identifier_links  BIGINT NOT NULL DEFAULT 0,
    name_links        BIGINT NOT NULL DEFAULT 0,
    -- ISO dates of the earliest / latest event.
    coverage_from     TEXT,
    coverage_to       TEXT,
    -- Index of the `dataset.version.committed` entry in the transparency log; NULL between the
    -- commit and the log append (recovery appends the entry for such rows).
    log_index         BIGINT,
    UNIQUE (dataset_id, number)
);
CREATE INDEX dataset_versions_state ON dataset_versions(state);

-- Per standard table of a version. `row_count`, not `rows`: ROWS is an SQL keyword.
CREATE TABLE dataset_version_tables (
    version_id     INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
    table_name     TEXT NOT NULL,
    row_count      BIGINT NOT NULL,
    persons        BIGINT NOT NULL,
    coverage_from  TEXT,
    coverage_to    TEXT,
    PRIMARY KEY (version_id, table_name)
);

-- Problems of quarantined records: locations and fixed reasons only, never a value.
CREATE TABLE dataset_version_problems (
    version_id  INTEGER NOT NULL REFERENCES dataset_versions(id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    severity    TEXT NOT NULL,
    file        TEXT NOT NULL,
    location    TEXT NOT NULL,
    field       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (version_id, seq)
);
