// Package models holds Gatehouse's Postgres records and the stores that read
// and write them. The stores are the domain API: handlers call them directly.
package models

import (
	"errors"

	"gorm.io/gorm"
)

var (
	// ErrNotFound means no row matched.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique value (an email, say) is taken.
	ErrConflict = errors.New("conflict")
)

// translate maps GORM's errors onto the package's sentinels, keeping the
// original for logs.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gorm.ErrRecordNotFound):
		return errors.Join(ErrNotFound, err)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return errors.Join(ErrConflict, err)
	}
	return err
}
