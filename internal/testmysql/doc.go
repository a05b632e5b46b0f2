// Package testmysql gives tests a MySQL/MariaDB server and databases of
// their own: 127.0.0.1:3306 as root without a password, unless
// QMQ_TEST_MYSQL_DSN names another (a DSN without a database, e.g.
// "user:pass@tcp(host:3306)/"). Tests fail, never skip, when the server
// cannot be reached: CI must not pass without having run them. For tests
// only.
package testmysql
