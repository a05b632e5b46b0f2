// Package schema holds the database schemas of QMQ and embeds them so that
// Go code can apply or inspect them without reading files at run time: the
// metaserver's (init.sql, init_sqlite.sql) and the transactional-message
// table of client applications (init_client.sql, init_client_postgres.sql).
//
//   - init.sql (MySQL) is the schema for MySQL/MariaDB. Its tables, column
//     names, column types and unique keys are those of QMQ's own init.sql plus
//     001_add_ext_to_broker_group.sql, so existing QMQ databases work unchanged.
//     Operators apply it by hand: the server never creates MySQL tables, it
//     only checks that they exist.
//   - init_sqlite.sql (SQLite) is the same schema in SQLite's dialect, for the
//     embedded default database; the server applies it at every start.
//   - init_client.sql (MySQL) is QMQ's table qmq_produce.qmq_msg_queue,
//     which package client/tx writes messages to inside business
//     transactions; same names and types as QMQ's, so Java applications'
//     tables work unchanged. init_client_postgres.sql is its PostgreSQL
//     counterpart, beyond QMQ. Applications apply them by hand.
//
// Every statement in the metaserver files is idempotent and ends with ';' at the end of
// a line, so a statement splitter only has to look at line ends.
package schema
