package mysql

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	"github.com/pingcap/tidb/pkg/parser/format"
	"go.uber.org/zap"

	"github.com/connector-manager/cm/taskmgr/connector"
	// The parser needs a value driver for literals (DEFAULT 'x', 12.5).
	_ "github.com/pingcap/tidb/pkg/parser/test_driver"
)

// Schema statements that are applied on the target (sink.ddl=apply) are
// understood with the TiDB SQL parser, the one go-mysql brings in: the
// statement's tree says which tables and columns it names, and its
// rewritten form (databases mapped through sink.databaseMap, clauses the
// target already reflects left out) is printed back from the tree.

// parsers are reused: a parser is not safe for concurrent use, and
// building one costs more than a statement.
var parsers = sync.Pool{New: func() any { return parser.New() }}

// parsedDDL is a schema statement read by the parser.
type parsedDDL struct {
	Node ast.StmtNode
	// Replace: CREATE OR REPLACE TABLE (MariaDB), which the parser's
	// grammar lacks; Node is then the CREATE TABLE without OR REPLACE.
	Replace bool
}

// parseStatement parses one schema statement. MariaDB's CREATE OR REPLACE
// TABLE and ALTER ONLINE|IGNORE TABLE are outside the parser's grammar:
// their extra words are taken off first (ONLINE and IGNORE change how the
// server runs the statement, not what it does to the table's columns).
func parseStatement(query string) (parsedDDL, error) {
	var d parsedDDL
	q := strings.TrimSpace(query)
	if rest, ok := cutWords(q, "CREATE", "OR", "REPLACE"); ok {
		d.Replace, q = true, "CREATE "+rest
	} else if rest, ok := cutWords(q, "ALTER", "ONLINE"); ok {
		q = "ALTER " + rest
	} else if rest, ok := cutWords(q, "ALTER", "IGNORE"); ok {
		q = "ALTER " + rest
	}
	p := parsers.Get().(*parser.Parser)
	defer parsers.Put(p)
	node, err := p.ParseOneStmt(q, "", "")
	if err != nil {
		return d, fmt.Errorf("parsing the statement: %w", err)
	}
	d.Node = node
	return d, nil
}

// cutWords reports whether q begins with words (case-insensitive, any
// whitespace between them) and returns what follows.
func cutWords(q string, words ...string) (string, bool) {
	for _, w := range words {
		q = strings.TrimLeft(q, " \t\r\n")
		if len(q) < len(w) || !strings.EqualFold(q[:len(w)], w) {
			return "", false
		}
		q = q[len(w):]
		if q != "" && isWordByte(q[0]) {
			return "", false
		}
	}
	return q, true
}

// restoreFlags print a statement for MariaDB and MySQL alike: names in
// backquotes, strings in single quotes, no TiDB-only comments, and no
// charset introducer the source statement did not have.
const restoreFlags = format.RestoreStringSingleQuotes | format.RestoreKeyWordUppercase |
	format.RestoreNameBackQuotes | format.RestoreSpacesAroundBinaryOperation | format.RestoreStringWithoutDefaultCharset

// restore prints node as SQL.
func restore(node ast.Node) (string, error) {
	var b strings.Builder
	if err := node.Restore(format.NewRestoreCtx(restoreFlags, &b)); err != nil {
		return "", fmt.Errorf("printing the statement: %w", err)
	}
	return b.String(), nil
}

// tableNames collects the table names of a tree (the tables a statement
// changes and the ones it refers to: LIKE, foreign keys), so they can be
// qualified and mapped.
type tableNames struct{ names []*ast.TableName }

func (v *tableNames) Enter(n ast.Node) (ast.Node, bool) {
	if t, ok := n.(*ast.TableName); ok {
		v.names = append(v.names, t)
	}
	return n, false
}

func (v *tableNames) Leave(n ast.Node) (ast.Node, bool) { return n, true }

// namesOf lists the table names in node.
func namesOf(node ast.Node) []*ast.TableName {
	var v tableNames
	node.Accept(&v)
	return v.names
}

// refOf is the table a name means, unqualified names being in defaultDB.
func refOf(t *ast.TableName, defaultDB string) tableRef {
	db := t.Schema.O
	if db == "" {
		db = defaultDB
	}
	return tableRef{DB: db, Name: t.Name.O}
}

// applyDDL makes a schema statement on selected tables (touched) a record
// for the sink, or refuses it, as with sink.ddl=stop, when it is not one
// the sink applies: a statement the parser does not understand, DROP
// DATABASE, or a rename into or out of the selection.
func (s *binlogSource) applyDDL(d ddl, schema, q string, touched []string) error {
	refuse := func(why string) error {
		return connector.Fail(codeDDLUnsupported,
			fmt.Sprintf("%s on selected table(s) %s: %s", d.Kind, strings.Join(touched, ", "), clip(q, 400)),
			why,
			"apply the same change to the target, then resume with skipDdl=true: the task continues right after this statement (docs/runbooks.md)",
			true, nil)
	}
	if d.Kind == ddlDropDatabase {
		return refuse("DROP DATABASE of a selected database is not applied on the target")
	}
	p, err := parseStatement(q)
	if err != nil {
		return refuse("the statement is not understood: " + err.Error())
	}
	if err := s.checkRenames(p, schema); err != nil {
		return refuse(err.Error())
	}
	s.txn.ddl = &connector.SchemaChange{Database: schema, Statement: q, Before: formatToken(s.txn.start)}
	s.noteStatement(p, schema)
	s.log.Info("DDL on selected tables, for the sink to apply", zap.String("kind", d.Kind.String()),
		zap.Strings(logTables, touched))
	return nil
}

// noteStatement keeps a parsed statement for the schema history: the
// selected tables it names are learned once it ends (history.go).
func (s *binlogSource) noteStatement(p parsedDDL, schema string) {
	s.txn.stmt, s.txn.schema = &p, schema
	for _, t := range namesOf(p.Node) {
		if r := refOf(t, schema); s.cfg.Tables.Match(r.DB, r.Name) && !slices.Contains(s.txn.learn, r) {
			s.txn.learn = append(s.txn.learn, r)
		}
	}
}

// checkRenames refuses a rename that moves a table into or out of the
// selection: the target would miss the table, or keep one nothing feeds.
func (s *binlogSource) checkRenames(p parsedDDL, schema string) error {
	check := func(from, to *ast.TableName) error {
		f, t := refOf(from, schema), refOf(to, schema)
		if s.cfg.Tables.Match(f.DB, f.Name) != s.cfg.Tables.Match(t.DB, t.Name) {
			return fmt.Errorf("renaming %s to %s moves a table into or out of source.tables", f, t)
		}
		return nil
	}
	switch n := p.Node.(type) {
	case *ast.RenameTableStmt:
		for _, t := range n.TableToTables {
			if err := check(t.OldTable, t.NewTable); err != nil {
				return err
			}
		}
	case *ast.AlterTableStmt:
		for _, spec := range n.Specs {
			if spec.Tp == ast.AlterTableRenameTable && spec.NewTable != nil {
				if err := check(n.Table, spec.NewTable); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
