-- Applications for data use, their review and the data permits they lead to (issue 4).
-- Complex values (an application's form, a permit's policy, triage and decision reasons, a
-- consent scope) are JSON text produced by the caller: the store keeps them as given. Which
-- statuses exist and which transitions are legal is decided by the caller; the store offers
-- compare-and-set updates so that two concurrent transitions cannot both win.

-- What the data subjects of a dataset consented to, replaced as a whole.
CREATE TABLE dataset_consent_scopes (
    dataset_id  INTEGER PRIMARY KEY REFERENCES datasets(id),
    -- JSON.
    scope       TEXT NOT NULL,
    -- Actor id, e.g. 'user:3'.
    updated_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Published review criteria and tariffs, as published (TOML text). Never edited: a change is a
-- new version.
CREATE TABLE review_criteria (
    version       TEXT PRIMARY KEY,
    -- ISO date.
    published_on  TEXT NOT NULL,
    body          TEXT NOT NULL,
    recorded_at   BIGINT NOT NULL
);

CREATE TABLE tariffs (
    version       TEXT PRIMARY KEY,
    published_on  TEXT NOT NULL,
    body          TEXT NOT NULL,
    recorded_at   BIGINT NOT NULL
);

-- Completed training courses (e.g. research ethics) of a user.
CREATE TABLE accreditations (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    course        TEXT NOT NULL,
    -- ISO dates.
    completed_on  TEXT NOT NULL,
    expires_on    TEXT NOT NULL,
    recorded_by   TEXT NOT NULL,
    recorded_at   BIGINT NOT NULL
);
CREATE INDEX accreditations_user ON accreditations(user_id);

CREATE TABLE committees (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

-- Members are never deleted (votes refer to them): a member who leaves is deactivated.
CREATE TABLE committee_members (
    id              INTEGER PRIMARY KEY,
    committee_id    INTEGER NOT NULL REFERENCES committees(id),
    -- NULL for a member without an account (an external member known by name only).
    user_id         INTEGER REFERENCES users(id),
    display_name    TEXT NOT NULL,
    -- Field of expertise, e.g. 'medicine', 'law', 'ethics', 'lay'.
    field           TEXT NOT NULL,
    -- Not affiliated with the operator.
    external        BOOLEAN NOT NULL,
    gender          TEXT NOT NULL,
    active          BOOLEAN NOT NULL DEFAULT TRUE,
    added_at        BIGINT NOT NULL,
    deactivated_at  BIGINT
);
CREATE INDEX committee_members_committee ON committee_members(committee_id);

CREATE TABLE applications (
    id                INTEGER PRIMARY KEY,
    applicant_id      INTEGER NOT NULL REFERENCES users(id),
    organization_id   INTEGER REFERENCES organizations(id),
    title             TEXT NOT NULL,
    -- 'draft', 'submitted', ... (decided by the caller).
    status            TEXT NOT NULL,
    -- JSON.
    form              TEXT NOT NULL,
    -- Set by triage.
    case_code         TEXT,
    tier              TEXT,
    -- JSON.
    reasons           TEXT,
    criteria_version  TEXT,
    fee_yen           BIGINT,
    committee_id      INTEGER REFERENCES committees(id),
    submitted_at      BIGINT,
    deadline_at       BIGINT,
    decided_at        BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX applications_applicant ON applications(applicant_id);
CREATE INDEX applications_status ON applications(status);

-- The history of an application, in order of id.
CREATE TABLE application_events (
    id              INTEGER PRIMARY KEY,
    application_id  INTEGER NOT NULL REFERENCES applications(id),
    at              BIGINT NOT NULL,
    actor           TEXT NOT NULL,
    kind            TEXT NOT NULL,
    note            TEXT NOT NULL,
    -- Index of the event's transparency-log entry, when it has one.
    log_index       BIGINT
);
CREATE INDEX application_events_application ON application_events(application_id);

CREATE TABLE review_conflicts (
    application_id  INTEGER NOT NULL REFERENCES applications(id),
    member_id       INTEGER NOT NULL REFERENCES committee_members(id),
    declared_at     BIGINT NOT NULL,
    PRIMARY KEY (application_id, member_id)
);

-- One vote per member and application: a vote is never changed.
CREATE TABLE review_votes (
    application_id  INTEGER NOT NULL REFERENCES applications(id),
    member_id       INTEGER NOT NULL REFERENCES committee_members(id),
    vote            TEXT NOT NULL,
    opinion         TEXT NOT NULL,
    cast_at         BIGINT NOT NULL,
    PRIMARY KEY (application_id, member_id)
);

-- One decision per application.
CREATE TABLE review_decisions (
    application_id    INTEGER PRIMARY KEY REFERENCES applications(id),
    decision          TEXT NOT NULL,
    -- JSON.
    reasons           TEXT NOT NULL,
    criteria_version  TEXT NOT NULL,
    votes_for         BIGINT NOT NULL,
    votes_total       BIGINT NOT NULL,
    decided_by        TEXT NOT NULL,
    decided_at        BIGINT NOT NULL
);

-- Data permits, versioned 1, 2, ... per application.
CREATE TABLE permits (
    id              INTEGER PRIMARY KEY,
    application_id  INTEGER NOT NULL REFERENCES applications(id),
    version         BIGINT NOT NULL,
    -- 'active' | 'suspended' | 'revoked' | 'expired' | 'superseded'
    status          TEXT NOT NULL,
    -- JSON.
    policy          TEXT NOT NULL,
    -- ISO dates.
    starts_on       TEXT NOT NULL,
    expires_on      TEXT NOT NULL,
    -- Id of the permit's data key. Not a foreign key: the key is deleted (crypto-shredded)
    -- when the permit ends, and the permit stays on record.
    key_id          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    changed_at      BIGINT NOT NULL,
    UNIQUE (application_id, version)
);
CREATE INDEX permits_status ON permits(status);

-- Records that a permit's data key was destroyed.
CREATE TABLE deletion_certificates (
    id            INTEGER PRIMARY KEY,
    permit_id     INTEGER NOT NULL REFERENCES permits(id),
    key_id        TEXT NOT NULL,
    reason        TEXT NOT NULL,
    destroyed_at  BIGINT NOT NULL,
    log_index     BIGINT
);
CREATE INDEX deletion_certificates_permit ON deletion_certificates(permit_id);

-- Messages to send (e-mail), kept after sending as the portal's notifications.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER REFERENCES users(id),
    address     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    sent_at     BIGINT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    last_error  TEXT
);
CREATE INDEX outbox_pending ON outbox(sent_at, id);
CREATE INDEX outbox_user ON outbox(user_id);
