package mysql

import "testing"

// TestClientCollation reads Q_CHARSET_CODE past the variables servers
// write before it, and gives up on what it cannot walk.
func TestClientCollation(t *testing.T) {
	charset := []byte{qCharsetCode, 8, 0, 8, 0, 45, 0} // latin1_swedish_ci (8) client and connection, server 45
	for _, c := range []struct {
		name string
		vars []byte
		want uint16
		ok   bool
	}{
		{"alone", charset, 8, true},
		{"after flags, sql_mode, catalog, auto_increment", append([]byte{
			qFlags2Code, 0, 0, 0, 0,
			qSQLModeCode, 1, 2, 3, 4, 5, 6, 7, 8,
			qCatalogCode, 3, 'd', 'e', 'f', 0,
			qAutoIncrement, 1, 0, 1, 0,
		}, charset...), 8, true},
		{"after time zone, invoker, updated dbs, MariaDB's xid", append([]byte{
			qTimeZoneCode, 3, 'U', 'T', 'C',
			qInvoker, 4, 'r', 'o', 'o', 't', 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't',
			qUpdatedDBNames, 2, 'a', 0, 'b', 'c', 0,
			qXID, 1, 2, 3, 4, 5, 6, 7, 8,
		}, charset...), 8, true},
		{"too many databases", append([]byte{qUpdatedDBNames, 254}, charset...), 8, true},
		{"none", []byte{qFlags2Code, 0, 0, 0, 0}, 0, false},
		{"unknown variable first", append([]byte{200, 1, 2}, charset...), 0, false},
		{"cut short", []byte{qCharsetCode, 8, 0}, 0, false},
		{"catalog cut short", []byte{qCatalogCode}, 0, false},
	} {
		if got, ok := clientCollation(c.vars); got != c.want || ok != c.ok {
			t.Errorf("%s: %d %v, want %d %v", c.name, got, ok, c.want, c.ok)
		}
	}
}

// FuzzClientCollation: any status variables are walked without a panic,
// and a collation found is read from within them.
func FuzzClientCollation(f *testing.F) {
	f.Add([]byte{qCharsetCode, 8, 0, 8, 0, 45, 0})
	f.Add([]byte{qCatalogCode, 3, 'd', 'e', 'f', 0, qCharsetCode, 28, 0, 28, 0, 8, 0})
	f.Add([]byte{qUpdatedDBNames, 2, 'a', 0, 'b'})
	f.Fuzz(func(t *testing.T, vars []byte) {
		if id, ok := clientCollation(vars); !ok && id != 0 {
			t.Fatalf("no collation found, yet id %d", id)
		}
	})
}
