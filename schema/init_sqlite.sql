-- QMQ metaserver schema for the embedded SQLite database.
--
-- Same tables, column names (in the same order) and unique keys as init.sql
-- (the MySQL schema); only the types are spelled the SQLite way:
--   * INT/TINYINT/BIGINT          -> INTEGER (broker.ip holds the IPv4 address
--                                    as an unsigned 32-bit integer, like INET_ATON)
--   * VARCHAR(n)                  -> TEXT COLLATE NOCASE; the Go store checks
--                                    the MySQL length limits before writing, and
--                                    NOCASE mirrors MySQL's case-insensitive
--                                    utf8mb4_general_ci collation (ASCII only)
--   * TIMESTAMP                   -> TEXT holding UTC as 'YYYY-MM-DD HH:MM:SS',
--                                    the format of SQLite's CURRENT_TIMESTAMP;
--                                    it sorts and compares chronologically
--   * AUTO_INCREMENT primary key  -> INTEGER PRIMARY KEY AUTOINCREMENT (ids are
--                                    never reused, so "ORDER BY id" is insertion order)
-- SQLite has no ON UPDATE: the Go store always writes update_time itself.
-- The server applies this file at every start; every statement is idempotent
-- and ends with ';' at the end of a line.

CREATE TABLE IF NOT EXISTS broker_group
(
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name     TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    kind           INTEGER NOT NULL DEFAULT -1,
    master_address TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    broker_state   INTEGER NOT NULL DEFAULT -1,
    tag            TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    create_time    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    update_time    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    ext            TEXT,
    CONSTRAINT uniq_group_name UNIQUE (group_name)
);

CREATE TABLE IF NOT EXISTS subject_info
(
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    tag         TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    create_time TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    update_time TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT uniq_name UNIQUE (name)
);

CREATE TABLE IF NOT EXISTS subject_route
(
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_info      TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    broker_group_json TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    version           INTEGER NOT NULL DEFAULT 0,
    create_time       TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    update_time       TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT uniq_subject UNIQUE (subject_info)
);

CREATE TABLE IF NOT EXISTS client_meta_info
(
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    subject_info   TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    client_type    INTEGER NOT NULL DEFAULT 0,
    consumer_group TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    client_id      TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    app_code       TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    room           TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    create_time    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    update_time    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT uniq_subject_client_type_consumer_group_client_id
        UNIQUE (subject_info, client_type, consumer_group, client_id)
);

CREATE TABLE IF NOT EXISTS client_offline_state
(
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id      TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    subject_info   TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    consumer_group TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    state          INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT uniq_client_id_subject_group UNIQUE (client_id, subject_info, consumer_group)
);

CREATE TABLE IF NOT EXISTS broker
(
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name  TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    hostname    TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    ip          INTEGER NOT NULL DEFAULT 0 CHECK (ip BETWEEN 0 AND 4294967295),
    role        INTEGER NOT NULL DEFAULT -1,
    serve_port  INTEGER NOT NULL DEFAULT 20881,
    sync_port   INTEGER NOT NULL DEFAULT 20882,
    create_time TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    update_time TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT uniq_broker UNIQUE (hostname, serve_port),
    CONSTRAINT uniq_group_role UNIQUE (group_name, role)
);

-- Index names are global in SQLite, hence the table prefix (MySQL: idx_broker_group).
CREATE INDEX IF NOT EXISTS broker_idx_broker_group ON broker (group_name);

CREATE TABLE IF NOT EXISTS leader_election
(
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    name             TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    node             TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    last_seen_active INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT uniq_idx_name UNIQUE (name)
);

CREATE TABLE IF NOT EXISTS datasource_config
(
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    url         TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    user_name   TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    password    TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    status      INTEGER NOT NULL DEFAULT 0,
    room        TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    create_time TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    update_time TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT uniq_idx_name UNIQUE (url)
);

CREATE TABLE IF NOT EXISTS readonly_broker_group_setting
(
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    subject      TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    broker_group TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    create_time  TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT uniq_subject_broker_group UNIQUE (subject, broker_group)
);

-- Ours (not in QMQ): broker group master terms and leases, for failover.
CREATE TABLE IF NOT EXISTS broker_epoch
(
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name       TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    epoch            INTEGER NOT NULL DEFAULT 0,
    holder           TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    address          TEXT COLLATE NOCASE NOT NULL DEFAULT '',
    message_offset   INTEGER NOT NULL DEFAULT 0,
    action_offset    INTEGER NOT NULL DEFAULT 0,
    wait_slave_wrote INTEGER NOT NULL DEFAULT 0,
    expire_ms        INTEGER NOT NULL DEFAULT 0,
    create_time      TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    update_time      TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT uniq_group_epoch UNIQUE (group_name, epoch)
);
