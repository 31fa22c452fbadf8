package model

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/go-gormigrate/gormigrate/v2"
	gomysql "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/connector-manager/cm/migrations"
)

// Dialect names the store backend.
type Dialect string

// Supported backends.
const (
	SQLite Dialect = "sqlite"
	MySQL  Dialect = "mysql"
)

// storeIOTimeout bounds each read and write of a MySQL store connection
// (readTimeout, writeTimeout in the --db URL override it; 0 is none), and
// storeDialTimeout connecting to it (timeout).
const (
	storeIOTimeout   = 10 * time.Second
	storeDialTimeout = 5 * time.Second
)

// DSN is a parsed --db value: sqlite:PATH or mysql://user:pass@host:port/db?params.
type DSN struct {
	Dialect Dialect
	// Path is the SQLite file.
	Path string
	// Driver is the go-sql-driver DSN for MySQL; Migrations the same
	// without the read and write timeouts (a migration's ALTER of a large
	// table may run for minutes).
	Driver, Migrations string
	// Redacted is the DSN with its password hidden, for logs.
	Redacted string
}

// ParseDSN parses the --db flag value.
func ParseDSN(s string) (DSN, error) {
	switch {
	case strings.HasPrefix(s, "sqlite:"):
		p := strings.TrimPrefix(s, "sqlite:")
		p = strings.TrimPrefix(p, "//")
		if p == "" {
			return DSN{}, fmt.Errorf("%w: --db sqlite: needs a file path, e.g. sqlite:./data/cm.db", ErrInvalidArgument)
		}
		return DSN{Dialect: SQLite, Path: p, Redacted: s}, nil
	case strings.HasPrefix(s, "mysql://"):
		u, err := url.Parse(s)
		if err != nil {
			return DSN{}, fmt.Errorf("%w: --db: %v", ErrInvalidArgument, err)
		}
		db := strings.TrimPrefix(u.Path, "/")
		if db == "" || strings.Contains(db, "/") {
			return DSN{}, fmt.Errorf("%w: --db mysql:// needs a database name, e.g. mysql://user:pass@127.0.0.1:3306/cm", ErrInvalidArgument)
		}
		if u.Host == "" {
			return DSN{}, fmt.Errorf("%w: --db mysql:// needs host:port", ErrInvalidArgument)
		}
		cfg := gomysql.NewConfig()
		cfg.Net = "tcp"
		cfg.Addr = u.Host
		if u.Port() == "" {
			cfg.Addr = u.Host + ":3306"
		}
		cfg.DBName = db
		if u.User != nil {
			cfg.User = u.User.Username()
			cfg.Passwd, _ = u.User.Password()
		}
		cfg.ParseTime = true
		cfg.Loc = time.UTC
		// Rows matched, not rows changed: a compare-and-swap that rewrites
		// identical values must still count as a hit.
		cfg.ClientFoundRows = true
		// Arguments are interpolated by the driver (the connection's
		// charset is utf8mb4, which it escapes safely): one round trip per
		// statement instead of prepare, execute and close.
		cfg.InterpolateParams = true
		// A store that stops answering without closing the connection (a
		// partition that drops packets) makes a statement fail after
		// storeIOTimeout instead of holding its caller, the API call or
		// the runtime loop, for as long as TCP keeps the socket.
		cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = storeDialTimeout, storeIOTimeout, storeIOTimeout
		cfg.Params = map[string]string{"charset": "utf8mb4"}
		for k, v := range u.Query() {
			if len(v) == 0 {
				continue
			}
			timeouts := map[string]*time.Duration{"timeout": &cfg.Timeout, "readTimeout": &cfg.ReadTimeout, "writeTimeout": &cfg.WriteTimeout}
			if d, ok := timeouts[k]; ok {
				dur, err := time.ParseDuration(v[0])
				if err != nil || dur < 0 {
					return DSN{}, fmt.Errorf("%w: --db %s=%q: want a duration such as 10s (0: none)", ErrInvalidArgument, k, v[0])
				}
				*d = dur
				continue
			}
			cfg.Params[k] = v[0]
		}
		mig := cfg.Clone()
		mig.ReadTimeout, mig.WriteTimeout = 0, 0
		red := *u
		if u.User != nil {
			if _, ok := u.User.Password(); ok {
				red.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
		}
		return DSN{Dialect: MySQL, Driver: cfg.FormatDSN(), Migrations: mig.FormatDSN(), Redacted: red.String()}, nil
	}
	return DSN{}, fmt.Errorf("%w: --db %q must start with sqlite: or mysql://", ErrInvalidArgument, s)
}

// Open connects to the store and applies pending migrations when migrate is true.
func Open(ctx context.Context, dsn DSN, migrate bool) (*Store, error) {
	gcfg := &gorm.Config{
		Logger:                 logger.Discard,
		NowFunc:                func() time.Time { return time.Now().UTC() },
		SkipDefaultTransaction: true,
		TranslateError:         true,
	}
	var dial gorm.Dialector
	switch dsn.Dialect {
	case SQLite:
		if dir := filepath.Dir(dsn.Path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("creating %s: %w", dir, err)
			}
		}
		// WAL lets readers run beside the writer; immediate transactions take
		// the write lock up front so two writers queue on busy_timeout instead
		// of failing at commit. secure_delete zeroes what a write frees, so a
		// superseded secret (an updated password) does not linger in the
		// file's free pages (docs/security.md, "Secrets").
		dial = sqlite.Open(dsn.Path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=secure_delete(1)&_txlock=immediate")
	case MySQL:
		dial = mysql.New(mysql.Config{DSN: dsn.Driver})
	default:
		return nil, fmt.Errorf("%w: unknown dialect %q", ErrInvalidArgument, dsn.Dialect)
	}
	db, err := gorm.Open(dial, gcfg)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", dsn.Redacted, translate(err))
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	switch dsn.Dialect {
	case SQLite:
		sqlDB.SetMaxOpenConns(4)
	case MySQL:
		// As many kept idle as may be open: with fewer, a burst of calls
		// above the idle count closes connections as they are returned and
		// opens new ones for the next (a TCP connect and a login each).
		// Unused ones go after a few minutes.
		sqlDB.SetMaxOpenConns(32)
		sqlDB.SetMaxIdleConns(32)
		sqlDB.SetConnMaxIdleTime(3 * time.Minute)
		sqlDB.SetConnMaxLifetime(30 * time.Minute)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("connecting to %s: %w", dsn.Redacted, errors.Join(ErrUnavailable, err))
	}
	s := &Store{db: db, dialect: dsn.Dialect, obs: &observerBox{}, migrations: dsn.Migrations}
	if migrate {
		if err := s.Migrate(); err != nil {
			_ = sqlDB.Close()
			return nil, err
		}
	}
	return s, nil
}

// Migrate applies pending migrations, recording them in the schema table.
// On MySQL they run on a connection of their own without the store's read
// and write timeouts (DSN.Migrations).
func (s *Store) Migrate() error {
	db := s.db
	if s.migrations != "" {
		mdb, err := gorm.Open(mysql.New(mysql.Config{DSN: s.migrations}), &gorm.Config{Logger: logger.Discard, TranslateError: true})
		if err != nil {
			return fmt.Errorf("migrating: %w", translate(err))
		}
		if sqlDB, err := mdb.DB(); err == nil {
			sqlDB.SetMaxOpenConns(1)
			defer sqlDB.Close()
		}
		db = mdb
	}
	opts := *gormigrate.DefaultOptions
	opts.TableName = migrations.TableName
	opts.UseTransaction = s.dialect == SQLite // MySQL DDL commits implicitly anyway
	m := gormigrate.New(db, &opts, migrations.All())
	if err := m.Migrate(); err != nil {
		return fmt.Errorf("migrating: %w", translate(err))
	}
	return nil
}

// AppliedMigrations lists the ids recorded in the schema table.
func (s *Store) AppliedMigrations(ctx context.Context) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Table(migrations.TableName).Order("id").Pluck("id", &ids).Error
	return ids, translate(err)
}

// Close closes the connection pool.
func (s *Store) Close() error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Dialect reports the backend.
func (s *Store) Dialect() Dialect { return s.dialect }

// translate maps driver errors onto the model's categories, once.
// errLockLost marks a transaction that lost a deadlock or a lock wait; Tx
// retries those.
var errLockLost = errors.New("the transaction lost a lock")

func translate(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%w", ErrNotFound)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%w: %v", ErrAlreadyExists, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	}
	var me *gomysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1062:
			return fmt.Errorf("%w: %v", ErrAlreadyExists, err)
		case 1205, 1213: // lock wait timeout, deadlock: Tx runs the transaction again
			return fmt.Errorf("%w: %w: %v", ErrUnavailable, errLockLost, err)
		}
		return err
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "interrupted (9)"):
		// SQLITE_INTERRUPT: the statement was cut because its context
		// ended (the client went away), which is no fault of the store.
		return fmt.Errorf("%w: %v", context.Canceled, err)
	case strings.Contains(msg, "UNIQUE constraint failed"):
		return fmt.Errorf("%w: %v", ErrAlreadyExists, err)
	case strings.Contains(msg, "database is locked"), strings.Contains(msg, "SQLITE_BUSY"),
		errors.Is(err, gomysql.ErrInvalidConn), strings.Contains(msg, "connection refused"),
		strings.Contains(msg, "bad connection"), strings.Contains(msg, "sql: database is closed"):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}
