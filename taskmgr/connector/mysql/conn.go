package mysql

import (
	"context"
	"database/sql"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// Session settings. Both sides run in UTC so TIMESTAMP values travel as the
// same wall-clock text they are stored as. The sink turns off foreign key
// checks (batches are applied per table, not in source statement order) and
// sets NO_AUTO_VALUE_ON_ZERO so a replayed 0 in an AUTO_INCREMENT column
// stays 0; it is not strict, like a replica, so values the source accepted
// are accepted again.
var (
	sourceSession = map[string]string{"time_zone": "'+00:00'"}
	sinkSession   = map[string]string{
		"time_zone":          "'+00:00'",
		"sql_mode":           "'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
		"foreign_key_checks": "0",
	}
)

const dialTimeout = 10 * time.Second

// openDB returns a pool to e; it does not connect. interpolate makes the
// driver build statements client-side (one round trip per statement, which
// the sink wants); without it arguments go as prepared-statement
// parameters, which keep key comparisons in the column's collation.
func openDB(e Endpoint, session map[string]string, interpolate bool, maxOpen int) (*sql.DB, error) {
	c := driver.NewConfig()
	c.Net = "tcp"
	c.Addr = e.Addr()
	c.User = e.User
	c.Passwd = e.Password
	c.Params = session
	c.InterpolateParams = interpolate
	c.Timeout = dialTimeout
	c.MaxAllowedPacket = 0 // ask the server
	conn, err := driver.NewConnector(c)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxOpen)
	db.SetConnMaxLifetime(time.Hour)
	return db, nil
}

// ping connects once so a bad address or login fails at Open with a clear
// error rather than at the first query.
func ping(ctx context.Context, db *sql.DB, e Endpoint, side string) error {
	if err := db.PingContext(ctx); err != nil {
		if serverErrNo(err) != 0 {
			if side == scopeSink {
				return sinkFailure("connecting to sink "+e.Addr(), err)
			}
			return sourceFailure("connecting to source "+e.Addr(), err)
		}
		return connectFailure(side, e, err)
	}
	return nil
}
