package mysql

import (
	"strings"
	"unicode"
)

// ddlKind is what a statement does to the tables it names.
type ddlKind int

const (
	ddlNone         ddlKind = iota
	ddlCreate               // CREATE TABLE: a new table, no rows yet
	ddlIndex                // CREATE/DROP INDEX: columns unchanged
	ddlAlter                // ALTER TABLE: columns may change
	ddlDrop                 // DROP TABLE
	ddlRename               // RENAME TABLE (both names count)
	ddlTruncate             // TRUNCATE: rows vanish without row events
	ddlReplace              // CREATE OR REPLACE TABLE: drop and create
	ddlDropDatabase         // DROP DATABASE: every table of it
)

func (k ddlKind) String() string {
	return [...]string{"", "CREATE TABLE", "INDEX", "ALTER TABLE", "DROP TABLE", "RENAME TABLE",
		"TRUNCATE TABLE", "CREATE OR REPLACE TABLE", "DROP DATABASE"}[k]
}

// ddl is a parsed schema statement.
type ddl struct {
	Kind   ddlKind
	Tables []tableRef
	DB     string // for ddlDropDatabase
}

// parseDDL recognises the table-level DDL forms that change what a row
// event means. It is a tokenizer, not a SQL parser: unknown statements are
// ddlNone. defaultDB qualifies unqualified names (the statement's session
// database, from the binlog event).
func parseDDL(query, defaultDB string) ddl {
	t := tokenize(query)
	word := func(i int) string {
		if i < len(t) && !t[i].quoted {
			return strings.ToUpper(t[i].text)
		}
		return ""
	}
	// name reads [db.]table at i and returns the index after it.
	name := func(i int) (tableRef, int, bool) {
		if i >= len(t) || t[i].punct {
			return tableRef{}, i, false
		}
		first := t[i].text
		if i+2 < len(t) && t[i+1].punct && t[i+1].text == "." && !t[i+2].punct {
			return tableRef{DB: first, Name: t[i+2].text}, i + 3, true
		}
		return tableRef{DB: defaultDB, Name: first}, i + 1, true
	}
	skipIfExists := func(i int) int {
		if word(i) == "IF" && word(i+1) == "EXISTS" {
			return i + 2
		}
		if word(i) == "IF" && word(i+1) == "NOT" && word(i+2) == "EXISTS" {
			return i + 3
		}
		return i
	}
	// names reads a comma list of names.
	names := func(i int) []tableRef {
		var out []tableRef
		for {
			r, j, ok := name(i)
			if !ok {
				return out
			}
			out = append(out, r)
			if j < len(t) && t[j].punct && t[j].text == "," {
				i = j + 1
				continue
			}
			return out
		}
	}

	i := 0
	switch word(0) {
	case "CREATE":
		i = 1
		replace := false
		if word(i) == "OR" && word(i+1) == "REPLACE" {
			replace, i = true, i+2
		}
		switch word(i) {
		case "TEMPORARY": // not in the binlog in ROW format, and never a selected table
			return ddl{}
		case "TABLE":
			i = skipIfExists(i + 1)
			if r, _, ok := name(i); ok {
				if replace {
					return ddl{Kind: ddlReplace, Tables: []tableRef{r}}
				}
				return ddl{Kind: ddlCreate, Tables: []tableRef{r}}
			}
		case "UNIQUE", "FULLTEXT", "SPATIAL", "INDEX":
			for ; i < len(t); i++ {
				if word(i) == "ON" {
					if r, _, ok := name(i + 1); ok {
						return ddl{Kind: ddlIndex, Tables: []tableRef{r}}
					}
				}
			}
		}
	case "ALTER":
		for i = 1; word(i) == "ONLINE" || word(i) == "IGNORE"; i++ {
		}
		if word(i) == "TABLE" {
			i = skipIfExists(i + 1)
			if r, _, ok := name(i); ok {
				return ddl{Kind: ddlAlter, Tables: []tableRef{r}}
			}
		}
	case "DROP":
		i = 1
		if word(i) == "TEMPORARY" {
			return ddl{}
		}
		switch word(i) {
		case "TABLE", "TABLES":
			if ts := names(skipIfExists(i + 1)); len(ts) > 0 {
				return ddl{Kind: ddlDrop, Tables: ts}
			}
		case "DATABASE", "SCHEMA":
			i = skipIfExists(i + 1)
			if i < len(t) && !t[i].punct {
				return ddl{Kind: ddlDropDatabase, DB: t[i].text}
			}
		case "INDEX":
			for ; i < len(t); i++ {
				if word(i) == "ON" {
					if r, _, ok := name(i + 1); ok {
						return ddl{Kind: ddlIndex, Tables: []tableRef{r}}
					}
				}
			}
		}
	case "RENAME":
		if word(1) == "TABLE" || word(1) == "TABLES" {
			var out []tableRef
			i = skipIfExists(2)
			for i < len(t) {
				from, j, ok := name(i)
				if !ok || word(j) != "TO" {
					break
				}
				to, k, ok := name(j + 1)
				if !ok {
					break
				}
				out = append(out, from, to)
				if k < len(t) && t[k].punct && t[k].text == "," {
					i = k + 1
					continue
				}
				break
			}
			if len(out) > 0 {
				return ddl{Kind: ddlRename, Tables: out}
			}
		}
	case "TRUNCATE":
		i = 1
		if word(i) == "TABLE" {
			i++
		}
		if r, _, ok := name(i); ok {
			return ddl{Kind: ddlTruncate, Tables: []tableRef{r}}
		}
	}
	return ddl{}
}

type token struct {
	text   string
	quoted bool // a `quoted` identifier: never a keyword
	punct  bool
}

// tokenize splits a statement into words, `identifiers` and punctuation,
// dropping comments and string literals' insides (kept as one token).
func tokenize(s string) []token {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			// MariaDB/MySQL executable comments /*!NNNNN ... */ hold real SQL:
			// keep their inside.
			if i+2 < len(s) && (s[i+2] == '!' || s[i+2] == 'M') {
				j := i + 3
				for j < len(s) && s[j] >= '0' && s[j] <= '9' {
					j++
				}
				end := strings.Index(s[j:], "*/")
				if end < 0 {
					end = len(s) - j
				}
				out = append(out, tokenize(s[j:j+end])...)
				i = j + end + 2
				continue
			}
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return out
			}
			i += end + 4
		case c == '#' || (c == '-' && i+2 < len(s) && s[i+1] == '-' && (s[i+2] == ' ' || s[i+2] == '\t')):
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				return out
			}
			i += end + 1
		case c == '`':
			var b strings.Builder
			j := i + 1
			for j < len(s) {
				if s[j] == '`' {
					if j+1 < len(s) && s[j+1] == '`' {
						b.WriteByte('`')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			out = append(out, token{text: b.String(), quoted: true})
			i = j + 1
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			out = append(out, token{text: "'", punct: true})
			i = j + 1
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			out = append(out, token{text: s[i:j]})
			i = j
		default:
			out = append(out, token{text: s[i : i+1], punct: true})
			i++
		}
	}
	return out
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c))
}

// changesColumns reports whether d may change the columns a row event of
// the tables it names is decoded with: their number, order, names or
// types. A table dropped, renamed or replaced may come back with other
// columns, so those count; an ALTER counts when one of its clauses adds,
// drops, modifies, changes, renames or reorders a column or converts the
// table's character set. Index, option and partition clauses do not.
func changesColumns(d ddl, query string) bool {
	switch d.Kind {
	case ddlAlter:
		return alterChangesColumns(query)
	case ddlDrop, ddlRename, ddlReplace, ddlDropDatabase:
		return true
	case ddlNone, ddlCreate, ddlIndex, ddlTruncate:
		return false
	}
	return false
}

// alterChangesColumns reads the clauses of an ALTER TABLE statement.
func alterChangesColumns(query string) bool {
	t := tokenize(query)
	word := func(i int) string {
		if i < len(t) && !t[i].quoted && !t[i].punct {
			return strings.ToUpper(t[i].text)
		}
		return ""
	}
	// ALTER [ONLINE] [IGNORE] TABLE [IF EXISTS] [db.]name [WAIT n | NOWAIT]
	i := 1
	for word(i) == "ONLINE" || word(i) == "IGNORE" {
		i++
	}
	if word(i) != "TABLE" {
		return false
	}
	i++
	if word(i) == "IF" && word(i+1) == "EXISTS" {
		i += 2
	}
	i++ // the name
	if i+1 < len(t) && t[i].punct && t[i].text == "." {
		i += 2
	}
	switch word(i) {
	case "WAIT":
		i += 2
	case "NOWAIT":
		i++
	}
	// Clauses are separated by commas outside parentheses.
	for i < len(t) {
		if clauseChangesColumns(word, i) {
			return true
		}
		i = nextClause(t, i)
	}
	return false
}

// nextClause is the index after the comma that ends the clause at i, or
// len(t).
func nextClause(t []token, i int) int {
	depth := 0
	for ; i < len(t); i++ {
		if !t[i].punct {
			continue
		}
		switch t[i].text {
		case "(":
			depth++
		case ")":
			depth--
		case ",":
			if depth == 0 {
				return i + 1
			}
		}
	}
	return i
}

// clauseChangesColumns judges the ALTER clause whose first word is at i.
func clauseChangesColumns(word func(int) string, i int) bool {
	notColumn := func(w string) bool {
		switch w {
		case "INDEX", "KEY", "PRIMARY", "UNIQUE", "FULLTEXT", "SPATIAL", "CONSTRAINT", "FOREIGN", "CHECK",
			"PARTITION", "PERIOD", "SYSTEM", "DEFAULT":
			return true
		}
		return false
	}
	switch word(i) {
	case "ADD":
		j := i + 1
		if word(j) == "IF" && word(j+1) == "NOT" && word(j+2) == "EXISTS" {
			j += 3
		}
		return word(j) == "COLUMN" || !notColumn(word(j))
	case "DROP":
		j := i + 1
		if word(j) == "COLUMN" {
			return true
		}
		if word(j) == "IF" && word(j+1) == "EXISTS" {
			j += 2
		}
		return !notColumn(word(j))
	case "MODIFY", "CHANGE", "CONVERT":
		return true
	case "RENAME":
		// RENAME COLUMN changes a name; RENAME [TO|AS] new_name gives the
		// table's definition to another name. RENAME INDEX|KEY does neither.
		w := word(i + 1)
		return w != "INDEX" && w != "KEY"
	}
	return false
}
