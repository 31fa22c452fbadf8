package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/connector-manager/cm/taskmgr/connector"
)

// Character sets. A string value is copied as the bytes its column holds,
// in the column's own character set, on both paths:
//
//   - Row connections (openDB) use the binary character set. The full
//     import reads the stored bytes of every column, unconverted, and sends
//     them back unchanged as chunk-boundary arguments (a binary argument
//     compared with a column takes the column's collation, so keyset
//     pagination keeps ORDER BY's order). The binlog carries the stored
//     bytes too, and the decoder leaves them as they are. The sink sends
//     whatever it gets as binary strings, which the server stores into a
//     column without conversion, as a replica applies row events. So a
//     connector.RowChange's string values are bytes in the character set of
//     their column, whichever source produced them.
//   - ENUM and SET values travel as member text in the full import and as
//     member numbers in the binlog; either is exact only if the target
//     column has the same members in the same order.
//   - Table definitions travel as text (openTextDB, utf8mb4): SHOW CREATE
//     TABLE is read converted to utf8mb4, and the CREATE TABLE made from it
//     runs as utf8mb4, so the server converts ENUM/SET members, defaults
//     and expressions into each column's character set.
//
// MariaDB shows ENUM and SET members and column defaults that hold
// characters outside the Basic Multilingual Plane as '?', in SHOW CREATE
// TABLE and information_schema alike (expressions and CHECK clauses are
// shown exactly by SHOW CREATE TABLE). A target created from such a
// definition would hold other members ('?' for '😀') and turn the values
// into '?' or ''. cm cannot tell such a '?' from a real one, so before it
// creates a target table it refuses a source table with a '?' in an ENUM
// or SET member list or a default of a column whose character set has
// 4-byte characters (utf8mb4, utf16, utf16le, utf32); a target the
// operator made by hand is used as it is.

// inexactColumns lists the columns of ref whose definition the server may
// not show exactly (see above), as "`col` (what)"; nil when none.
func inexactColumns(ctx context.Context, q querier, ref tableRef) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT c.COLUMN_NAME, LOWER(c.DATA_TYPE), c.COLUMN_TYPE, c.COLUMN_DEFAULT
		FROM information_schema.COLUMNS c JOIN information_schema.CHARACTER_SETS s ON s.CHARACTER_SET_NAME = c.CHARACTER_SET_NAME
		WHERE c.TABLE_SCHEMA = ? AND c.TABLE_NAME = ? AND s.MAXLEN > 3 ORDER BY c.ORDINAL_POSITION`, ref.DB, ref.Name)
	if err != nil {
		return nil, fmt.Errorf("reading column character sets of %s: %w", ref, err)
	}
	var out []string
	for rows.Next() {
		var name, dataType, colType string
		var def sql.NullString
		if err := rows.Scan(&name, &dataType, &colType, &def); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading column character sets of %s: %w", ref, err)
		}
		var what []string
		if (dataType == "enum" || dataType == "set") && strings.Contains(colType, "?") {
			what = append(what, strings.ToUpper(dataType)+" member")
		}
		if def.Valid && strings.Contains(def.String, "?") {
			what = append(what, "default")
		}
		if len(what) > 0 {
			out = append(out, quoteIdent(name)+" ("+strings.Join(what, ", ")+")")
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("reading column character sets of %s: %w", ref, err)
	}
	return out, nil
}

// refuseInexact returns the permanent refusal of the source tables among
// refs whose definition the server does not show exactly, naming each with
// its columns; nil when every one is exact.
func refuseInexact(ctx context.Context, q querier, refs []tableRef) error {
	var tables []string
	for _, r := range refs {
		cols, err := inexactColumns(ctx, q, r)
		if err != nil {
			return sourceFailure("reading the definition of "+r.String(), err)
		}
		if len(cols) > 0 {
			tables = append(tables, r.String()+" (columns "+strings.Join(cols, ", ")+")")
		}
	}
	if len(tables) == 0 {
		return nil
	}
	return connector.Fail(codeInexactDefinition,
		"cannot create the target table exactly for source table "+strings.Join(tables, "; "),
		"the server shows ENUM/SET members and defaults of 4-byte character set columns with characters outside the BMP as '?' "+
			"(SHOW CREATE TABLE, information_schema), and cm cannot tell those from a real '?'; "+
			"a target table made from that definition would store other values",
		"create the target table by hand with the source's exact definition (cm then uses it as it is), "+
			"or remove the table from source.tables", true, nil)
}
