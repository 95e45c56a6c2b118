CREATE TABLE files (
    id           TEXT PRIMARY KEY NOT NULL,
    filename     TEXT,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    access       TEXT NOT NULL CHECK (access IN ('private', 'public')),
    created_at   INTEGER NOT NULL
);
-- Newest-first keyset pagination walks this index.
CREATE INDEX files_created_at_id ON files (created_at DESC, id DESC);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
