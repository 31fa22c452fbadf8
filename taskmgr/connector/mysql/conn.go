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

// Connection character sets (see charset.go). Rows travel in the binary
// character set: the server sends a string value as the bytes its column
// stores, in the column's own character set, and stores the bytes it is sent
// into a column as they are, the way a replica applies row events. Statement
// text that carries characters (SHOW CREATE TABLE and the CREATE TABLE made
// from it) travels as utf8mb4, so the server converts it to and from each
// column's character set.
const (
	rowCollation  = "binary"
	textCollation = "utf8mb4_general_ci"
)

// openDB returns a pool to e for reading or writing rows (binary character
// set); it does not connect. interpolate makes the driver build statements
// client-side (one round trip per statement, which the sink wants); without
// it arguments go as prepared-statement parameters, which keep key
// comparisons in the column's collation.
func openDB(e endpoint, session map[string]string, interpolate bool, maxOpen int) (*sql.DB, error) {
	return open(e, session, interpolate, maxOpen, rowCollation)
}

// openTextDB returns a pool to e for statements whose text carries
// characters: table definitions, read and created.
func openTextDB(e endpoint, session map[string]string, maxOpen int) (*sql.DB, error) {
	return open(e, session, false, maxOpen, textCollation)
}

func open(e endpoint, session map[string]string, interpolate bool, maxOpen int, collation string) (*sql.DB, error) {
	c := driver.NewConfig()
	c.Net = "tcp"
	c.Addr = e.Addr()
	c.User = e.User
	c.Passwd = e.Password
	c.Params = session
	c.Collation = collation // the handshake's character set: no SET NAMES round trip
	c.InterpolateParams = interpolate
	c.Timeout = dialTimeout
	if collation == rowCollation {
		c.ReadTimeout, c.WriteTimeout = e.IOTimeout, e.IOTimeout
	}
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
func ping(ctx context.Context, db *sql.DB, e endpoint, side string) error {
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
