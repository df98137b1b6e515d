-- The X integration (the social role). TEXT and BIGINT only, so the same statements
-- serve SQLite and PostgreSQL.

-- Posts read from X that are addressed to the show, each once: the key is the post's
-- first version's id, whatever the number of times X or a restart delivers it.
CREATE TABLE social_posts (
    post_id         TEXT   PRIMARY KEY,
    author_id       TEXT   NOT NULL,
    author_handle   TEXT,
    text            TEXT   NOT NULL,
    created_at_ms   BIGINT NOT NULL,
    received_at_ms  BIGINT NOT NULL,
    conversation_id TEXT,
    -- 1 when the post mentions the account or quotes it: X lets the show reply.
    summons         BIGINT NOT NULL,
    -- received (stored, not decided yet) | decided | ignored (not a bid)
    state           TEXT   NOT NULL,
    auction_id      TEXT,
    -- JSON: what was decided (status, reason, amount, min_bid)
    outcome         TEXT
);
CREATE INDEX social_posts_state ON social_posts (state, created_at_ms);

-- What the show posts on X, stored before it is sent. The key is the write's
-- idempotency key (the post it answers, or the lot and what is said of it), so a
-- crash and restart never posts twice.
CREATE TABLE social_writes (
    key           TEXT   PRIMARY KEY,
    kind          TEXT   NOT NULL,
    priority      BIGINT NOT NULL,
    auction_id    TEXT,
    in_reply_to   TEXT,
    text          TEXT   NOT NULL,
    -- pending | sent | not_repliable | batched | dropped
    state         TEXT   NOT NULL,
    post_id       TEXT,
    attempts      BIGINT NOT NULL,
    error         TEXT,
    created_at_ms BIGINT NOT NULL,
    sent_at_ms    BIGINT
);
CREATE INDEX social_writes_state ON social_writes (state, priority, created_at_ms);

-- The lots the show announces: the announcement is the lot's conversation.
CREATE TABLE social_lots (
    auction_id      TEXT   PRIMARY KEY,
    number          BIGINT,
    title           TEXT   NOT NULL,
    post_id         TEXT,
    since_id        TEXT,
    open            BIGINT NOT NULL,
    high_post_id    TEXT,
    high_bidder     TEXT,
    standings_at_ms BIGINT NOT NULL
);

-- The reader's cursors (the newest mention handled) and other small state.
CREATE TABLE social_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
