-- Issue 6: citizens' credentials, the runs that used data (the receipts), and outcomes.

-- A citizen account is an ordinary account with the `citizen` role; this row says whose data it
-- reaches. The person is named by a vault subject handle (random text), never by a person key:
-- only the identity vault maps a handle to a person.
CREATE TABLE citizen_credentials (
    user_id       INTEGER PRIMARY KEY REFERENCES users(id),
    subject       TEXT NOT NULL,
    -- The data holder that issued the credential.
    holder        TEXT NOT NULL,
    -- 'self' (the person) | 'parent' (of a minor) | 'guardian' (of a ward)
    acting_as     TEXT NOT NULL,
    -- ISO date after which the credential no longer signs in (a parent's ends at the ward's
    -- majority); NULL: no end.
    valid_until   TEXT,
    issued_by     TEXT NOT NULL,
    issued_at     BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX citizen_credentials_subject ON citizen_credentials(subject);

-- Every run of a permit against real data (interactive queries now; jobs, extracts and dummy-data
-- refreshes later): what it read and which version of the consent registry it applied. A
-- citizen's "who used my data" is derived from these rows; released runs are the register's
-- releases.
CREATE TABLE analysis_runs (
    id                  INTEGER PRIMARY KEY,
    permit_id           INTEGER NOT NULL REFERENCES permits(id),
    user_id             INTEGER NOT NULL REFERENCES users(id),
    -- 'query'
    kind                TEXT NOT NULL,
    -- hex SHA-256 of the code run (never its text)
    code_sha256         TEXT NOT NULL,
    -- 'released' (a checked output was shown) | 'refused'
    outcome             TEXT NOT NULL,
    -- The consent registry's version (its last entry id) the run applied: the receipt.
    registry_version    BIGINT NOT NULL,
    -- Number of persons the registry excluded from the run's tables (operators only).
    excluded_persons    BIGINT NOT NULL,
    -- JSON [{"dataset": "...", "version": n}]
    datasets            TEXT NOT NULL,
    started_at          BIGINT NOT NULL,
    finished_at         BIGINT NOT NULL,
    log_index           BIGINT,
    -- When the permit's users were reminded to report outcomes of this release.
    outcome_reminder_at BIGINT
);
CREATE INDEX analysis_runs_permit ON analysis_runs(permit_id);

-- Outcomes the users of a permit report: papers, products, reports.
CREATE TABLE permit_outcomes (
    id            INTEGER PRIMARY KEY,
    permit_id     INTEGER NOT NULL REFERENCES permits(id),
    -- 'paper' | 'product' | 'report' | 'other'
    kind          TEXT NOT NULL,
    title         TEXT NOT NULL,
    -- DOI or URL
    reference     TEXT NOT NULL,
    -- ISO date
    published_on  TEXT NOT NULL,
    reported_by   INTEGER NOT NULL REFERENCES users(id),
    reported_at   BIGINT NOT NULL,
    log_index     BIGINT
);
CREATE INDEX permit_outcomes_permit ON permit_outcomes(permit_id);

-- The log entry of the permit's issuance (`permit.issued`), for the public register's proofs.
ALTER TABLE permits ADD COLUMN log_index BIGINT;
