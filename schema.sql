-- pryvrt schema. Applied at every start-up; every statement is idempotent.
-- Every table carries user_id and leads its primary key and indexes with it, so the
-- schema can be distributed by user (e.g. Citus: SELECT create_distributed_table(t, 'user_id'))
-- without rework. Timestamps are float seconds since the Unix epoch (API.md §3).
-- To change the schema: add idempotent statements at the end and bump the version row.

CREATE TABLE IF NOT EXISTS schema_version (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS users (
    user_id       text PRIMARY KEY,
    username      text NOT NULL,
    email         text,
    language      text NOT NULL DEFAULT 'en',
    password_hash text NOT NULL,
    created       double precision NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS users_username ON users (username);
CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users (lower(email)) WHERE email IS NOT NULL;

-- Admin sessions (API.md §9): sliding expiry.
CREATE TABLE IF NOT EXISTS sessions (
    user_id  text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    id       text NOT NULL,
    app_id   text,
    created  double precision NOT NULL,
    expires  double precision NOT NULL,
    PRIMARY KEY (user_id, id)
);

-- Data access tokens (API.md §7). The id is the secret credential.
CREATE TABLE IF NOT EXISTS tokens (
    user_id     text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    id          text NOT NULL,
    name        text NOT NULL,
    type        text NOT NULL CHECK (type IN ('personal', 'shared', 'app')),
    permissions jsonb NOT NULL DEFAULT '[]',
    created     double precision NOT NULL,
    modified    double precision NOT NULL,
    PRIMARY KEY (user_id, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS tokens_name ON tokens (user_id, name);

CREATE TABLE IF NOT EXISTS channels (
    user_id                   text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    id                        text NOT NULL,
    name                      text NOT NULL,
    enforce_no_events_overlap boolean NOT NULL DEFAULT true,
    client_data               jsonb NOT NULL DEFAULT '{}',
    trashed                   boolean NOT NULL DEFAULT false,
    modified                  double precision NOT NULL,
    PRIMARY KEY (user_id, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS channels_name ON channels (user_id, name);

CREATE TABLE IF NOT EXISTS folders (
    user_id     text NOT NULL,
    channel_id  text NOT NULL,
    id          text NOT NULL,
    name        text NOT NULL,
    parent_id   text,
    hidden      boolean NOT NULL DEFAULT false,
    client_data jsonb NOT NULL DEFAULT '{}',
    trashed     boolean NOT NULL DEFAULT false,
    modified    double precision NOT NULL,
    PRIMARY KEY (user_id, channel_id, id),
    FOREIGN KEY (user_id, channel_id) REFERENCES channels (user_id, id) ON DELETE CASCADE
);
-- Sibling names are unique; root folders (parent_id NULL) are siblings of each other.
CREATE UNIQUE INDEX IF NOT EXISTS folders_sibling_name
    ON folders (user_id, channel_id, coalesce(parent_id, ''), name);

-- Events. end_time is derived: time for a mark, time + duration for a finished period,
-- +Infinity for a running one, so "overlaps [from, to]" is time <= to AND end_time >= from.
CREATE TABLE IF NOT EXISTS events (
    user_id     text NOT NULL,
    channel_id  text NOT NULL,
    id          text NOT NULL,
    time        double precision NOT NULL,
    is_period   boolean NOT NULL DEFAULT false,
    duration    double precision,
    end_time    double precision GENERATED ALWAYS AS (
                    CASE WHEN NOT is_period THEN time
                         WHEN duration IS NULL THEN 'Infinity'::double precision
                         ELSE time + duration END) STORED,
    folder_id   text,
    type        text,
    value       jsonb,
    tags        text[] NOT NULL DEFAULT '{}',
    description text,
    client_data jsonb NOT NULL DEFAULT '{}',
    attachments jsonb NOT NULL DEFAULT '[]',
    trashed     boolean NOT NULL DEFAULT false,
    modified    double precision NOT NULL,
    PRIMARY KEY (user_id, channel_id, id),
    FOREIGN KEY (user_id, channel_id) REFERENCES channels (user_id, id) ON DELETE CASCADE,
    CHECK (is_period OR duration IS NULL),
    CHECK (duration IS NULL OR duration >= 0)
);
CREATE INDEX IF NOT EXISTS events_folder_time ON events (user_id, channel_id, folder_id, time);
CREATE INDEX IF NOT EXISTS events_modified ON events (user_id, channel_id, modified);
CREATE INDEX IF NOT EXISTS events_periods ON events (user_id, channel_id, time, end_time)
    WHERE is_period AND NOT trashed;
CREATE INDEX IF NOT EXISTS events_tags ON events USING gin (tags);

-- Attachment bytes, in chunks, so any worker can stream any file (see README).
-- Metadata ({id, fileName, type, size, integrity, readToken}) lives in events.attachments.
CREATE TABLE IF NOT EXISTS attachment_chunks (
    user_id       text NOT NULL,
    channel_id    text NOT NULL,
    event_id      text NOT NULL,
    attachment_id text NOT NULL,
    seq           integer NOT NULL,
    data          bytea NOT NULL,
    PRIMARY KEY (user_id, channel_id, event_id, attachment_id, seq),
    FOREIGN KEY (user_id, channel_id, event_id)
        REFERENCES events (user_id, channel_id, id) ON DELETE CASCADE
);

-- Sharing bookmarks (API.md §9, seed 002).
CREATE TABLE IF NOT EXISTS bookmarks (
    user_id      text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    id           text NOT NULL,
    name         text NOT NULL,
    url          text NOT NULL,
    access_token text NOT NULL,
    created      double precision NOT NULL,
    modified     double precision NOT NULL,
    PRIMARY KEY (user_id, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS bookmarks_name ON bookmarks (user_id, name);

-- Version 2: events indexes for the folders and events API (v1's events_time and
-- events_running are replaced; creating them above would rebuild them at every start).
-- events.get pages by (time, id): one index gives that order with no sort step.
CREATE INDEX IF NOT EXISTS events_time_id ON events (user_id, channel_id, time, id);
DROP INDEX IF EXISTS events_time;
-- The longest finished period bounds how far before a window an overlapping one starts.
CREATE INDEX IF NOT EXISTS events_durations ON events (user_id, channel_id, duration)
    WHERE is_period AND duration IS NOT NULL;
-- Running periods in any state (getRunning; few rows per channel). Replaced in version 5.
CREATE INDEX IF NOT EXISTS events_running_time ON events (user_id, channel_id, time)
    WHERE is_period AND duration IS NULL;
DROP INDEX IF EXISTS events_running;

-- Version 3: each event keeps its API JSON (Event.to_api), so events.get answers with
-- string_agg over stored text: an event is rendered once per write instead of once per
-- read. The trigger keeps it right on every UPDATE path (updates, period stops, folder
-- moves and merges, attachments) and for inserts that do not bring it.
ALTER TABLE events ADD COLUMN IF NOT EXISTS json text;
-- jsonb's text form puts a space after ':' and ','; the API's JSON (orjson) has none. The
-- fast path: a text with neither ': ' nor ', ' has no such space to remove.
CREATE OR REPLACE FUNCTION json_compact(j jsonb) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    t text := j::text;
BEGIN
    IF t IS NULL OR (position(': ' IN t) = 0 AND position(', ' IN t) = 0) THEN
        RETURN t;
    END IF;
    CASE jsonb_typeof(j)
    WHEN 'object' THEN
        RETURN '{' || coalesce((SELECT string_agg(to_json(e.k)::text || ':' || json_compact(e.v), ',')
                                FROM jsonb_each(j) AS e(k, v)), '') || '}';
    WHEN 'array' THEN
        RETURN '[' || coalesce((SELECT string_agg(json_compact(a.v), ',' ORDER BY a.n)
                                FROM jsonb_array_elements(j) WITH ORDINALITY AS a(v, n)), '') || ']';
    ELSE
        RETURN t;
    END CASE;
END $$;
CREATE OR REPLACE FUNCTION events_render_json() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.json := '{"id":' || to_json(NEW.id) || ',"channelId":' || to_json(NEW.channel_id)
        || ',"time":' || to_json(NEW.time)
        || CASE WHEN NEW.is_period
                THEN ',"duration":' || coalesce(to_json(NEW.duration)::text, 'null')
                ELSE '' END
        || ',"folderId":' || coalesce(to_json(NEW.folder_id)::text, 'null')
        || CASE WHEN NEW.type IS NULL THEN ''
                ELSE ',"type":' || to_json(NEW.type) || ',"value":{"type":' || to_json(NEW.type)
                     || ',"value":' || coalesce(json_compact(NEW.value), 'null') || '}' END
        || ',"tags":' || to_json(NEW.tags)
        || CASE WHEN NEW.description IS NULL THEN ''
                ELSE ',"description":' || to_json(NEW.description) END
        || ',"attachments":' || json_compact(NEW.attachments)
        || ',"clientData":' || json_compact(NEW.client_data)
        || ',"trashed":' || NEW.trashed::text
        || ',"created":' || to_json(coalesce(NEW.created, NEW.modified))
        || ',"createdBy":' || to_json(coalesce(NEW.created_by, 'system'))
        || ',"modified":' || to_json(NEW.modified)
        || ',"modifiedBy":' || to_json(coalesce(NEW.modified_by, 'system')) || '}';
    RETURN NEW;
END $$;
-- pryvrt's inserts bring the JSON (rendered in Python, from the same model); the trigger
-- fills it for any other insert, and renders it again on every update.
DROP TRIGGER IF EXISTS events_json ON events;
CREATE TRIGGER events_json BEFORE UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION events_render_json();
DROP TRIGGER IF EXISTS events_json_insert ON events;
CREATE TRIGGER events_json_insert BEFORE INSERT ON events
    FOR EACH ROW WHEN (NEW.json IS NULL) EXECUTE FUNCTION events_render_json();
-- Version 6's columns (created, createdBy, modifiedBy: see "Version 6" below) are added
-- here, after the renderer that reads them is in place and before any step below renders
-- stored events again: each UPDATE here and below fires the trigger above.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['channels', 'folders', 'events', 'tokens'] LOOP
        IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                       WHERE table_schema = current_schema() AND table_name = t
                         AND column_name = 'modified_by') THEN
            EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS created double precision,'
                           ' ADD COLUMN created_by text, ADD COLUMN modified_by text', t);
            -- For events this UPDATE also renders every event's JSON again (trigger).
            EXECUTE format('UPDATE %I SET created = coalesce(created, modified),'
                           ' created_by = ''system'', modified_by = ''system''', t);
            -- Defaults for writers that do not name the columns (a worker of the previous
            -- version during a rolling upgrade, a tool writing SQL): now, by "system".
            EXECUTE format('ALTER TABLE %I ALTER COLUMN created SET NOT NULL,'
                           ' ALTER COLUMN created_by SET NOT NULL,'
                           ' ALTER COLUMN modified_by SET NOT NULL,'
                           ' ALTER COLUMN created SET DEFAULT extract(epoch FROM now()),'
                           ' ALTER COLUMN created_by SET DEFAULT ''system'','
                           ' ALTER COLUMN modified_by SET DEFAULT ''system''', t);
        END IF;
    END LOOP;
END $$;
DO $$ BEGIN
    IF (SELECT version FROM schema_version) < 3 THEN
        UPDATE events SET json = NULL;  -- the trigger renders every stored event once
    END IF;
END $$;

INSERT INTO schema_version (singleton, version) VALUES (true, 3)
    ON CONFLICT (singleton) DO UPDATE SET version = greatest(schema_version.version, 3);

-- Version 4: readTokens (API.md §6.4) are signed per reading credential, so each token and
-- each session gets a public, stable accessId (API.md §12). The volatile default fills
-- existing rows one by one (ADD COLUMN rewrites the table) and every later insert.
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS access_id text NOT NULL
    DEFAULT replace(gen_random_uuid()::text, '-', '');
CREATE UNIQUE INDEX IF NOT EXISTS tokens_access_id ON tokens (user_id, access_id);
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS access_id text NOT NULL
    DEFAULT replace(gen_random_uuid()::text, '-', '');
CREATE UNIQUE INDEX IF NOT EXISTS sessions_access_id ON sessions (user_id, access_id);
-- Stored attachments no longer carry a readToken (it is computed for each reader).
DO $$ BEGIN
    IF (SELECT version FROM schema_version) < 4 THEN
        UPDATE events SET attachments = (
            SELECT jsonb_agg(a - 'readToken' ORDER BY n)
            FROM jsonb_array_elements(attachments) WITH ORDINALITY AS x(a, n))
        WHERE attachments <> '[]';
    END IF;
END $$;

INSERT INTO schema_version (singleton, version) VALUES (true, 4)
    ON CONFLICT (singleton) DO UPDATE SET version = greatest(schema_version.version, 4);

-- Version 5: running periods indexed in events.get's full order (time, id), so that the
-- running branch of a windowed read is an ordered scan of this small index that stops at
-- the limit; ordered by time alone, the planner could prefer events_time_id (already in
-- that order) and read every event of the channel before the window's end to find them.
CREATE INDEX IF NOT EXISTS events_running_time_id ON events (user_id, channel_id, time, id)
    WHERE is_period AND duration IS NULL;
DROP INDEX IF EXISTS events_running_time;

INSERT INTO schema_version (singleton, version) VALUES (true, 5)
    ON CONFLICT (singleton) DO UPDATE SET version = greatest(schema_version.version, 5);

-- Event JSON rendered before json_compact existed (spaces in value, clientData and
-- attachments) is rendered again, once: the function's comment records that it was done.
DO $$ BEGIN
    IF obj_description('json_compact(jsonb)'::regprocedure, 'pg_proc')
            IS DISTINCT FROM 'events rendered compact' THEN
        UPDATE events SET json = NULL
            WHERE jsonb_typeof(value) IN ('object', 'array')
               OR client_data <> '{}' OR attachments <> '[]';
        COMMENT ON FUNCTION json_compact(jsonb) IS 'events rendered compact';
    END IF;
END $$;

-- Version 8: high-frequency series (API.md §15, docs/series.md). A row holds a chunk of
-- up to 4096 points of one series event, sorted by deltaTime, compressed column by column
-- (pryvrt/storage/series_codec.py), with its deltaTime range in the key: chunks of a
-- series never overlap, so a range read is one index range. ``blocks``: per 128 points,
-- the first and last deltaTime, the count and per field count/min/max/sum (decimated
-- views read these instead of the points). Both values are compressed or incompressible
-- already: EXTERNAL spares PostgreSQL a second compression attempt.
CREATE TABLE IF NOT EXISTS series_chunks (
    user_id    text NOT NULL,
    channel_id text NOT NULL,
    event_id   text NOT NULL,
    t_min      double precision NOT NULL,
    t_max      double precision NOT NULL,
    n          integer NOT NULL CHECK (n > 0),
    data       bytea NOT NULL,
    blocks     bytea NOT NULL,
    PRIMARY KEY (user_id, channel_id, event_id, t_min),
    FOREIGN KEY (user_id, channel_id, event_id)
        REFERENCES events (user_id, channel_id, id) ON DELETE CASCADE
);
ALTER TABLE series_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE series_chunks ALTER COLUMN blocks SET STORAGE EXTERNAL;

INSERT INTO schema_version (singleton, version) VALUES (true, 8)
    ON CONFLICT (singleton) DO UPDATE SET version = greatest(schema_version.version, 8);

-- Version 6: who did what (API.md §12). Channels, folders, events and tokens carry
-- created/createdBy/modified/modifiedBy; createdBy/modifiedBy hold the public accessId of
-- the writing credential (a token's or a session's), never its secret. Rows from before
-- get created = modified and "system" for both. Guarded by the columns themselves (not the
-- version row): the sections of other versions may land in any order.
-- (Their columns and the event JSON renderer that shows them are defined with version 3,
-- above: the renderer must exist before any re-render step runs.)

-- App tokens (API.md §13) remember the device they were accepted for.
ALTER TABLE tokens ADD COLUMN IF NOT EXISTS device_name text;

-- App access requests (API.md §13): what an app asked for, until the user decides and the
-- app collects the answer. No user at creation (the user signs in later), so the table is
-- keyed by the request's secret key, not by user (tests/test_citus_ready.py lists it with
-- the reason). Rows live PRYVRT_ACCESS_REQUEST_TTL seconds; the sweep deletes expired ones.
CREATE TABLE IF NOT EXISTS access_requests (
    key          text PRIMARY KEY,
    created      double precision NOT NULL,
    expires      double precision NOT NULL,
    app_id       text NOT NULL,
    permissions  jsonb NOT NULL,
    device_name  text,
    return_url   text,
    client_data  jsonb NOT NULL DEFAULT '{}',
    status       text NOT NULL DEFAULT 'NEED_SIGNIN'
                 CHECK (status IN ('NEED_SIGNIN', 'ACCEPTED', 'REFUSED')),
    -- who answered (no user_id column: the table is not distributed by user)
    answered_by  text REFERENCES users (user_id) ON DELETE CASCADE,
    username     text,
    token_id     text,
    reason_id    text,
    message      text,
    polled       double precision NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS access_requests_expires ON access_requests (expires);

INSERT INTO schema_version (singleton, version) VALUES (true, 6)
    ON CONFLICT (singleton) DO UPDATE SET version = greatest(schema_version.version, 6);
-- Version 7: in-app sharing (API.md §14). A share is a shared token delivered to another
-- user of the server (the recipient, user_id), until they accept it (it becomes one of
-- their bookmarks) or decline it, or its token is deleted (withdrawn). The token's secret
-- is not copied here: reads join tokens, so a share never outlives its token.
CREATE TABLE IF NOT EXISTS shares (
    user_id      text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    id           text NOT NULL,
    from_user_id text NOT NULL,
    token_id     text NOT NULL,
    name         text NOT NULL,
    url          text NOT NULL,
    created      double precision NOT NULL,
    PRIMARY KEY (user_id, id)
);
-- Withdrawal (tokens.delete) finds the shares of a token: a query across recipients (the
-- sharer's tokens are few; distributed by user_id it visits every shard, rarely).
CREATE INDEX IF NOT EXISTS shares_token ON shares (from_user_id, token_id);

INSERT INTO schema_version (singleton, version) VALUES (true, 7)
    ON CONFLICT (singleton) DO UPDATE SET version = greatest(schema_version.version, 7);
