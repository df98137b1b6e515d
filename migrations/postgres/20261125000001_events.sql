-- The event store: every event, in the order it was stored.
CREATE TABLE events (
    seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id             UUID   NOT NULL UNIQUE,
    event_type     TEXT   NOT NULL,
    source         TEXT   NOT NULL,
    version        TEXT   NOT NULL,
    timestamp_ms   BIGINT NOT NULL,
    correlation_id TEXT,
    causation_id   UUID,
    data           TEXT   NOT NULL,
    stored_at_ms   BIGINT NOT NULL
);
CREATE INDEX events_type_seq ON events (event_type, seq);
CREATE INDEX events_timestamp ON events (timestamp_ms);
CREATE INDEX events_correlation ON events (correlation_id) WHERE correlation_id IS NOT NULL;
