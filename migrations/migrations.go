// Package migrations holds the versioned, append-only schema migrations of the
// cm store. A migration, once released, is never edited: schema changes are
// new files with the next number. Each migration carries frozen copies of the
// structs it creates so later model changes cannot alter it.
package migrations

import "github.com/go-gormigrate/gormigrate/v2"

// TableName is the table that records applied migrations.
const TableName = "schema_migrations"

// All returns the migrations in order.
func All() []*gormigrate.Migration {
	return []*gormigrate.Migration{
		m0001Init(),
		m0002Cluster(),
		m0003NodeInstance(),
		m0004AuditResults(),
		m0005RefusalsIdempotency(),
		m0006DDLHistory(),
		m0007TaskAutoRestarts(),
	}
}
