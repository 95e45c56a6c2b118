CREATE TABLE media (
    id            TEXT PRIMARY KEY NOT NULL,
    file_id       TEXT NOT NULL,
    access        TEXT NOT NULL CHECK (access IN ('private', 'public')),
    state         TEXT NOT NULL CHECK (state IN ('queued', 'processing', 'ready', 'failed')),
    progress      INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    -- Storage prefix of the run whose output is served; set only when the media is ready.
    output_prefix TEXT,
    -- JSON array of the renditions, for the media JSON.
    renditions    TEXT NOT NULL DEFAULT '[]',
    duration      REAL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX media_created_at_id ON media (created_at DESC, id DESC);

-- Every file of a ready media's output, so delivery needs no storage call for metadata.
CREATE TABLE media_files (
    media_id     TEXT NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    path         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    content_type TEXT NOT NULL,
    PRIMARY KEY (media_id, path)
);

-- The job queue. A claim bumps lease_token, the fencing token every result write must match.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL,
    subject          TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    lease_token      INTEGER NOT NULL DEFAULT 0,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    run_after        INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX jobs_queued ON jobs (state, run_after, id);
CREATE INDEX jobs_subject ON jobs (subject);
