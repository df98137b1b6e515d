-- Delivery to consumers: who consumes what, which events each has handled (so a
-- redelivered event is not applied twice) and the dead letters. TEXT and BIGINT
-- only, so the same statements serve SQLite and PostgreSQL.

-- Every consumer that has run, with the type patterns it reads; replay and retry
-- name a consumer from here.
CREATE TABLE consumers (
    name       TEXT   PRIMARY KEY,
    patterns   TEXT   NOT NULL,
    seen_at_ms BIGINT NOT NULL
);

-- The event ids each consumer has handled. Pruned after a retention period far
-- longer than any redelivery can arrive. The key leads with the event id, so a
-- lookup of a batch of ids is one index probe per id whatever the planner knows
-- of the table (led by the consumer, it may read all of that consumer's rows).
CREATE TABLE consumer_handled (
    consumer      TEXT   NOT NULL,
    event_id      TEXT   NOT NULL,
    handled_at_ms BIGINT NOT NULL,
    PRIMARY KEY (event_id, consumer)
);
CREATE INDEX consumer_handled_age ON consumer_handled (handled_at_ms);

-- Events a consumer refused (invalid) or failed on every try. `payload` is the text
-- as received, so even an event that is not JSON keeps its bytes; `event_id` and
-- `event_type` are set when the payload could be read that far.
CREATE TABLE dead_letters (
    id           TEXT   PRIMARY KEY,
    consumer     TEXT   NOT NULL,
    event_id     TEXT,
    event_type   TEXT,
    payload      TEXT   NOT NULL,
    error        TEXT   NOT NULL,
    attempts     BIGINT NOT NULL,
    failed_at_ms BIGINT NOT NULL
);
CREATE INDEX dead_letters_failed ON dead_letters (failed_at_ms);
CREATE INDEX dead_letters_event ON dead_letters (event_id);
