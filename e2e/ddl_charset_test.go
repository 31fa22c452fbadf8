package e2e

import (
	"context"
	"database/sql"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/connector-manager/cm/internal/dbtest"
)

// TestDDLFromNonUTF8Clients: schema statements sent by clients whose
// connection character set is latin1, gbk or cp1251 (the binlog keeps a
// statement's bytes in that character set) name columns and comments with
// non-ASCII characters; the target gets the same names and text, compared
// by their bytes (HEX) in information_schema, and the rows after them.
func TestDDLFromNonUTF8Clients(t *testing.T) {
	e := newEnv(t)
	e.exec(t, "CREATE TABLE "+e.srcT("a")+" (id INT PRIMARY KEY, v INT)")
	n, name := startIncrWith(t, e, nil)
	// Each client sends its names and comments in its own character set:
	// "café"/"Größe", "中文"/"数据" in GBK, "Привет"/"мир" in cp1251.
	for _, c := range []struct{ charset, column, comment string }{
		{"latin1", "caf\xe9", "Gr\xf6\xdfe"},
		{"gbk", "\xd6\xd0\xce\xc4", "\xca\xfd\xbe\xdd"},
		{"cp1251", "\xcf\xf0\xe8\xe2\xe5\xf2", "\xec\xe8\xf0"},
	} {
		cfg, err := driver.ParseDSN(dbtest.ServerDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Params = map[string]string{"charset": c.charset}
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		stmt := "ALTER TABLE " + e.srcT("a") + " ADD COLUMN `" + c.column + "` VARCHAR(10) COMMENT '" + c.comment + "', COMMENT = '" + c.comment + "'"
		_, err = db.ExecContext(ctx, stmt)
		cancel()
		db.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.charset, err)
		}
	}
	e.exec(t, "INSERT INTO "+e.srcT("a")+" VALUES (1, 1, 'x', 'y', 'z')")
	reached(t, n, name, e.subtopic(), e.binlogEnd(t), 60*time.Second)
	shape := func(db string) string {
		var cols, comment string
		if err := e.admin.QueryRow("SELECT GROUP_CONCAT(HEX(COLUMN_NAME), ':', HEX(COLUMN_COMMENT) ORDER BY ORDINAL_POSITION) FROM information_schema.COLUMNS "+
			"WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'a'", db).Scan(&cols); err != nil {
			t.Fatal(err)
		}
		if err := e.admin.QueryRow("SELECT HEX(TABLE_COMMENT) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'a'", db).Scan(&comment); err != nil {
			t.Fatal(err)
		}
		return cols + " | " + comment
	}
	if s, d := shape(e.src), shape(e.dst); s != d {
		t.Fatalf("source %s\ntarget %s", s, d)
	}
	e.same(t, "a")
}
