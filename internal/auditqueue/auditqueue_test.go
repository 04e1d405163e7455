package auditqueue_test

import (
	"context"
	"slices"
	"testing"

	"github.com/gatehouse/gatehouse/internal/apptest"
	"github.com/gatehouse/gatehouse/internal/auditqueue"
)

// TestPopAuditScript checks the queue's script: written items still at
// the head go with one LTRIM; once another instance has removed some, each
// that is left is removed where it is, and nothing else.
func TestPopAuditScript(t *testing.T) {
	ctx, rdb := context.Background(), apptest.Redis(t)
	list := apptest.RedisPrefix(t) + "audit"
	pop := func(items ...any) int {
		t.Helper()
		n, err := auditqueue.PopAuditScript.Run(ctx, rdb, []string{list}, items...).Int()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := rdb.RPush(ctx, list, "a", "b", "c", "d").Err(); err != nil {
		t.Fatal(err)
	}
	if n := pop("a", "b"); n != 2 {
		t.Errorf("head: removed %d, want 2", n)
	}
	if got := rdb.LRange(ctx, list, 0, -1).Val(); !slices.Equal(got, []string{"c", "d"}) {
		t.Errorf("after the head went: %q", got)
	}
	// Another instance removed "c" meanwhile, and "e" came after: only "d"
	// of the batch is left to remove.
	if err := rdb.LRem(ctx, list, 1, "c").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.RPush(ctx, list, "e").Err(); err != nil {
		t.Fatal(err)
	}
	if n := pop("c", "d"); n != 1 {
		t.Errorf("batch partly gone: removed %d, want 1", n)
	}
	if got := rdb.LRange(ctx, list, 0, -1).Val(); !slices.Equal(got, []string{"e"}) {
		t.Errorf("after the rest went: %q, want the later item alone", got)
	}
}
