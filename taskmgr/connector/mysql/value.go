package mysql

import (
	"bytes"
	"fmt"
)

// binlogValue turns a value decoded by go-mysql into one a sink can bind:
// byte slices are copied (the decoder may share buffers), decimals become
// their exact text, and when the binlog carried no signedness metadata
// (binlog_row_metadata=NONE) unsigned integers that decoded negative are
// reinterpreted using the table definition.
// unsigned is false when the decoder already knew the signedness.
func binlogValue(v any, dataType string, unsigned bool) any {
	switch x := v.(type) {
	case nil, string, uint64, float64, float32, uint8, uint16, uint32, int:
		return v
	case []byte:
		return bytes.Clone(x)
	case int8, int16, int32, int64:
		return fixUnsigned(v, dataType, unsigned)
	case fmt.Stringer: // decimal.Decimal and other exact values
		return x.String()
	}
	return v
}

func fixUnsigned(v any, dataType string, unsigned bool) any {
	if !unsigned {
		return v
	}
	switch x := v.(type) {
	case int8:
		return uint8(x)
	case int16:
		return uint16(x)
	case int32:
		if dataType == "mediumint" { // decoded sign-extended from 24 bits
			return uint32(x) & 0xFFFFFF
		}
		return uint32(x)
	case int64:
		return uint64(x)
	}
	return v
}
