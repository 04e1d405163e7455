package database_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/database"
)

// CountErrors counts failed statements by kind, and neither "not found"
// nor a request the client gave up.
func TestCountErrorsByKind(t *testing.T) {
	t.Parallel()
	db, sqlDB, err := database.Open(context.Background(), apptest.NewDatabase(t), database.Limits{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	var mu sync.Mutex
	counts := map[string]int{}
	if err := database.CountErrors(db, func(kind string) { mu.Lock(); counts[kind]++; mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	type user struct {
		ID    int64
		Email string
	}
	var u user
	if err := db.WithContext(ctx).Table("users").Where("id = ?", -1).First(&u).Error; err != gorm.ErrRecordNotFound {
		t.Fatalf("not found: %v", err)
	}
	db.WithContext(ctx).Exec(`SELECT * FROM no_such_table`)
	db.WithContext(ctx).Exec(`INSERT INTO users (email, name, password_hash) VALUES ('a@example.com', 'A', 'x')`)
	db.WithContext(ctx).Exec(`INSERT INTO users (email, name, password_hash) VALUES ('a@example.com', 'A', 'x')`)
	short, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	time.Sleep(2 * time.Millisecond)
	db.WithContext(short).Exec(`SELECT 1`)
	gone, cancelNow := context.WithCancel(ctx)
	cancelNow()
	db.WithContext(gone).Exec(`SELECT 1`)

	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{"other": 1, "constraint": 1, "unavailable": 1}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%s errors: %d, want %d (all: %v)", k, counts[k], n, counts)
		}
	}
	if len(counts) != len(want) {
		t.Errorf("unexpected kinds: %v", counts)
	}
}
