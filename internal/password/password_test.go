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

// TestBusyHasherRefusesAtOnce: with every slot busy, hashes wait in a
// bounded queue; one more is refused with ErrBusy at once, and a queued
// one that gets no slot within MaxWait is refused too.
func TestBusyHasherRefusesAtOnce(t *testing.T) {
	h := NewHasherWith(Limits{Slots: 1, Queue: 2, MaxWait: time.Minute})
	release := h.Occupy(1)
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := h.Hash(context.Background(), "correct horse battery")
			done <- err
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); h.waiting.Load() < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("%d hashes queued, want 2", h.waiting.Load())
		}
		time.Sleep(time.Millisecond)
	}
	// The queue is full: refused without waiting for a slot (the minute).
	if _, err := h.Hash(context.Background(), "correct horse battery"); !errors.Is(err, ErrBusy) {
		t.Fatalf("hash with the queue full: %v, want ErrBusy", err)
	}
	if err := h.VerifyDummy(context.Background(), "x"); !errors.Is(err, ErrBusy) {
		t.Fatalf("dummy verify with the queue full: %v, want ErrBusy", err)
	}
	release()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatalf("queued hash: %v", err)
		}
	}

	h = NewHasherWith(Limits{Slots: 1, MaxWait: 10 * time.Millisecond})
	if cap(h.slots) != 1 || h.queue != QueuePerSlot {
		t.Fatalf("defaults: %d slots, queue %d", cap(h.slots), h.queue)
	}
	defer h.Occupy(1)()
	hash, _ := NewHasher().Hash(context.Background(), "x")
	if err := h.Verify(context.Background(), hash, "x"); !errors.Is(err, ErrBusy) {
		t.Fatalf("no slot within MaxWait: %v, want ErrBusy", err)
	}
}

// TestTestHasherHashesVerifyEverywhere: a test hasher's hashes are cheap
// but the same argon2id format, so an app hashing with the real cost
// verifies them, and the other way round.
func TestTestHasherHashesVerifyEverywhere(t *testing.T) {
	ctx := context.Background()
	cheap, real := NewTestHasher(Limits{}), NewHasher()
	hash, err := cheap.Hash(ctx, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=64,t=2,p=1$") {
		t.Fatalf("test hash %q: want argon2id with 64 KiB", hash)
	}
	for name, h := range map[string]*Hasher{"real": real, "test": cheap} {
		if err := h.Verify(ctx, hash, "correct horse battery"); err != nil {
			t.Errorf("%s hasher, right password: %v", name, err)
		}
		if err := h.Verify(ctx, hash, "correct horse batterY"); !errors.Is(err, ErrMismatch) {
			t.Errorf("%s hasher, wrong password: got %v, want ErrMismatch", name, err)
		}
	}
	realHash, _ := real.Hash(ctx, "correct horse battery")
	if err := cheap.Verify(ctx, realHash, "correct horse battery"); err != nil {
		t.Errorf("test hasher, a real hash: %v", err)
	}
	if err := cheap.VerifyDummy(ctx, "anything"); !errors.Is(err, ErrMismatch) {
		t.Errorf("test hasher, dummy: got %v", err)
	}
}
