package mysql

import (
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"unicode/utf8"
)

// A statement is logged as the bytes its client sent, in the client's
// character set (the query event's Q_CHARSET_CODE status variable). A
// schema statement from a latin1 client that names a column `café` holds
// the byte E9, which is not UTF-8: the sink would create a column with
// another name, and the DDL history could not record it. So before a
// statement with non-ASCII bytes from a client whose character set is not
// UTF-8 is looked at, the source server converts it to utf8mb4, with its
// own character set tables (one round trip; schema statements are rare).

// Query event status variables (MySQL and MariaDB log_event.h), with the
// length of their values where it is fixed.
const (
	qFlags2Code              = 0
	qSQLModeCode             = 1
	qCatalogCode             = 2
	qAutoIncrement           = 3
	qCharsetCode             = 4
	qTimeZoneCode            = 5
	qCatalogNZCode           = 6
	qLCTimeNamesCode         = 7
	qCharsetDatabaseCode     = 8
	qTableMapForUpdateCode   = 9
	qMasterDataWrittenCode   = 10
	qInvoker                 = 11
	qUpdatedDBNames          = 12
	qMicroseconds            = 13
	qCommitTS                = 14
	qCommitTS2               = 15
	qExplicitDefaultsForTS   = 16
	qDDLLoggedWithXID        = 17
	qDefaultCollationUTF8MB4 = 18
	qSQLRequirePrimaryKey    = 19
	qDefaultTableEncryption  = 20
	qHRNow                   = 128 // MariaDB
	qXID                     = 129 // MariaDB
)

var fixedStatusVar = map[byte]int{
	qFlags2Code: 4, qSQLModeCode: 8, qAutoIncrement: 4, qCharsetCode: 6, qLCTimeNamesCode: 2,
	qCharsetDatabaseCode: 2, qTableMapForUpdateCode: 8, qMasterDataWrittenCode: 4, qMicroseconds: 3,
	qCommitTS: 8, qCommitTS2: 8, qExplicitDefaultsForTS: 1, qDDLLoggedWithXID: 8, qDefaultCollationUTF8MB4: 2,
	qSQLRequirePrimaryKey: 1, qDefaultTableEncryption: 1, qHRNow: 3, qXID: 8,
}

// clientCollation returns the collation id of the client that sent a
// logged statement (character_set_client's default collation id), from
// its status variables; false when they do not carry it or cannot be read
// up to it.
func clientCollation(vars []byte) (uint16, bool) {
	for i := 0; i < len(vars); {
		code := vars[i]
		i++
		if code == qCharsetCode {
			if i+6 > len(vars) {
				return 0, false
			}
			return binary.LittleEndian.Uint16(vars[i:]), true
		}
		if n, ok := fixedStatusVar[code]; ok {
			i += n
			continue
		}
		switch code {
		case qCatalogCode: // length, name, NUL
			if i >= len(vars) {
				return 0, false
			}
			i += 1 + int(vars[i]) + 1
		case qTimeZoneCode, qCatalogNZCode: // length, bytes
			if i >= len(vars) {
				return 0, false
			}
			i += 1 + int(vars[i])
		case qInvoker: // user length, user, host length, host
			if i >= len(vars) {
				return 0, false
			}
			i += 1 + int(vars[i])
			if i >= len(vars) {
				return 0, false
			}
			i += 1 + int(vars[i])
		case qUpdatedDBNames: // count, NUL-terminated names (254: too many, none listed)
			if i >= len(vars) {
				return 0, false
			}
			count := int(vars[i])
			i++
			if count == 254 {
				continue
			}
			for ; count > 0 && i < len(vars); count-- {
				for i < len(vars) && vars[i] != 0 {
					i++
				}
				i++
			}
		default:
			return 0, false // a variable whose length is not known here
		}
	}
	return 0, false
}

// utf8Charsets are the client character sets whose statements need no
// conversion.
var utf8Charsets = map[string]bool{"utf8": true, "utf8mb3": true, "utf8mb4": true, "ascii": true, "binary": true}

var charsetName = regexp.MustCompile(`^[a-z0-9_]+$`)

// statementText returns a logged statement as UTF-8 text: as it is when
// it is ASCII or its client's character set is UTF-8, else converted by
// the source server from that character set.
func (s *binlogSource) statementText(ctx context.Context, query, vars []byte) (string, error) {
	if isASCII(query) {
		return string(query), nil
	}
	id, ok := clientCollation(vars)
	if !ok {
		return string(query), nil
	}
	cs, ok := s.charsets[id]
	if !ok {
		if err := s.db.QueryRowContext(ctx, "SELECT CHARACTER_SET_NAME FROM information_schema.COLLATIONS WHERE ID = ?", id).Scan(&cs); err != nil {
			return "", sourceFailure(fmt.Sprintf("reading the character set of collation %d", id), err)
		}
		if s.charsets == nil {
			s.charsets = map[uint16]string{}
		}
		s.charsets[id] = cs
	}
	if utf8Charsets[cs] || !charsetName.MatchString(cs) {
		return string(query), nil
	}
	var text []byte
	if err := s.db.QueryRowContext(ctx, "SELECT CONVERT(CONVERT(? USING "+cs+") USING utf8mb4)", query).Scan(&text); err != nil {
		return "", sourceFailure("converting a statement from "+cs, err)
	}
	if !utf8.Valid(text) {
		return string(query), nil
	}
	return string(text), nil
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
