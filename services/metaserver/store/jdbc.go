package store

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// jdbcForm is the URL form DSNFromJDBC understands, quoted in its errors.
const jdbcForm = "jdbc:mysql://host[:port]/database[?param=value&...]"

// DSNFromJDBC translates the JDBC URL of QMQ's datasource.properties
// (jdbc.url, jdbc.username, jdbc.password), jdbc:mysql://host[:port]/db?params
// (jdbc:mariadb:// too), into a go-sql-driver DSN for OpenMySQL, with
// parseTime=true and loc=UTC. The port defaults to 3306. user and password
// win over user info or user=/password= parameters in the URL, which are used
// when they are empty.
//
// JDBC parameters are mapped as follows:
//
//	useSSL=false                        tls=false
//	useSSL=true                         tls=preferred: TLS when the server offers it,
//	                                    certificate not verified (Connector/J 5.1's
//	                                    useSSL=true without requireSSL)
//	useSSL=true&requireSSL=true         tls=skip-verify: TLS required, not verified
//	useSSL=true&verifyServerCertificate=true
//	                                    tls=true: TLS required and verified
//	sslMode=DISABLED|PREFERRED|REQUIRED|VERIFY_CA|VERIFY_IDENTITY
//	                                    tls=false|preferred|skip-verify|true|true
//	                                    (Connector/J 8; wins over useSSL)
//	characterEncoding=utf8|UTF-8|utf8mb4
//	                                    charset=utf8mb4
//	connectTimeout=<ms>                 timeout (dial)
//	socketTimeout=<ms>                  readTimeout and writeTimeout
//	useCompression=true                 compress=true
//
// serverTimezone is ignored (the store works in UTC), and so are parameters
// that tune Connector/J itself (useUnicode, autoReconnect, allowMultiQueries,
// zeroDateTimeBehavior, cachePrepStmts, ...). Any other parameter, and a
// characterEncoding other than UTF-8, is ignored too but returned in ignored,
// as "name=value", so that the caller can warn about it.
func DSNFromJDBC(jdbcURL, user, password string) (dsn string, ignored []string, err error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("bad JDBC URL %q: %s; expected %s", redactJDBC(jdbcURL), fmt.Sprintf(format, args...), jdbcForm)
	}
	s := strings.TrimSpace(jdbcURL)
	if len(s) < 5 || !strings.EqualFold(s[:5], "jdbc:") {
		return "", nil, bad("it does not start with jdbc:")
	}
	s = s[5:]
	if _, rest, ok := strings.Cut(s, "://"); ok {
		authority := rest
		if i := strings.IndexAny(rest, "/?"); i >= 0 {
			authority = rest[:i]
		}
		if strings.Contains(authority, ",") {
			return "", nil, bad("several hosts (failover or load balancing) are not supported")
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", nil, bad("%v", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "mysql", "mariadb":
	default:
		return "", nil, bad("the subprotocol is %q, not mysql", u.Scheme)
	}
	if u.Opaque != "" {
		return "", nil, bad("no // after jdbc:%s:", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return "", nil, bad("no host")
	}
	port := u.Port()
	if port == "" {
		port = "3306"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", nil, bad("port %q is not a number in [1, 65535]", port)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		return "", nil, bad("no database name")
	}
	if strings.Contains(db, "/") {
		return "", nil, bad("database name %q contains '/'", db)
	}

	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(host, port)
	cfg.DBName = db
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.User, cfg.Passwd = user, password
	if u.User != nil && cfg.User == "" {
		cfg.User = u.User.Username()
		if p, ok := u.User.Password(); ok && cfg.Passwd == "" {
			cfg.Passwd = p
		}
	}

	var useSSL, requireSSL, verifyCert *bool
	sslMode := ""
	boolParam := func(name, v string) (*bool, error) {
		switch strings.ToLower(v) {
		case "true", "yes":
			t := true
			return &t, nil
		case "false", "no":
			f := false
			return &f, nil
		}
		return nil, bad("%s=%s is not true or false", name, v)
	}
	millisParam := func(name, v string) (time.Duration, error) {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			return 0, bad("%s=%s is not a number of milliseconds", name, v)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}

	for _, kv := range strings.Split(u.RawQuery, "&") {
		if kv == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(kv, "=")
		name, err1 := url.QueryUnescape(rawName)
		value, err2 := url.QueryUnescape(rawValue)
		if err1 != nil || err2 != nil {
			return "", nil, bad("parameter %q is not URL-encoded properly", kv)
		}
		switch name {
		case "useSSL":
			if useSSL, err = boolParam(name, value); err != nil {
				return "", nil, err
			}
		case "requireSSL":
			if requireSSL, err = boolParam(name, value); err != nil {
				return "", nil, err
			}
		case "verifyServerCertificate":
			if verifyCert, err = boolParam(name, value); err != nil {
				return "", nil, err
			}
		case "sslMode", "sslmode":
			switch strings.ToUpper(value) {
			case "DISABLED":
				sslMode = "false"
			case "PREFERRED":
				sslMode = "preferred"
			case "REQUIRED":
				sslMode = "skip-verify"
			case "VERIFY_CA", "VERIFY_IDENTITY":
				sslMode = "true"
			default:
				return "", nil, bad("sslMode=%s is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY", value)
			}
		case "characterEncoding":
			switch strings.ToLower(value) {
			case "utf8", "utf-8", "utf8mb4":
				if err := cfg.Apply(mysql.Charset("utf8mb4", "")); err != nil {
					return "", nil, bad("%v", err)
				}
			default:
				ignored = append(ignored, name+"="+value)
			}
		case "connectTimeout":
			if cfg.Timeout, err = millisParam(name, value); err != nil {
				return "", nil, err
			}
		case "socketTimeout":
			d, err := millisParam(name, value)
			if err != nil {
				return "", nil, err
			}
			cfg.ReadTimeout, cfg.WriteTimeout = d, d
		case "useCompression":
			b, err := boolParam(name, value)
			if err != nil {
				return "", nil, err
			}
			if err := cfg.Apply(mysql.EnableCompression(*b)); err != nil {
				return "", nil, bad("%v", err)
			}
		case "user":
			if cfg.User == "" {
				cfg.User = value
			}
		case "password":
			if cfg.Passwd == "" {
				cfg.Passwd = value
			}
		default:
			if !jdbcIgnoredParams[name] {
				ignored = append(ignored, name+"="+value)
			}
		}
	}

	switch {
	case sslMode != "":
		cfg.TLSConfig = sslMode
	case useSSL == nil:
		// not configured: go-sql-driver's default, no TLS
	case !*useSSL:
		cfg.TLSConfig = "false"
	case verifyCert != nil && *verifyCert:
		cfg.TLSConfig = "true"
	case requireSSL != nil && *requireSSL:
		cfg.TLSConfig = "skip-verify"
	default:
		cfg.TLSConfig = "preferred"
	}
	// FormatDSN leaves out loc=UTC, the driver's default; spell it out so the
	// DSN says what it means (OpenMySQL forces it anyway).
	return cfg.FormatDSN() + "&loc=UTC", ignored, nil
}

var (
	jdbcUserInfoPassword = regexp.MustCompile(`(//[^/@?]*?):[^/@?]*@`)
	jdbcPasswordParam    = regexp.MustCompile(`([?&]password=)[^&]*`)
)

// redactJDBC hides the passwords a JDBC URL may carry, for error messages.
func redactJDBC(s string) string {
	s = jdbcUserInfoPassword.ReplaceAllString(s, "$1:xxxxx@")
	return jdbcPasswordParam.ReplaceAllString(s, "${1}xxxxx")
}

// jdbcIgnoredParams are Connector/J parameters that mean nothing to
// go-sql-driver or the store and are ignored without a warning.
var jdbcIgnoredParams = map[string]bool{
	"serverTimezone":                    true, // the store works in UTC
	"useLegacyDatetimeCode":             true,
	"useJDBCCompliantTimezoneShift":     true,
	"useTimezone":                       true,
	"useUnicode":                        true, // always Unicode
	"autoReconnect":                     true, // database/sql reconnects
	"autoReconnectForPools":             true,
	"failOverReadOnly":                  true,
	"maxReconnects":                     true,
	"initialTimeout":                    true,
	"allowMultiQueries":                 true,
	"zeroDateTimeBehavior":              true,
	"rewriteBatchedStatements":          true,
	"useServerPrepStmts":                true,
	"cachePrepStmts":                    true,
	"prepStmtCacheSize":                 true,
	"prepStmtCacheSqlLimit":             true,
	"useLocalSessionState":              true,
	"cacheServerConfiguration":          true,
	"cacheResultSetMetadata":            true,
	"elideSetAutoCommits":               true,
	"maintainTimeStats":                 true,
	"tinyInt1isBit":                     true,
	"allowPublicKeyRetrieval":           true, // go-sql-driver asks for the key itself
	"useAffectedRows":                   true, // OpenMySQL sets clientFoundRows
	"connectionCollation":               true,
	"useInformationSchema":              true,
	"noAccessToProcedureBodies":         true,
	"useOldAliasMetadataBehavior":       true,
	"nullCatalogMeansCurrent":           true,
	"nullNamePatternMatchesAll":         true,
	"dumpQueriesOnException":            true,
	"enableQueryTimeouts":               true,
	"characterSetResults":               true,
	"emptyStringsConvertToZero":         true,
	"jdbcCompliantTruncation":           true,
	"useCursorFetch":                    true,
	"defaultFetchSize":                  true,
	"holdResultsOpenOverStatementClose": true,
}
