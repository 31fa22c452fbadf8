package mysql

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/connector-manager/cm/model"
	"github.com/connector-manager/cm/taskmgr/connector"
)

// charsetTables creates the character set tables in the source database:
//   - made: VARCHAR, CHAR, TEXT, ENUM and SET columns in latin1, utf8mb3,
//     utf8mb4, gbk and cp1251, and VARBINARY, BINARY and BLOB columns; the
//     sink creates its target table from the source definition;
//   - given: utf8mb4 ENUM and SET members outside the BMP, which no server
//     definition shows exactly, so its target table is made here by hand;
//   - keyed: a primary key of a latin1 and a utf8mb4 string, whose
//     collation orders differ from byte order.
func (e *env) charsetTables(t *testing.T) {
	made := ` (
		id INT PRIMARY KEY,
		l_vc VARCHAR(20) CHARACTER SET latin1, l_ch CHAR(8) CHARACTER SET latin1, l_tx TEXT CHARACTER SET latin1,
		l_en ENUM('a','café','ÿ','?') CHARACTER SET latin1, l_st SET('x','é','ß') CHARACTER SET latin1,
		m3_vc VARCHAR(20) CHARACTER SET utf8mb3, m3_ch CHAR(8) CHARACTER SET utf8mb3, m3_tx TEXT CHARACTER SET utf8mb3,
		m3_en ENUM('a','é','€') CHARACTER SET utf8mb3, m3_st SET('x','ü','€') CHARACTER SET utf8mb3,
		m4_vc VARCHAR(20) CHARACTER SET utf8mb4, m4_ch CHAR(8) CHARACTER SET utf8mb4, m4_tx TEXT CHARACTER SET utf8mb4,
		m4_en ENUM('a','é','€') CHARACTER SET utf8mb4, m4_st SET('x','ü','€') CHARACTER SET utf8mb4,
		g_vc VARCHAR(20) CHARACTER SET gbk, g_ch CHAR(8) CHARACTER SET gbk, g_tx TEXT CHARACTER SET gbk,
		g_en ENUM('a','中','文') CHARACTER SET gbk, g_st SET('x','中','文') CHARACTER SET gbk,
		c_vc VARCHAR(20) CHARACTER SET cp1251, c_ch CHAR(8) CHARACTER SET cp1251, c_tx TEXT CHARACTER SET cp1251,
		c_en ENUM('a','Жж','я') CHARACTER SET cp1251, c_st SET('x','Ж','я') CHARACTER SET cp1251,
		b_vb VARBINARY(20), b_bn BINARY(6), b_bl BLOB
	) DEFAULT CHARSET=latin1`
	given := ` (
		id INT PRIMARY KEY,
		e ENUM('a','😀','é') CHARACTER SET utf8mb4,
		s SET('x','🎉','€') CHARACTER SET utf8mb4,
		v VARCHAR(20) CHARACTER SET utf8mb4
	)`
	keyed := ` (
		k1 VARCHAR(20) CHARACTER SET latin1 NOT NULL,
		k2 VARCHAR(20) CHARACTER SET utf8mb4 NOT NULL,
		v VARCHAR(20) CHARACTER SET gbk,
		PRIMARY KEY (k1, k2)
	)`
	e.exec(t, "CREATE TABLE "+e.src("made")+made+"; CREATE TABLE "+e.src("given")+given+"; CREATE TABLE "+e.src("keyed")+keyed)
	e.exec(t, "CREATE DATABASE IF NOT EXISTS `"+e.dstName+"`; CREATE TABLE "+e.dst("given")+given)
}

// charsetRows writes the rows: every string value is a hex literal with
// its column's character set, so the bytes are known whatever the test
// connection's character set. Row 1 holds bytes >= 0x80 (and 4-byte
// characters where the character set has them), row 2 empty strings, row
// 3 NULLs, row 4 quotes, backslashes and a GBK character whose second byte
// is a backslash.
func (e *env) charsetRows(t *testing.T) {
	e.exec(t, "INSERT INTO "+e.src("made")+" VALUES "+
		`(1, _latin1 X'636166E9', _latin1 X'FFC0', _latin1 X'80E9FF', 'café', 'é,ß',
		  _utf8mb3 X'C3A9E282AC', _utf8mb3 X'E282AC', _utf8mb3 X'C3BCE4B8AD', '€', 'ü,€',
		  _utf8mb4 X'F09F9880C3A9', _utf8mb4 X'F09F8E89', _utf8mb4 X'61F09F988062', 'é', 'ü,€',
		  _gbk X'D6D0CEC4', _gbk X'815C', _gbk X'D6D05C27', '中', '中,文',
		  _cp1251 X'C6E6', _cp1251 X'FF', _cp1251 X'C0FF80', 'Жж', 'Ж,я',
		  X'00FF80', X'FF00', X'00010280FF'),
		(2, '', '', '', 'a', '', '', '', '', 'a', '', '', '', '', 'a', '', '', '', '', 'a', '', '', '', '', 'a', '', '', '', ''),
		(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		(4, 'it''s \\ "q"', _latin1 X'5C27', _latin1 X'27E95C', '?', 'x',
		  'a\\b', 'q''', _utf8mb3 X'5C5C', 'a', 'x',
		  _utf8mb4 X'5CF09F98805C', '''', _utf8mb4 X'27F09F8E8927', '€', 'x',
		  _gbk X'815C815C', _gbk X'5C', _gbk X'B95C27', '文', 'x',
		  _cp1251 X'5CC6', _cp1251 X'27', _cp1251 X'FF5C', 'я', 'я',
		  X'5C27', X'5C', X'27')`)
	e.exec(t, "INSERT INTO "+e.src("given")+" VALUES "+
		`(1, _utf8mb4 X'F09F9880', _utf8mb4 X'782CF09F8E89', _utf8mb4 X'F09F9880'),
		(2, 'é', '€,🎉', ''), (3, NULL, NULL, NULL), (4, 'a', '', 'x')`)
	e.exec(t, "INSERT INTO "+e.src("keyed")+" VALUES "+
		`(_latin1 X'61', _utf8mb4 X'F09F9880', _gbk X'D6D0'), (_latin1 X'E9', '', _gbk X'815C'),
		(_latin1 X'7A', _utf8mb4 X'C3A9', NULL), (_latin1 X'E4', _utf8mb4 X'7A', _gbk X'CEC4'),
		(_latin1 X'FF', _utf8mb4 X'F09F8E89', ''), (_latin1 X'65', _utf8mb4 X'E282AC', _gbk X'5C'),
		(_latin1 X'C5', _utf8mb4 X'61', _gbk X'27'), (_latin1 X'', _utf8mb4 X'F09F9880', _gbk X'D6D0CEC4')`)
	if got := e.hexOf(t, "SELECT HEX(l_vc) FROM "+e.src("made")+" WHERE id = 1"); got != "636166E9" {
		t.Fatalf("fixture: latin1 value stored as %s", got)
	}
}

// charsetChanges updates and deletes rows by their non-ASCII keys and
// values, one update moving a key.
func (e *env) charsetChanges(t *testing.T) {
	e.exec(t, "UPDATE "+e.src("made")+` SET l_vc = _latin1 X'E9E8', m4_vc = _utf8mb4 X'F09F8E89', g_vc = _gbk X'CEC4D6D0',
		c_en = 'я', l_st = 'x,é', m4_en = '€' WHERE id = 1`)
	e.exec(t, "UPDATE "+e.src("keyed")+` SET v = _gbk X'D6D05C' WHERE k1 = _latin1 X'E9' AND k2 = ''`)
	e.exec(t, "UPDATE "+e.src("keyed")+` SET k1 = _latin1 X'F6' WHERE k1 = _latin1 X'E4'`)
	e.exec(t, "DELETE FROM "+e.src("keyed")+` WHERE k1 = _latin1 X'FF'`)
	e.exec(t, "UPDATE "+e.src("given")+` SET e = 'é', s = _utf8mb4 X'F09F8E89' WHERE id = 1`)
}

func (e *env) hexOf(t *testing.T, q string) string {
	t.Helper()
	var s string
	if err := e.admin.QueryRow(q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

// sameBytes fails unless each table holds the same rows in the source and
// target databases, compared as HEX() of every value, NULL apart from
// empty, and unless its columns have the same character sets, collations
// and types. It returns the rows compared.
func (e *env) sameBytes(t *testing.T, tables ...string) int {
	t.Helper()
	n := 0
	for _, tb := range tables {
		var cols, pk []string
		rows, err := e.admin.Query(`SELECT COLUMN_NAME, COLUMN_KEY FROM information_schema.COLUMNS
			WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, e.srcName, tb)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c, key string
			if err := rows.Scan(&c, &key); err != nil {
				t.Fatal(err)
			}
			cols = append(cols, "IFNULL(HEX("+quoteIdent(c)+"), 'NULL')")
			if key == "PRI" {
				pk = append(pk, quoteIdent(c))
			}
		}
		rows.Close()
		q := "SELECT CONCAT_WS(' ', " + strings.Join(cols, ", ") + ") FROM %s ORDER BY " + strings.Join(pk, ", ")
		src, dst := e.lines(t, strings.Replace(q, "%s", e.src(tb), 1)), e.lines(t, strings.Replace(q, "%s", e.dst(tb), 1))
		if strings.Join(src, "\n") != strings.Join(dst, "\n") {
			t.Errorf("table %s differs:\nsource:\n  %s\ntarget:\n  %s", tb, strings.Join(src, "\n  "), strings.Join(dst, "\n  "))
		}
		n += len(src)

		def := `SELECT CONCAT_WS(' ', COLUMN_NAME, HEX(COLUMN_TYPE), CHARACTER_SET_NAME, COLLATION_NAME)
			FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME = '` + tb + `' ORDER BY ORDINAL_POSITION`
		sd, dd := e.lines(t, strings.Replace(def, "%s", e.srcName, 1)), e.lines(t, strings.Replace(def, "%s", e.dstName, 1))
		if strings.Join(sd, "\n") != strings.Join(dd, "\n") {
			t.Errorf("table %s columns differ:\nsource:\n  %s\ntarget:\n  %s", tb, strings.Join(sd, "\n  "), strings.Join(dd, "\n  "))
		}
	}
	return n
}

func (e *env) lines(t *testing.T, q string) []string {
	t.Helper()
	rows, err := e.admin.Query(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// charsetRowCount is how many rows the three tables hold after
// charsetChanges.
const charsetRowCount = 4 + 4 + 7

func TestCharsetIncrByteExact(t *testing.T) {
	e := newEnv(t)
	e.charsetTables(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := openPipe(t, ctx, e.config(t, model.TypeIncr, nil))
	if start := p.src.(connector.Starter).Start(); len(start) != 1 { // resolved at open, made durable by the runner
		t.Fatalf("start = %+v", start)
	}
	e.charsetRows(t)
	e.charsetChanges(t)
	p.syncTo(t, p.src.(connector.Subtopicer).Subtopics()[0], e.binlogEndNow(t))
	if n := e.sameBytes(t, "made", "given", "keyed"); n != charsetRowCount {
		t.Errorf("compared %d rows, want %d", n, charsetRowCount)
	}
}

func TestCharsetFullByteExact(t *testing.T) {
	e := newEnv(t)
	e.charsetTables(t)
	e.charsetRows(t)
	e.charsetChanges(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Chunks of two rows: the keyed table's chunk boundaries are non-ASCII
	// keys, read and sent back as query arguments.
	p := openPipe(t, ctx, e.config(t, model.TypeFull, map[string]map[string]string{
		"coordinator": {"batchSize": "2", "parallelism": "2"},
	}))
	for i := 0; ; i++ {
		if i > 100 {
			t.Fatal("full import did not end")
		}
		if _, err := p.step(t, ctx); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if n := e.sameBytes(t, "made", "given", "keyed"); n != charsetRowCount {
		t.Errorf("compared %d rows, want %d", n, charsetRowCount)
	}
	if got := p.records(); got != charsetRowCount {
		t.Errorf("%d rows copied, want %d", got, charsetRowCount)
	}
}

// A table whose definition the server does not show exactly (ENUM and SET
// members and defaults outside the BMP print as '?') is refused when the
// sink would create its target from it, on both task types.
func TestCharsetRefusesInexactDefinition(t *testing.T) {
	for _, typ := range []model.TaskType{model.TypeIncr, model.TypeFull} {
		t.Run(string(typ), func(t *testing.T) {
			e := newEnv(t)
			e.exec(t, "CREATE TABLE "+e.src("fine")+" (id INT PRIMARY KEY, e ENUM('a','?','é') CHARACTER SET utf8mb3)")
			e.exec(t, "CREATE TABLE "+e.src("emoji")+` (id INT PRIMARY KEY,
				e ENUM('a','😀') CHARACTER SET utf8mb4, s SET('x','?') CHARACTER SET utf8mb4,
				d VARCHAR(5) CHARACTER SET utf8mb4 DEFAULT '🎉', ok ENUM('a','é') CHARACTER SET utf8mb4)`)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, snk := build(t, e.config(t, typ, nil))
			err := snk.Open(ctx)
			snk.Close()
			var ce *connector.Error
			if !errors.As(err, &ce) || ce.Detail.Code != codeInexactDefinition || !ce.Permanent {
				t.Fatalf("Open: %v; want a permanent %s", err, codeInexactDefinition)
			}
			msg := ce.Detail.Message
			for _, want := range []string{e.srcName + ".emoji", "`e` (ENUM member)", "`s` (SET member)", "`d` (default)"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not name %q", msg, want)
				}
			}
			if strings.Contains(msg, "fine") || strings.Contains(msg, "`ok`") {
				t.Errorf("message %q names a column that is exact", msg)
			}
			// The refused table is not created; the exact one (a real '?'
			// in a 3-byte character set) is.
			for tb, want := range map[string]int{"emoji": 0, "fine": 1} {
				var n int
				if err := e.admin.QueryRow(`SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
					e.dstName, tb).Scan(&n); err != nil || n != want {
					t.Errorf("target table %s: %d tables, %v; want %d", tb, n, err, want)
				}
			}
		})
	}
}
