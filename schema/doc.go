// Package schema holds the metaserver's database schemas and embeds them so
// that Go code can apply or inspect them without reading files at run time.
//
//   - init.sql (MySQL) is the schema for MySQL/MariaDB. Its tables, column
//     names, column types and unique keys are those of QMQ's own init.sql plus
//     001_add_ext_to_broker_group.sql, so existing QMQ databases work unchanged.
//     Operators apply it by hand: the server never creates MySQL tables, it
//     only checks that they exist.
//   - init_sqlite.sql (SQLite) is the same schema in SQLite's dialect, for the
//     embedded default database; the server applies it at every start.
//
// Every statement in both files is idempotent and ends with ';' at the end of
// a line, so a statement splitter only has to look at line ends.
package schema
