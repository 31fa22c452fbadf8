package mysql

import (
	"bytes"
	"hash/crc32"
	"strings"
	"testing"
	"time"
)

// TestRowCRC pins the row checksum to its definition: the CRC-32 of the
// values' key texts (appendValue), each followed by a 0 byte. Checkpoints of a
// full import carry running sums of it, so it must not drift.
func TestRowCRC(t *testing.T) {
	long := bytes.Repeat([]byte{0x00, 0xff, 'a'}, 200) // longer than the hex buffer
	for _, row := range [][]any{
		{int64(1), []byte("name 1"), []byte("0.14"), nil},
		{uint64(18446744073709551615), float64(0.1), float32(2.5), time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)},
		{long, strings.Repeat("é", 300), []byte{}, ""},
		{},
	} {
		var text []byte
		for _, v := range row {
			text = append(appendValue(text, v), 0)
		}
		got, _ := rowCRC(make([]byte, 0, 8), row)
		if want := crc32.ChecksumIEEE(text); got != want {
			t.Errorf("rowCRC(%.60v) = %08x, want %08x", row, got, want)
		}
	}
}
