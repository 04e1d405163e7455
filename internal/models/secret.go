package models

import (
	"context"
	"crypto/rand"
	"fmt"

	"gorm.io/gorm"
)

// Secret returns the shared secret called name, making it (size random
// bytes) if no instance has yet. Instances starting at once agree: the
// first insert wins, and every one reads what is stored.
func Secret(ctx context.Context, db *gorm.DB, name string, size int) ([]byte, error) {
	fresh := make([]byte, size)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	err := db.WithContext(ctx).Exec(`INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
		name, fresh).Error
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	var value []byte
	if err := db.WithContext(ctx).Raw(`SELECT value FROM secrets WHERE name = ?`, name).Row().Scan(&value); err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return value, nil
}
