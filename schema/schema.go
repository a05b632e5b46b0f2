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
