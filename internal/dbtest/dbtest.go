// Package dbtest gives tests a fresh database of their own, on SQLite and on
// a real MariaDB server.
//
// The MariaDB server is named by the environment variable CM_TEST_MYSQL_DSN,
// in cm's own URL form (mysql://user:pass@host:port/?params). `make test`
// sets it by running the tests under scripts/with-mariadb.sh, which starts a
// throwaway server. Without it, MariaDB tests fail rather than skip: a green
// run must mean the MariaDB path was exercised.
//
// Every call creates a new database (cmt_<random hex>) and drops it when the
// test ends, so tests never share state and may run in parallel.
//
// This package is imported by tests only and must not import any cm package.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// envMySQLDSN names the environment variable holding the MariaDB server URL.
const envMySQLDSN = "CM_TEST_MYSQL_DSN"

// dbPrefix starts the name of every database this package creates, so
// leftovers from a killed run are easy to recognise on a shared server.
const dbPrefix = "cmt_"

// Backend is one database backend a store test runs against.
type Backend struct {
	Name string // "sqlite" or "mariadb"; used as the subtest name
	URL  string // cm --db URL of a fresh, empty database
}

// backends lists the backends in the order tests run them. Each URL is made
// inside the test that uses it, so its cleanup belongs to that test.
var backends = []struct {
	name string
	url  func(testing.TB) string
}{
	{"sqlite", SQLiteURL},
	{"mariadb", MySQLURL},
}

// Backends returns one fresh database on each backend, all owned by t.
func Backends(t testing.TB) []Backend {
	t.Helper()
	out := make([]Backend, 0, len(backends))
	for _, b := range backends {
		out = append(out, Backend{Name: b.name, URL: b.url(t)})
	}
	return out
}

// Each runs fn once per backend as subtests named "sqlite" and "mariadb",
// each with its own fresh database, dropped when the subtest ends.
func Each(t *testing.T, fn func(t *testing.T, url string)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			fn(t, b.url(t))
		})
	}
}

// SQLiteURL returns a cm URL of a new SQLite database file in t.TempDir().
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "cm.db")
}

// MySQLURL creates a fresh database on the test MariaDB server and returns
// its cm URL (mysql://user:pass@host:port/cmt_xxx?params), keeping the user,
// password and parameters of CM_TEST_MYSQL_DSN. The database is dropped when
// t ends.
func MySQLURL(t testing.TB) string {
	t.Helper()
	cmURL, _ := NewMySQLDatabase(t)
	return cmURL
}

// NewMySQLDatabase is MySQLURL that also returns the go-sql-driver DSN of the
// same database (user:pass@tcp(host:port)/cmt_xxx?parseTime=true&multiStatements=true),
// for tests that need a raw *sql.DB.
func NewMySQLDatabase(t testing.TB) (cmURL string, goDSN string) {
	t.Helper()
	server := serverURL(t)
	name := randomName(t)

	db := openServer(t, server)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The server default is utf8mb4 under with-mariadb.sh; state it anyway so
	// a hand-started server with latin1 defaults behaves the same.
	q := "CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
	if _, err := db.ExecContext(ctx, q); err != nil {
		t.Fatalf("dbtest: creating database %s: %v", name, err)
	}
	t.Cleanup(func() { dropDatabase(t, server, name) })

	u := *server
	u.Path = "/" + name
	u.RawPath = ""
	cmURL = u.String()
	goDSN, err := ParseURL(cmURL)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return cmURL, withParam(goDSN, "multiStatements", "true")
}

// NewMySQLDatabaseName creates a fresh database like NewMySQLDatabase and
// returns only its name, for tests that address several databases on one
// server connection.
func NewMySQLDatabaseName(t testing.TB) string {
	t.Helper()
	cmURL, _ := NewMySQLDatabase(t)
	u, err := url.Parse(cmURL)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

// ServerDSN returns a go-sql-driver DSN of the test MariaDB server with no
// database selected (user:pass@tcp(host:port)/?parseTime=true&multiStatements=true),
// for tests that create several databases themselves, such as binlog tests.
// Such tests should name their databases with the cmt_ prefix and drop them.
func ServerDSN(t testing.TB) string {
	t.Helper()
	dsn, err := ParseURL(serverURL(t).String())
	if err != nil {
		t.Fatalf("dbtest: %s: %v", envMySQLDSN, err)
	}
	return withParam(dsn, "multiStatements", "true")
}

// ParseURL converts a cm MySQL URL, mysql://user:pass@host:port/db?params,
// to the go-sql-driver DSN user:pass@tcp(host:port)/db?params, adding
// parseTime=true unless params set parseTime. The port defaults to 3306 and
// the host to 127.0.0.1. Params are passed through still URL-encoded, which
// is the form go-sql-driver expects.
func ParseURL(u string) (goDSN string, err error) {
	p, err := url.Parse(u)
	if err != nil {
		// url.Error quotes the whole URL, password included: keep only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return "", fmt.Errorf("parsing MySQL URL: %w", err)
	}
	if p.Scheme != "mysql" {
		return "", fmt.Errorf("parsing MySQL URL %q: scheme must be mysql, not %q", p.Redacted(), p.Scheme)
	}
	if p.Opaque != "" {
		return "", fmt.Errorf("parsing MySQL URL %q: want mysql://host/db", p.Redacted())
	}
	db := strings.TrimPrefix(p.Path, "/")
	if strings.Contains(db, "/") {
		return "", fmt.Errorf("parsing MySQL URL %q: database name %q contains /", p.Redacted(), db)
	}

	host, port := p.Hostname(), p.Port()
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "3306"
	}

	var b strings.Builder
	if p.User != nil {
		b.WriteString(p.User.Username())
		if pass, ok := p.User.Password(); ok {
			b.WriteString(":" + pass)
		}
		b.WriteString("@")
	}
	b.WriteString("tcp(" + net.JoinHostPort(host, port) + ")/" + db)
	dsn := b.String()
	if p.RawQuery != "" {
		dsn += "?" + p.RawQuery
	}
	if !p.Query().Has("parseTime") {
		dsn = withParam(dsn, "parseTime", "true")
	}
	// Let the driver reject what it cannot use (unknown bool values, bad
	// durations) now rather than at the first connection.
	if _, err := mysql.ParseDSN(dsn); err != nil {
		return "", fmt.Errorf("parsing MySQL URL %q: %w", p.Redacted(), err)
	}
	return dsn, nil
}

// withParam appends key=value to a go-sql-driver DSN unless key is already set.
func withParam(dsn, key, value string) string {
	base, query, hasQuery := strings.Cut(dsn, "?")
	if hasQuery {
		if v, err := url.ParseQuery(query); err == nil && v.Has(key) {
			return dsn
		}
		return base + "?" + query + "&" + key + "=" + value
	}
	return base + "?" + key + "=" + value
}

// serverURL reads CM_TEST_MYSQL_DSN and returns it with no database selected.
func serverURL(t testing.TB) *url.URL {
	t.Helper()
	raw := os.Getenv(envMySQLDSN)
	if raw == "" {
		t.Fatalf("dbtest: %s is not set; run the tests with `make test` "+
			"(it starts a throwaway MariaDB), or set %s=mysql://root@127.0.0.1:3306/ to use a running server",
			envMySQLDSN, envMySQLDSN)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "mysql" {
		t.Fatalf("dbtest: %s must look like mysql://user:pass@host:port/?params", envMySQLDSN)
	}
	u.Path, u.RawPath = "/", ""
	return u
}

// openServer connects to the server with no database selected.
func openServer(t testing.TB, server *url.URL) *sql.DB {
	t.Helper()
	dsn, err := ParseURL(server.String())
	if err != nil {
		t.Fatalf("dbtest: %s: %v", envMySQLDSN, err)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatalf("dbtest: opening %s: %v", server.Redacted(), err)
	}
	return db
}

func dropDatabase(t testing.TB, server *url.URL, name string) {
	db := openServer(t, server)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
		t.Errorf("dbtest: dropping database %s: %v", name, err)
	}
}

func randomName(t testing.TB) string {
	t.Helper()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return dbPrefix + hex.EncodeToString(b[:])
}
