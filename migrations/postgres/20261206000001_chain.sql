-- Ethereum (docs/chain.md): the nonces of wallet-link messages and the links they
-- made. TEXT and BIGINT only, so the same statements serve SQLite and PostgreSQL.

-- A nonce is given with the message to sign and used at most once.
CREATE TABLE chain_nonces (
    nonce        TEXT   PRIMARY KEY,
    handle       TEXT   NOT NULL,
    address      TEXT   NOT NULL,
    issued_at_ms BIGINT NOT NULL,
    used_at_ms   BIGINT
);
CREATE INDEX chain_nonces_issued ON chain_nonces (issued_at_ms);

-- One wallet per X handle (`@name`, lower case); linking again replaces it, revoking
-- keeps the row with `revoked_at_ms` set.
CREATE TABLE chain_links (
    handle        TEXT   PRIMARY KEY,
    address       TEXT   NOT NULL,
    nonce         TEXT   NOT NULL,
    message       TEXT   NOT NULL,
    signature     TEXT   NOT NULL,
    linked_at_ms  BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
