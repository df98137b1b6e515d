-- The operator's console (the admin role): accounts, sessions, the audit trail,
-- the block list and settings changed while running. TEXT and BIGINT only, so the
-- same statements serve SQLite and PostgreSQL.

-- Local console accounts. `password_hash` is an Argon2id PHC string.
CREATE TABLE admin_accounts (
    username      TEXT   PRIMARY KEY,
    role          TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- Signed-in browsers. The cookie holds a random secret; only its SHA-256 is kept,
-- so a copy of the database signs nobody in.
CREATE TABLE admin_sessions (
    id_hash         TEXT   PRIMARY KEY,
    username        TEXT   NOT NULL,
    role            TEXT   NOT NULL,
    csrf            TEXT   NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    last_seen_at_ms BIGINT NOT NULL,
    -- set when signed out or revoked; such a session signs nobody in
    revoked_at_ms   BIGINT
);
CREATE INDEX admin_sessions_username ON admin_sessions (username);

-- Every write through any API: who (account and role), what (method, path, note),
-- when, and how it ended (HTTP status).
CREATE TABLE admin_audit (
    id      TEXT   PRIMARY KEY,
    at_ms   BIGINT NOT NULL,
    account TEXT,
    role    TEXT,
    via     TEXT   NOT NULL,
    method  TEXT   NOT NULL,
    path    TEXT   NOT NULL,
    status  BIGINT NOT NULL,
    note    TEXT   NOT NULL
);
CREATE INDEX admin_audit_at ON admin_audit (at_ms);

-- Bidders refused `BIDDER_BLOCKED`, beside those of `BLOCKED_BIDDERS`: an id or an
-- `@handle`, lower case.
CREATE TABLE blocked_bidders (
    entry         TEXT   PRIMARY KEY,
    reason        TEXT   NOT NULL,
    added_by      TEXT   NOT NULL,
    added_at_ms   BIGINT NOT NULL
);

-- Settings changed while running (`POST /api/admin/config`); they win over the
-- environment and the file until removed.
CREATE TABLE runtime_settings (
    name          TEXT   PRIMARY KEY,
    value         TEXT   NOT NULL,
    changed_by    TEXT   NOT NULL,
    changed_at_ms BIGINT NOT NULL
);
