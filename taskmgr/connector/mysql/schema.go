package mysql

import (
	"context"
	"database/sql"
)

// schemaCache holds table definitions read from information_schema. Entries
// are dropped when a DDL statement touches the table, so the next use reads
// the definition again.
type schemaCache struct {
	db   *sql.DB
	defs map[tableRef]*tableDef // nil value: known not to exist
}

func newSchemaCache(db *sql.DB, defs []*tableDef) *schemaCache {
	c := &schemaCache{db: db, defs: map[tableRef]*tableDef{}}
	for _, d := range defs {
		c.defs[d.Ref] = d
	}
	return c
}

// get returns the definition of ref, or nil if the table does not exist.
func (c *schemaCache) get(ctx context.Context, ref tableRef) (*tableDef, error) {
	if d, ok := c.defs[ref]; ok {
		return d, nil
	}
	d, err := loadTableDef(ctx, c.db, ref)
	if err != nil {
		return nil, err
	}
	c.defs[ref] = d
	return d, nil
}

func (c *schemaCache) forget(ref tableRef) { delete(c.defs, ref) }

func (c *schemaCache) forgetDB(db string) {
	for r := range c.defs {
		if r.DB == db {
			delete(c.defs, r)
		}
	}
}
