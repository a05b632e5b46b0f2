package schema

import _ "embed" // for go:embed

// MySQL is the text of init.sql, the MySQL/MariaDB schema.
//
//go:embed init.sql
var MySQL string

// SQLite is the text of init_sqlite.sql, the schema of the embedded SQLite database.
//
//go:embed init_sqlite.sql
var SQLite string

// ClientMySQL is the text of init_client.sql: the transactional-message
// table qmq_produce.qmq_msg_queue that an application's MySQL/MariaDB
// database holds (package client/tx), identical to QMQ's.
//
//go:embed init_client.sql
var ClientMySQL string

// ClientPostgres is the text of init_client_postgres.sql: the same table
// for PostgreSQL, in a schema qmq_produce of the application's database.
//
//go:embed init_client_postgres.sql
var ClientPostgres string
