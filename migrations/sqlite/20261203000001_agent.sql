-- The AI host's memory (the agent role). TEXT and BIGINT only, so the same
-- statements serve SQLite and PostgreSQL.

-- One row per subject the host remembers: `user:<handle>`, `lot:<auction id>`,
-- `campaign:<id>`. `summary` holds what was folded from entries that were dropped,
-- so memory stays bounded however long the show runs.
CREATE TABLE agent_subjects (
    subject       TEXT   PRIMARY KEY,
    summary       TEXT   NOT NULL,
    -- how many entries the summary stands for
    folded        BIGINT NOT NULL,
    bids          BIGINT NOT NULL,
    wins          BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- The recent entries of each subject, at most a few dozen (older ones are folded).
CREATE TABLE agent_memories (
    id      TEXT   PRIMARY KEY,
    subject TEXT   NOT NULL,
    at_ms   BIGINT NOT NULL,
    -- bid | win | said | answered | lot | result
    kind    TEXT   NOT NULL,
    text    TEXT   NOT NULL
);
CREATE INDEX agent_memories_subject ON agent_memories (subject, at_ms);

-- The host's own state across restarts (the active character).
CREATE TABLE agent_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
