package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// chunk is a primary key range (Lo, Hi] of one table; a nil Lo is the
// start of the table, a nil Hi its end.
type chunk struct {
	seq   int // global delivery order
	table *snapTable
	lo    key
	hi    key
}

// key is an encoded primary key value, one string per key column (see
// encodeValue); encoded keys survive JSON and compare for equality.
type key []string

// args decodes k into query arguments. Strings go as prepared statement
// parameters in the connection character set, so they compare in the
// column's collation, the same order ORDER BY used.
func (k key) args() ([]any, error) {
	out := make([]any, len(k))
	for i, s := range k {
		v, err := decodeValue(s)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// encodeValue writes a scanned value as tagged text: i:int, u:uint,
// f:float, b:hex bytes, t:time, n: for NULL.
func encodeValue(v any) string { return string(appendValue(nil, v)) }

// appendValue appends encodeValue(v) to buf without allocating for the
// common types: the full import checksums every row with it.
func appendValue(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, "n:"...)
	case int64:
		return strconv.AppendInt(append(buf, "i:"...), x, 10)
	case uint64:
		return strconv.AppendUint(append(buf, "u:"...), x, 10)
	case float64:
		return strconv.AppendFloat(append(buf, "f:"...), x, 'g', -1, 64)
	case float32:
		return strconv.AppendFloat(append(buf, "f:"...), float64(x), 'g', -1, 32)
	case []byte:
		return hex.AppendEncode(append(buf, "b:"...), x)
	case string:
		return hex.AppendEncode(append(buf, "b:"...), []byte(x))
	case time.Time:
		return x.UTC().AppendFormat(append(buf, "t:"...), time.RFC3339Nano)
	case bool:
		if x {
			return append(buf, "i:1"...)
		}
		return append(buf, "i:0"...)
	}
	return hex.AppendEncode(append(buf, "b:"...), fmt.Append(nil, v))
}

func decodeValue(s string) (any, error) {
	tag, body, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("key value %q has no type tag", s)
	}
	switch tag {
	case "n":
		return nil, nil
	case "i":
		return strconv.ParseInt(body, 10, 64)
	case "u":
		return strconv.ParseUint(body, 10, 64)
	case "f":
		f, err := strconv.ParseFloat(body, 64)
		if err == nil && (math.IsInf(f, 0) || math.IsNaN(f)) {
			err = errors.New("not finite")
		}
		return f, err
	case "b":
		return hex.DecodeString(body)
	case "t":
		return time.Parse(time.RFC3339Nano, body)
	}
	return nil, fmt.Errorf("key value %q has an unknown type tag", s)
}

// after is the keyset condition "pk > k": for (a, b) it is
// a > ? OR (a = ? AND b > ?). inclusive makes the last comparison >=... <=
// (used for "pk <= k" with op "<").
func keyCondition(cols []string, k key, op string, inclusive bool) (string, []any, error) {
	vals, err := k.args()
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	var args []any
	b.WriteByte('(')
	for i := range cols {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteByte('(')
		for j := 0; j < i; j++ {
			b.WriteString(quoteIdent(cols[j]) + " = ? AND ")
			args = append(args, vals[j])
		}
		last := op
		if inclusive && i == len(cols)-1 {
			last += "="
		}
		b.WriteString(quoteIdent(cols[i]) + " " + last + " ?)")
		args = append(args, vals[i])
	}
	b.WriteByte(')')
	return b.String(), args, nil
}

// rangeWhere is the WHERE clause of (lo, hi] ("1=1" for the whole table).
func rangeWhere(cols []string, lo, hi key) (string, []any, error) {
	var conds []string
	var args []any
	if lo != nil {
		c, a, err := keyCondition(cols, lo, ">", false)
		if err != nil {
			return "", nil, err
		}
		conds, args = append(conds, c), append(args, a...)
	}
	if hi != nil {
		c, a, err := keyCondition(cols, hi, "<", true)
		if err != nil {
			return "", nil, err
		}
		conds, args = append(conds, c), append(args, a...)
	}
	if len(conds) == 0 {
		return "1=1", nil, nil
	}
	return strings.Join(conds, " AND "), args, nil
}

func quotedList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quoteIdent(c)
	}
	return strings.Join(q, ",")
}

// nextBoundary returns the key of the size-th row after lo in primary key
// order, or nil when fewer rows remain: the chunk after lo is then the
// rest of the table. It reads the primary key index only.
func nextBoundary(ctx context.Context, db *sql.DB, def *tableDef, lo key, size int) (key, error) {
	pk := def.pkNames()
	where, args, err := rangeWhere(pk, lo, nil)
	if err != nil {
		return nil, err
	}
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s LIMIT 1 OFFSET %d",
		quotedList(pk), def.Ref.quoted(), where, quotedList(pk), size-1)
	vals := make([]any, len(pk))
	ptrs := make([]any, len(pk))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	switch err := db.QueryRowContext(ctx, q, args...).Scan(ptrs...); {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, err
	}
	k := make(key, len(vals))
	for i, v := range vals {
		k[i] = encodeValue(v)
	}
	return k, nil
}

// readChunk reads the rows of (lo, hi] in primary key order, with a
// CRC-32 of their values.
func readChunk(ctx context.Context, db *sql.DB, def *tableDef, lo, hi key) (rows [][]any, crc uint32, err error) {
	where, args, err := rangeWhere(def.pkNames(), lo, hi)
	if err != nil {
		return nil, 0, err
	}
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s",
		quotedList(def.Columns), def.Ref.quoted(), where, quotedList(def.pkNames()))
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close()
	// The rows are read from the driver itself: database/sql would copy
	// every byte value into its own allocation and convert each value
	// through reflection-heavy Scan; here they are copied into one arena.
	err = conn.Raw(func(dc any) error {
		rows, crc, err = scanChunk(ctx, dc, q, args, len(def.Columns))
		return err
	})
	return rows, crc, err
}

// chunkArena is the size of the blocks a chunk's byte values are copied to.
const chunkArena = 256 << 10

// scanChunk runs q as a prepared statement on a driver connection and
// returns its rows with the checksum of the chunk (see rowCRC).
func scanChunk(ctx context.Context, dc any, q string, args []any, n int) (rows [][]any, crc uint32, err error) {
	prep, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, 0, fmt.Errorf("driver connection %T cannot prepare statements", dc)
	}
	st, err := prep.PrepareContext(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	defer st.Close()
	query, ok := st.(driver.StmtQueryContext)
	if !ok {
		return nil, 0, fmt.Errorf("driver statement %T cannot query", st)
	}
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	r, err := query.QueryContext(ctx, named)
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	// Rows share one backing array per 1,024 rows, and byte values (the
	// driver's are only valid until the next row) share arena blocks.
	backing := make([]any, 0, 1024*n)
	dest := make([]driver.Value, n)
	arena := make([]byte, 0, chunkArena)
	text := make([]byte, 0, 1024) // a row's checksum text, reused
	for {
		if err := r.Next(dest); err != nil {
			if errors.Is(err, io.EOF) {
				return rows, crc, nil
			}
			return nil, 0, err
		}
		if len(backing)+n > cap(backing) {
			backing = make([]any, 0, cap(backing))
		}
		vals := backing[len(backing) : len(backing)+n : len(backing)+n]
		backing = backing[:len(backing)+n]
		for i, v := range dest {
			if b, ok := v.([]byte); ok {
				if len(arena)+len(b) > cap(arena) {
					arena = make([]byte, 0, max(chunkArena, len(b)))
				}
				start := len(arena)
				arena = append(arena, b...)
				v = arena[start:len(arena):len(arena)]
			}
			vals[i] = v
		}
		var c uint32
		c, text = rowCRC(text, vals)
		crc += c
		rows = append(rows, vals)
	}
}

// rowCRC is the CRC-32 of one row's values. A table's checksum is the sum
// of its rows' CRCs (mod 2^32), so it does not depend on read order.
func rowCRC(buf []byte, vals []any) (uint32, []byte) {
	buf = buf[:0]
	for _, v := range vals {
		buf = append(appendValue(buf, v), 0)
	}
	return crc32.ChecksumIEEE(buf), buf
}
