package dbtest

import (
	"context"
	"database/sql"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"root no password", "mysql://root@127.0.0.1:3306/cm", "root@tcp(127.0.0.1:3306)/cm?parseTime=true"},
		{"user and password", "mysql://cm:s3cret@db.example:3307/cm", "cm:s3cret@tcp(db.example:3307)/cm?parseTime=true"},
		{"escaped password", "mysql://cm:p%40ss%2Fw%3Ard@h:1/cm", "cm:p@ss/w:rd@tcp(h:1)/cm?parseTime=true"},
		{"default port", "mysql://root@db/cm", "root@tcp(db:3306)/cm?parseTime=true"},
		{"default host", "mysql://root@/cm", "root@tcp(127.0.0.1:3306)/cm?parseTime=true"},
		{"no user", "mysql://127.0.0.1:3306/cm", "tcp(127.0.0.1:3306)/cm?parseTime=true"},
		{"no database", "mysql://root@127.0.0.1:3306/", "root@tcp(127.0.0.1:3306)/?parseTime=true"},
		{"no path", "mysql://root@127.0.0.1:3306", "root@tcp(127.0.0.1:3306)/?parseTime=true"},
		{"ipv6", "mysql://root@[::1]:3306/cm", "root@tcp([::1]:3306)/cm?parseTime=true"},
		{
			"params kept in order",
			"mysql://root@h:1/cm?charset=utf8mb4&tx_isolation=%27READ-COMMITTED%27",
			"root@tcp(h:1)/cm?charset=utf8mb4&tx_isolation=%27READ-COMMITTED%27&parseTime=true",
		},
		{"parseTime not overridden", "mysql://root@h:1/cm?parseTime=false", "root@tcp(h:1)/cm?parseTime=false"},
		{"loc escaped", "mysql://root@h:1/cm?loc=Europe%2FParis", "root@tcp(h:1)/cm?loc=Europe%2FParis&parseTime=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseURL(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"sqlite URL", "sqlite:./data/cm.db"},
		{"go-sql-driver DSN", "root@tcp(127.0.0.1:3306)/cm"},
		{"wrong scheme", "postgres://root@h:1/cm"},
		{"bad port", "mysql://root:secret@h:port/cm"},
		{"nested path", "mysql://root@h:1/cm/extra"},
		{"bad bool param", "mysql://root@h:1/cm?parseTime=maybe"},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if err == nil {
				t.Fatalf("ParseURL(%q) = %q, want error", tt.in, got)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}

func TestWithParam(t *testing.T) {
	tests := []struct{ in, want string }{
		{"u@tcp(h:1)/db", "u@tcp(h:1)/db?k=v"},
		{"u@tcp(h:1)/db?a=b", "u@tcp(h:1)/db?a=b&k=v"},
		{"u@tcp(h:1)/db?k=x", "u@tcp(h:1)/db?k=x"},
	}
	for _, tt := range tests {
		if got := withParam(tt.in, "k", "v"); got != tt.want {
			t.Errorf("withParam(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSQLiteURL(t *testing.T) {
	a, b := SQLiteURL(t), SQLiteURL(t)
	if !strings.HasPrefix(a, "sqlite:/") {
		t.Errorf("SQLiteURL = %q, want sqlite:/<abs path>", a)
	}
	if a == b {
		t.Errorf("two calls returned the same database %q", a)
	}
}

// TestMySQLURL checks that a test's database exists while it runs, is empty,
// uses utf8mb4, and is dropped when the test ends.
func TestMySQLURL(t *testing.T) {
	server, err := sql.Open("mysql", ServerDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	var name string
	t.Run("owner", func(t *testing.T) {
		cmURL := MySQLURL(t)
		u, err := url.Parse(cmURL)
		if err != nil {
			t.Fatal(err)
		}
		name = strings.TrimPrefix(u.Path, "/")
		if !strings.HasPrefix(name, "cmt_") || u.Scheme != "mysql" {
			t.Fatalf("MySQLURL = %q, want mysql://.../cmt_<hex>", cmURL)
		}
		if !databaseExists(t, server, name) {
			t.Fatalf("database %s does not exist while its test runs", name)
		}

		goDSN, err := ParseURL(cmURL)
		if err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("mysql", goDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var current, charset string
		if err := db.QueryRow("SELECT DATABASE(), @@character_set_database").Scan(&current, &charset); err != nil {
			t.Fatal(err)
		}
		if current != name || charset != "utf8mb4" {
			t.Errorf("connected to %s with charset %s, want %s with utf8mb4", current, charset, name)
		}
		var tables int
		if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("fresh database has %d tables", tables)
		}
	})
	if name == "" {
		t.FailNow()
	}
	if databaseExists(t, server, name) {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestNewMySQLDatabase(t *testing.T) {
	cmURL, goDSN := NewMySQLDatabase(t)
	if !strings.Contains(goDSN, "parseTime=true") || !strings.Contains(goDSN, "multiStatements=true") {
		t.Errorf("goDSN = %q, want parseTime=true and multiStatements=true", goDSN)
	}
	if other := MySQLURL(t); other == cmURL {
		t.Errorf("two calls returned the same database %q", cmURL)
	}
	db, err := sql.Open("mysql", goDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// multiStatements lets connector tests seed data in one Exec.
	if _, err := db.Exec("CREATE TABLE t (id INT PRIMARY KEY, at DATETIME(6)); INSERT INTO t VALUES (1, '2024-01-02 03:04:05.123456')"); err != nil {
		t.Fatal(err)
	}
	var at time.Time // parseTime makes DATETIME scan into time.Time
	if err := db.QueryRow("SELECT at FROM t WHERE id = 1").Scan(&at); err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC); !at.Equal(want) {
		t.Errorf("at = %v, want %v", at, want)
	}
}

// TestServerConfig checks what connector tests rely on: a row-based binlog
// and utf8mb4. scripts/with-mariadb.sh starts the server this way; a server
// given by hand in CM_TEST_MYSQL_DSN must be configured the same.
func TestServerConfig(t *testing.T) {
	db, err := sql.Open("mysql", ServerDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var logBin int
	var format, charset string
	if err := db.QueryRow("SELECT @@log_bin, @@binlog_format, @@character_set_server").Scan(&logBin, &format, &charset); err != nil {
		t.Fatal(err)
	}
	if logBin != 1 || format != "ROW" || charset != "utf8mb4" {
		t.Errorf("server has log_bin=%d binlog_format=%s character_set_server=%s; "+
			"want 1, ROW, utf8mb4 (see scripts/with-mariadb.sh)", logBin, format, charset)
	}
}

func TestEach(t *testing.T) {
	var ran []string
	Each(t, func(t *testing.T, dbURL string) {
		ran = append(ran, t.Name())
		wantPrefix := map[string]string{"sqlite": "sqlite:", "mariadb": "mysql://"}[path.Base(t.Name())]
		if wantPrefix == "" || !strings.HasPrefix(dbURL, wantPrefix) {
			t.Errorf("%s got URL %q", t.Name(), dbURL)
		}
	})
	want := []string{"TestEach/sqlite", "TestEach/mariadb"}
	if strings.Join(ran, ",") != strings.Join(want, ",") {
		t.Errorf("Each ran %v, want %v", ran, want)
	}
}

func TestBackends(t *testing.T) {
	bs := Backends(t)
	if len(bs) != 2 || bs[0].Name != "sqlite" || bs[1].Name != "mariadb" {
		t.Fatalf("Backends = %+v, want sqlite then mariadb", bs)
	}
	if !strings.HasPrefix(bs[0].URL, "sqlite:") || !strings.HasPrefix(bs[1].URL, "mysql://") {
		t.Errorf("Backends URLs = %q, %q", bs[0].URL, bs[1].URL)
	}
}

func databaseExists(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}
