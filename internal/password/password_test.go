package password

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestHashAndVerify(t *testing.T) {
	h := NewHasher()
	ctx := context.Background()
	hash, err := h.Hash(ctx, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not use the OWASP parameters", hash)
	}
	if err := h.Verify(ctx, hash, "correct horse battery"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := h.Verify(ctx, hash, "correct horse batterY"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong password: got %v, want ErrMismatch", err)
	}
	other, _ := h.Hash(ctx, "correct horse battery")
	if other == hash {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
	if err := h.VerifyDummy(ctx, "anything"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("dummy: got %v", err)
	}
	if err := h.Verify(ctx, "$2a$10$bcrypt", "x"); err == nil || errors.Is(err, ErrMismatch) {
		t.Fatalf("foreign hash: got %v, want a format error", err)
	}
}

func TestCheckLength(t *testing.T) {
	for pw, ok := range map[string]bool{
		"":                       false,
		"1234567":                false,
		"12345678":               true,
		"ééééééé":                false, // 7 runes, 14 bytes
		strings.Repeat("a", 256): true,
		strings.Repeat("a", 257): false,
	} {
		if got := CheckLength(pw) == ""; got != ok {
			t.Errorf("CheckLength(%d runes) ok=%v, want %v", len([]rune(pw)), got, ok)
		}
	}
}

// TestHashingLeavesAProcessorFree: hashes run at most one per P, and while
// any runs the process has a P more, so a burst of sign-ins never holds
// every P; once hashing stops, GOMAXPROCS is what it was.
func TestHashingLeavesAProcessorFree(t *testing.T) {
	h := NewHasher()
	procs := runtime.GOMAXPROCS(0)
	if cap(h.slots) != procs {
		t.Fatalf("%d hashing slots, want one per P (%d)", cap(h.slots), procs)
	}
	done := make(chan error)
	go func() {
		_, err := h.Hash(context.Background(), "correct horse battery")
		done <- err
	}()
	raised := false
	for !raised {
		select {
		case err := <-done:
			t.Fatalf("hash finished (%v) and GOMAXPROCS never went above %d", err, procs)
		case <-time.After(time.Millisecond):
			raised = runtime.GOMAXPROCS(0) == procs+1
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Fatalf("GOMAXPROCS %d after hashing, want %d again", got, procs)
	}

	// Every slot busy: the next hash waits for one, and gives up with its
	// context.
	for range cap(h.slots) {
		h.slots <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "correct horse battery"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hash with every slot busy: %v", err)
	}
}

func TestCheckCommon(t *testing.T) {
	for _, pw := range []string{"password", "12345678", "qwertyuiop", "iloveyou1", "Password1", "TRUSTNO1", "baseball"} {
		if got := CheckCommon(pw); got != MsgTooCommon {
			t.Errorf("CheckCommon(%q) = %q, want it refused", pw, got)
		}
	}
	for _, pw := range []string{"analytical engine", "correct horse battery", "user password", "cobol forever", "admin password"} {
		if got := CheckCommon(pw); got != "" {
			t.Errorf("CheckCommon(%q) = %q, want it accepted", pw, got)
		}
	}
}
