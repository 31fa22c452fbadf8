package mysql

import (
	"slices"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// rowDecoder decodes the row events of the selected tables; it is the
// syncer's RowsEventDecodeFunc and runs on the syncer's goroutine. It skips
// the rows of tables that are not selected (a shared server's binlog is
// mostly other tables, and a rewind scans it from the start of a file),
// and it applies column signedness itself: the library rebuilds a map of
// the unsigned columns from the table map for every row image it decodes,
// which cost more than the rest of decoding an integer. So the first time
// a table map is used, the decoder notes its unsigned integer columns and
// empties (but keeps non-nil) its signedness bitmap; the library then
// decodes every integer as signed, and the decoder reinterprets the
// unsigned columns' values, which have the same bits.
//
// A table map reaches the source's reading goroutine only inside the row
// events decoded after that change (through the syncer's channel), so the
// two goroutines never touch a table map at the same time.
type rowDecoder struct {
	match func(db, table string) bool
	// unsigned caches, by table id, the unsigned columns of the last table
	// map seen with that id.
	unsigned map[uint64]unsignedColumns
}

type unsignedColumns struct {
	tm   *replication.TableMapEvent
	cols []unsignedColumn
}

type unsignedColumn struct {
	index int
	int24 bool // MEDIUMINT: decoded sign-extended from 24 bits
}

func newRowDecoder(match func(db, table string) bool) *rowDecoder {
	return &rowDecoder{match: match, unsigned: map[uint64]unsignedColumns{}}
}

func (d *rowDecoder) decode(e *replication.RowsEvent, data []byte) error {
	pos, err := e.DecodeHeader(data)
	if err != nil {
		return err
	}
	if e.Table == nil || !d.match(string(e.Table.Schema), string(e.Table.Table)) {
		return nil
	}
	cols := d.unsignedColumns(e.Table)
	if err := e.DecodeData(pos, data); err != nil {
		return err
	}
	if len(cols) == 0 {
		return nil
	}
	for _, row := range e.Rows {
		for _, c := range cols {
			if c.index < len(row) {
				row[c.index] = asUnsigned(row[c.index], c.int24)
			}
		}
	}
	return nil
}

// unsignedColumns returns the unsigned integer columns of tm, taking them
// out of its signedness bitmap the first time (see rowDecoder).
func (d *rowDecoder) unsignedColumns(tm *replication.TableMapEvent) []unsignedColumn {
	if c, ok := d.unsigned[tm.TableID]; ok && c.tm == tm {
		return c.cols
	}
	var cols []unsignedColumn
	if len(tm.SignednessBitmap) > 0 {
		for i, u := range tm.UnsignedMap() {
			if u {
				cols = append(cols, unsignedColumn{index: i, int24: tm.ColumnType[i] == gomysql.MYSQL_TYPE_INT24})
			}
		}
		slices.SortFunc(cols, func(a, b unsignedColumn) int { return a.index - b.index })
		tm.SignednessBitmap = tm.SignednessBitmap[:0]
	}
	d.unsigned[tm.TableID] = unsignedColumns{tm: tm, cols: cols}
	return cols
}

// carriesSignedness reports whether the server logged column signedness
// with tm (binlog_row_metadata MINIMAL or FULL), which rowDecoder has then
// applied: an emptied bitmap is still non-nil.
func carriesSignedness(tm *replication.TableMapEvent) bool {
	return tm.SignednessBitmap != nil
}

// asUnsigned reinterprets an integer decoded as signed.
func asUnsigned(v any, int24 bool) any {
	switch x := v.(type) {
	case int8:
		return uint8(x)
	case int16:
		return uint16(x)
	case int32:
		if int24 {
			return uint32(x) & 0xFFFFFF
		}
		return uint32(x)
	case int64:
		return uint64(x)
	}
	return v
}

// appendDatetime appends t as DATETIME text with dec fractional digits,
// as the server prints it: 2006-01-02 15:04:05.000. The decoder yields a
// time.Time for DATETIME and TIMESTAMP values it can represent (zero and
// partial dates stay text), and printing it here costs a fraction of the
// library's formatting.
func appendDatetime(b []byte, t time.Time, dec int) []byte {
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, ' ')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, second, 2)
	if dec > 0 {
		dec = min(dec, 6)
		frac := t.Nanosecond() / 1000
		var digits [6]byte
		appendDigits(digits[:0], frac, 6)
		b = append(append(b, '.'), digits[:dec]...)
	}
	return b
}

// appendDigits appends v (>= 0) in decimal, zero-padded to width.
func appendDigits(b []byte, v, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for v > 0 || i > len(tmp)-width {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
	}
	return append(b, tmp[i:]...)
}

// datetimeText is appendDatetime as a string.
func datetimeText(t time.Time, dec int) string {
	var buf [32]byte
	return string(appendDatetime(buf[:0], t, dec))
}
