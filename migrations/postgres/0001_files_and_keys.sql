CREATE TABLE files (
    id           TEXT PRIMARY KEY,
    filename     TEXT,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    access       TEXT NOT NULL CHECK (access IN ('private', 'public')),
    created_at   BIGINT NOT NULL
);
-- Newest-first keyset pagination walks this index.
CREATE INDEX files_created_at_id ON files (created_at DESC, id DESC);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
