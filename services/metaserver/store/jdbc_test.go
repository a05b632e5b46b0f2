package store

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

func TestDSNFromJDBC(t *testing.T) {
	tests := []struct {
		name           string
		url            string
		user, password string
		wantDSN        string
		wantIgnored    []string
		wantErr        string // substring; "" = no error
	}{
		{
			name:    "QMQ datasource.properties",
			url:     "jdbc:mysql://127.0.0.1:3306/qmq_metaserver?useSSL=false&useUnicode=true&characterEncoding=UTF-8&serverTimezone=Asia/Shanghai",
			user:    "root",
			wantDSN: "root@tcp(127.0.0.1:3306)/qmq_metaserver?charset=utf8mb4&parseTime=true&tls=false&loc=UTC",
		},
		{
			name:     "default port, password",
			url:      "jdbc:mysql://db.example.com/qmq_metaserver",
			user:     "qmq",
			password: "s3cr:t@",
			wantDSN:  "qmq:s3cr:t@@tcp(db.example.com:3306)/qmq_metaserver?parseTime=true&loc=UTC",
		},
		{
			name:    "mariadb subprotocol, characterEncoding=utf8",
			url:     "jdbc:mariadb://10.0.0.5:3307/meta?characterEncoding=utf8",
			user:    "root",
			wantDSN: "root@tcp(10.0.0.5:3307)/meta?charset=utf8mb4&parseTime=true&loc=UTC",
		},
		{
			name:    "IPv6 host, timeouts, useSSL=true is preferred",
			url:     "jdbc:mysql://[::1]:3307/qmq?connectTimeout=2000&socketTimeout=30000&useSSL=true",
			user:    "root",
			wantDSN: "root@tcp([::1]:3307)/qmq?parseTime=true&readTimeout=30s&timeout=2s&tls=preferred&writeTimeout=30s&loc=UTC",
		},
		{
			name:    "requireSSL",
			url:     "jdbc:mysql://h/qmq?useSSL=true&requireSSL=true",
			user:    "root",
			wantDSN: "root@tcp(h:3306)/qmq?parseTime=true&tls=skip-verify&loc=UTC",
		},
		{
			name:    "verifyServerCertificate",
			url:     "jdbc:mysql://h/qmq?useSSL=true&verifyServerCertificate=true",
			user:    "root",
			wantDSN: "root@tcp(h:3306)/qmq?parseTime=true&tls=true&loc=UTC",
		},
		{
			name:    "sslMode wins over useSSL",
			url:     "jdbc:mysql://h/qmq?useSSL=false&sslMode=REQUIRED",
			user:    "root",
			wantDSN: "root@tcp(h:3306)/qmq?parseTime=true&tls=skip-verify&loc=UTC",
		},
		{
			name:        "unknown parameters and other encodings are returned",
			url:         "jdbc:mysql://h/qmq?foo=bar&autoReconnect=true&allowMultiQueries=true&characterEncoding=GBK&x=a%26b",
			user:        "root",
			wantDSN:     "root@tcp(h:3306)/qmq?parseTime=true&loc=UTC",
			wantIgnored: []string{"foo=bar", "characterEncoding=GBK", "x=a&b"},
		},
		{
			name:    "user and password from the URL when not given",
			url:     "jdbc:mysql://h/qmq?user=alice&password=pw",
			wantDSN: "alice:pw@tcp(h:3306)/qmq?parseTime=true&loc=UTC",
		},
		{
			name:     "arguments win over the URL",
			url:      "jdbc:mysql://bob:x@h/qmq?user=alice&password=pw",
			user:     "root",
			password: "rootpw",
			wantDSN:  "root:rootpw@tcp(h:3306)/qmq?parseTime=true&loc=UTC",
		},
		{
			name:    "compression",
			url:     "jdbc:mysql://h/qmq?useCompression=true",
			user:    "root",
			wantDSN: "root@tcp(h:3306)/qmq?compress=true&parseTime=true&loc=UTC",
		},
		{name: "no jdbc prefix", url: "mysql://h/qmq", wantErr: `bad JDBC URL "mysql://h/qmq": it does not start with jdbc:`},
		{name: "other database", url: "jdbc:postgresql://h/qmq", wantErr: `subprotocol is "postgresql"`},
		{name: "several hosts", url: "jdbc:mysql://h1:3306,h2:3306/qmq", wantErr: "several hosts"},
		{name: "load balancing", url: "jdbc:mysql:loadbalance://h1,h2/qmq", wantErr: "several hosts"},
		{name: "replication", url: "jdbc:mysql:replication://h1/qmq", wantErr: "no // after jdbc:mysql:"},
		{name: "no host", url: "jdbc:mysql:///qmq", wantErr: "no host"},
		{name: "bad port", url: "jdbc:mysql://h:99999/qmq", wantErr: `port "99999"`},
		{name: "no database", url: "jdbc:mysql://h:3306/", wantErr: "no database name"},
		{name: "no path", url: "jdbc:mysql://h:3306", wantErr: "no database name"},
		{name: "bad timeout", url: "jdbc:mysql://h/qmq?connectTimeout=soon", wantErr: "connectTimeout=soon is not a number of milliseconds"},
		{name: "bad bool", url: "jdbc:mysql://h/qmq?useSSL=maybe", wantErr: "useSSL=maybe is not true or false"},
		{name: "bad sslMode", url: "jdbc:mysql://h/qmq?sslMode=ALWAYS", wantErr: "sslMode=ALWAYS"},
		{name: "password redacted", url: "jdbc:mysql://u:hunter2@h/?password=hunter3", wantErr: `"jdbc:mysql://u:xxxxx@h/?password=xxxxx"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn, ignored, err := DSNFromJDBC(tt.url, tt.user, tt.password)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("DSNFromJDBC(%q) = %q, want error containing %q", tt.url, dsn, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), jdbcForm) {
					t.Fatalf("error %q, want it to contain %q and the expected form", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter") {
					t.Fatalf("error %q shows a password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("DSNFromJDBC(%q): %v", tt.url, err)
			}
			if dsn != tt.wantDSN {
				t.Errorf("dsn = %q\n want %q", dsn, tt.wantDSN)
			}
			if !slices.Equal(ignored, tt.wantIgnored) {
				t.Errorf("ignored = %q, want %q", ignored, tt.wantIgnored)
			}
			cfg, err := mysql.ParseDSN(dsn)
			if err != nil {
				t.Fatalf("the driver rejects the DSN %q: %v", dsn, err)
			}
			if tt.user != "" && (cfg.User != tt.user || cfg.Passwd != tt.password) {
				t.Errorf("DSN gives user %q password %q, want %q %q", cfg.User, cfg.Passwd, tt.user, tt.password)
			}
			if !cfg.ParseTime || cfg.Loc != time.UTC {
				t.Errorf("parseTime=%v loc=%v, want true and UTC", cfg.ParseTime, cfg.Loc)
			}
		})
	}
}
