package mysql

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDeriveMatchesServer runs schema statements on the real server and
// compares, after each, the definition derived from the statement and the
// version before it with the one the server then shows: columns, order,
// data types, signedness, generated columns and primary key.
func TestDeriveMatchesServer(t *testing.T) {
	e := newEnv(t)
	db := e.srcName
	state := map[tableRef]*tableDef{} // what the statements so far left; absent: no table
	prev := func(r tableRef) (*tableDef, bool) { return state[r], true }

	for _, c := range []struct {
		q         string
		underived bool // the statement's effect is not derived
	}{
		{q: `CREATE TABLE t (id INT UNSIGNED NOT NULL AUTO_INCREMENT, a VARCHAR(20) CHARACTER SET latin1, b BIGINT,
			c TEXT, d BLOB, e JSON, f DECIMAL(10,2) UNSIGNED, g MEDIUMINT UNSIGNED, h DATETIME(3), i ENUM('x','y'),
			j SET('p','q'), k BIT(3), l YEAR, m TINYBLOB, n VARBINARY(10), o BINARY(4), p CHAR(3), q FLOAT, r DOUBLE,
			s BIGINT AS (id * 2) VIRTUAL, u TIME, v TIMESTAMP NULL, w DATE, x MEDIUMTEXT, y LONGBLOB, z BOOL,
			zz SMALLINT ZEROFILL, bl BLOB(300), tl TEXT(70000), dd2 DEC(5,1), re REAL, it INTEGER, PRIMARY KEY (id))`},
		{q: "ALTER TABLE t ADD COLUMN aa INT FIRST"},
		{q: "ALTER TABLE t ADD COLUMN bb VARCHAR(5) AFTER a, ADD cc INT"},
		{q: "ALTER TABLE t DROP COLUMN aa"},
		{q: "ALTER TABLE t MODIFY c VARCHAR(20) AFTER id"},
		{q: "ALTER TABLE t CHANGE b b2 BIGINT UNSIGNED FIRST"},
		{q: "ALTER TABLE t RENAME COLUMN bb TO bb2"},
		{q: "ALTER TABLE t ADD COLUMN (dd INT, ee INT UNSIGNED)"},
		{q: "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (id, b2)"},
		{q: "ALTER TABLE t ADD COLUMN IF NOT EXISTS dd INT"},
		{q: "ALTER TABLE t DROP COLUMN IF EXISTS nothere"},
		{q: "ALTER TABLE t ADD UNIQUE KEY uk (dd)"},
		{q: "CREATE INDEX ix ON t (ee)"},
		{q: "DROP INDEX ix ON t"},
		{q: "ALTER TABLE t MODIFY COLUMN g INT"},
		{q: "ALTER TABLE t ALTER COLUMN dd SET DEFAULT 5"},
		{q: "ALTER TABLE t MODIFY COLUMN ee INT UNSIGNED FIRST, DROP COLUMN cc, ADD COLUMN cc2 TINYINT UNSIGNED AFTER ee"},
		{q: "RENAME TABLE t TO t2"},
		{q: "ALTER TABLE t2 RENAME TO t3, ADD COLUMN ff TEXT(100)"},
		{q: "CREATE TABLE t4 LIKE t3"},
		{q: "TRUNCATE TABLE t4"},
		{q: "DROP TABLE t4"},
		{q: "ALTER TABLE t3 DROP COLUMN s, DROP PRIMARY KEY, DROP COLUMN id, ADD PRIMARY KEY (b2)"},
		{q: "ALTER TABLE t3 ADD COLUMN solo INT NOT NULL, DROP PRIMARY KEY, ADD PRIMARY KEY (solo)"},
		{q: "ALTER TABLE t3 DROP COLUMN solo"},
		{q: "ALTER ONLINE TABLE t3 ADD COLUMN on1 INT"},
		{q: "ALTER TABLE t3 MODIFY b2 BIGINT UNSIGNED NOT NULL AFTER dd, ALGORITHM=INPLACE, LOCK=NONE"},
		{q: "ALTER TABLE t3 CHANGE COLUMN on1 On1 INT UNSIGNED"},
		{q: "ALTER TABLE t3 CONVERT TO CHARACTER SET utf8mb4, ADD COLUMN mi MEDIUMINT UNSIGNED FIRST"},
		{q: "ALTER TABLE t3 ADD COLUMN IF NOT EXISTS on1 INT, DROP COLUMN IF EXISTS gone, ADD INDEX (mi), COMMENT = 'x'"},
		{q: "CREATE TABLE n1 (a INT PRIMARY KEY, b INT UNIQUE, c VARCHAR(3) CHARACTER SET binary)"},
		{q: "CREATE OR REPLACE TABLE n1 (x BIGINT UNSIGNED, y INT, PRIMARY KEY (y, x))"},
		{q: "CREATE TABLE IF NOT EXISTS n1 (z INT PRIMARY KEY)"},
		{q: "RENAME TABLE n1 TO tmp, t3 TO n1, tmp TO t3"},
		{q: "CREATE TABLE sel1 (PRIMARY KEY (y)) SELECT * FROM t3", underived: true},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		p, err := parseStatement(c.q)
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", c.q, err)
		}
		if _, err := e.admin.ExecContext(ctx, "USE "+quoteIdent(db)+"; "+c.q); err != nil {
			cancel()
			t.Fatalf("%s: %v", c.q, err)
		}
		d := derive(p, db, prev, true)
		if c.underived {
			if len(d.underived) == 0 {
				t.Errorf("%s: derived %v", c.q, d.defs)
			}
			cancel()
			continue
		}
		if len(d.underived) > 0 {
			t.Errorf("%s: underived %v", c.q, d.underived)
		}
		for r, def := range d.defs {
			got, err := loadTableDef(ctx, e.admin, r)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			if diff := defDiff(def, got); diff != "" {
				t.Errorf("%s: %s derived differs from the server: %s", c.q, r.Name, diff)
			}
			if def == nil {
				delete(state, r)
			} else {
				state[r] = def
			}
		}
		cancel()
	}
}

// defDiff describes how a derived definition differs from the server's
// in what decoding uses; "" when it does not.
func defDiff(derived, server *tableDef) string {
	switch {
	case derived == nil && server == nil:
		return ""
	case derived == nil:
		return "derived: no table; server: " + strings.Join(server.Columns, ",")
	case server == nil:
		return "server: no table"
	}
	var out []string
	if !slices.Equal(derived.Columns, server.Columns) {
		out = append(out, "columns "+strings.Join(derived.Columns, ",")+" vs "+strings.Join(server.Columns, ","))
	}
	if !slices.Equal(derived.DataTypes, server.DataTypes) {
		out = append(out, "types "+strings.Join(derived.DataTypes, ",")+" vs "+strings.Join(server.DataTypes, ","))
	}
	if !slices.Equal(derived.Unsigned, server.Unsigned) {
		out = append(out, "unsigned differs")
	}
	if !slices.Equal(derived.Generated, server.Generated) {
		out = append(out, "generated differs")
	}
	if !slices.Equal(derived.pkNames(), server.pkNames()) {
		out = append(out, "primary key "+strings.Join(derived.pkNames(), ",")+" vs "+strings.Join(server.pkNames(), ","))
	}
	return strings.Join(out, "; ")
}
