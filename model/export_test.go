package model

import "gorm.io/gorm"

// DB lets the store's tests look at rows as they are stored.
func (s *Store) DB() *gorm.DB { return s.db }

// ErrSecretUnresolved lets the tests of references check the error.
var ErrSecretUnresolved = errSecretUnresolved
