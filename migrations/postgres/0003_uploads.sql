-- Resumable (tus) uploads. The row is the upload's whole state, so any node can take the next
-- PATCH; `lock_token` is held by the one PATCH in flight and fences its writes.
CREATE TABLE uploads (
    id               TEXT PRIMARY KEY NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('active', 'completed', 'terminated', 'expired')),
    upload_offset    BIGINT NOT NULL,
    upload_length    BIGINT NOT NULL,
    -- JSON: what the upload becomes (file id, name, type, access, transcode), its metadata
    -- as sent, and the storage backend's resumable state (hash state, parts, pending bytes).
    data             TEXT NOT NULL,
    lock_token       TEXT,
    lock_until       BIGINT,
    direct_upload_id TEXT,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL
);
CREATE INDEX uploads_active_expiry ON uploads (expires_at) WHERE state = 'active';

-- Direct uploads: an app asks for one with its API key and hands the URL to a device. The
-- token is stored as its SHA-256 only; `upload_id` is set once, by the one upload it allows.
CREATE TABLE direct_uploads (
    id           TEXT PRIMARY KEY NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    max_size     BIGINT NOT NULL,
    access       TEXT NOT NULL CHECK (access IN ('private', 'public')),
    transcode    BOOLEAN NOT NULL,
    cors_origin  TEXT,
    upload_id    TEXT,
    cancelled    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
