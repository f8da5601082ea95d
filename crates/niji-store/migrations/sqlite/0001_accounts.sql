-- Accounts, roles, sessions. Times are Unix seconds (UTC) so the same SQL serves PostgreSQL.
CREATE TABLE organizations (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id               INTEGER PRIMARY KEY,
    username         TEXT NOT NULL UNIQUE,
    display_name     TEXT NOT NULL,
    organization_id  INTEGER REFERENCES organizations(id),
    password_hash    TEXT NOT NULL,
    -- TOTP secret sealed with the instance's accounts key (never stored in the clear).
    totp_secret      BLOB,
    totp_enabled     BOOLEAN NOT NULL DEFAULT FALSE,
    -- Highest TOTP time step accepted so far: a code is never accepted twice.
    totp_last_step   BIGINT,
    disabled         BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT NOT NULL
);

-- Role grants are never deleted: a revocation is recorded beside the grant.
CREATE TABLE role_grants (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    role        TEXT NOT NULL,
    granted_by  TEXT NOT NULL,
    granted_at  BIGINT NOT NULL,
    revoked_by  TEXT,
    revoked_at  BIGINT
);
CREATE INDEX role_grants_user ON role_grants(user_id);

-- Sessions are looked up by the SHA-256 of their cookie token.
CREATE TABLE sessions (
    token_hash  BLOB PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    stage       TEXT NOT NULL,
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    token_hash  BLOB NOT NULL UNIQUE,
    label       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

-- Failed logins for throttling, keyed by a hash of the name typed (which may be a
-- mistyped password, so it is never stored as typed).
CREATE TABLE login_failures (
    id            INTEGER PRIMARY KEY,
    username_key  TEXT NOT NULL,
    at            BIGINT NOT NULL
);
CREATE INDEX login_failures_key ON login_failures(username_key, at);
