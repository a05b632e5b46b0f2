-- The backup's dictionary qmq_dic for the metaserver's embedded SQLite
-- database: the columns of init_backup.sql (name_id and name, which QMQ's
-- DbDicDao queries) in SQLite's dialect. The backup applies this itself
-- (backup/dic.OpenSQLite); every statement is idempotent. Names are
-- case-sensitive, as MySQL's utf8mb4 unique key is not: subjects differing
-- only in case are distinct subjects to the broker.
CREATE TABLE IF NOT EXISTS qmq_dic
(
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    name_id INTEGER NOT NULL,
    name    TEXT    NOT NULL DEFAULT '',
    CONSTRAINT uniq_idx_name_id UNIQUE (name_id),
    CONSTRAINT uniq_idx_name UNIQUE (name)
);
