-- Auctions, their hash-chained bid logs, campaigns, and the outbox marks on events.
-- Ids, amounts (wei as decimal text) and JSON documents are TEXT in both databases,
-- so the same statements serve SQLite and PostgreSQL.

CREATE TABLE campaigns (
    id            TEXT   PRIMARY KEY,
    document      TEXT   NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE auctions (
    id               TEXT   PRIMARY KEY,
    campaign_id      TEXT   REFERENCES campaigns (id),
    phase            TEXT   NOT NULL,
    next_deadline_ms BIGINT,
    version          BIGINT NOT NULL,
    core             TEXT   NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    updated_at_ms    BIGINT NOT NULL
);
CREATE INDEX auctions_deadline ON auctions (next_deadline_ms);
CREATE INDEX auctions_campaign ON auctions (campaign_id);
CREATE INDEX auctions_phase ON auctions (phase);

-- Append-only: rows are inserted, never updated or deleted. NULL source_refs
-- (bids without a post id or idempotency key) never collide in a unique index.
CREATE TABLE bids (
    auction_id     TEXT   NOT NULL REFERENCES auctions (id),
    seq            BIGINT NOT NULL,
    id             TEXT   NOT NULL UNIQUE,
    amount_wei     TEXT   NOT NULL,
    bidder_id      TEXT   NOT NULL,
    bidder_handle  TEXT,
    source         TEXT   NOT NULL,
    source_ref     TEXT,
    created_at_ms  BIGINT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    status         TEXT   NOT NULL,
    reason         TEXT,
    extended_to_ms BIGINT,
    hash           TEXT   NOT NULL,
    prev_hash      TEXT   NOT NULL,
    PRIMARY KEY (auction_id, seq)
);
CREATE UNIQUE INDEX bids_source_ref_key ON bids (auction_id, source_ref);
-- The writer reads the last seconds of accepted bids to restore the per-bidder rate.
CREATE INDEX bids_recent ON bids (auction_id, received_at_ms);

-- The outbox: the store sequence of each event not yet published on the bus. A row is
-- written in the same transaction as its event and deleted by the relay once the
-- event is published, so event rows themselves are never rewritten.
CREATE TABLE outbox (
    seq BIGINT PRIMARY KEY
);
