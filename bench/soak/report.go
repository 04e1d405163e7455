package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

type reportData struct {
	elapsed          time.Duration
	measured         int64 // requests during the run, not counting the final checks
	liveUnlisted     int
	startMem, endMem []procStatus
	deadWorking      int
	liveBroken       int
	records          int
	byReason         map[string]int
	pendingEnds      int
	exits            []string
	logCounts        []map[string]int
	insts            []*instance
}

func (s *soak) report(out io.Writer, d reportData) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := true
	check := func(good bool) string {
		if good {
			return "ok"
		}
		ok = false
		return "FAIL"
	}
	total := d.measured
	fmt.Fprintf(out, "\n## Soak: %v, %d workers, 2 instances\n\n", d.elapsed.Round(time.Second), s.o.workers)
	fmt.Fprintf(out, "%d requests (%.1f/s) after a warm-up of %d sign-ups; the table also counts the %d requests of the final checks.\n\n",
		total, float64(total)/d.elapsed.Seconds(), s.o.warmupUsers, s.requests.Load()-total)
	fmt.Fprintf(out, "| action | requests | unexpected | p50 | p95 | p99 | max |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	names := make([]string, 0, len(s.actions))
	for name := range s.actions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		a := s.actions[name]
		slices.Sort(a.lat)
		fmt.Fprintf(out, "| %s | %d | %d | %s | %s | %s | %s |\n", name, a.n, a.failed,
			pct(a.lat, 50), pct(a.lat, 95), pct(a.lat, 99), pct(a.lat, 100))
	}
	fmt.Fprintf(out, "\nErrors by kind:")
	if len(s.errors) == 0 {
		fmt.Fprintf(out, " none.\n")
	} else {
		fmt.Fprintln(out)
		kinds := make([]string, 0, len(s.errors))
		for k := range s.errors {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			fmt.Fprintf(out, "- %s: %d\n", k, s.errors[k])
		}
	}
	created := s.created.Load()
	fmt.Fprintf(out, "\n| invariant | figures | |\n| --- | --- | --- |\n")
	fmt.Fprintf(out, "| every session created has a record | %d sessions created (%d in the warm-up), %d records | %s |\n",
		created, s.warmCreated.Load(), d.records, check(int64(d.records) == created))
	fmt.Fprintf(out, "| every revoke is recorded | %d revokes, %d records ended revoked_by_user | %s |\n",
		s.revoked.Load(), d.byReason["revoked_by_user"], check(int64(d.byReason["revoked_by_user"]) == s.revoked.Load()))
	fmt.Fprintf(out, "| every sign-out is recorded | %d sign-outs, %d records ended signed_out | %s |\n",
		s.signedOut.Load(), d.byReason["signed_out"], check(int64(d.byReason["signed_out"]) == s.signedOut.Load()))
	fmt.Fprintf(out, "| revoked or signed-out sessions that still work | %d at once on the other instance; %d of %d cookies × 2 instances at the end | %s |\n",
		s.revokedWorked.Load(), d.deadWorking, len(s.dead), check(s.revokedWorked.Load() == 0 && d.deadWorking == 0))
	fmt.Fprintf(out, "| live sessions that stopped working | %d of %d | %s |\n", d.liveBroken, len(s.pool), check(d.liveBroken == 0))
	fmt.Fprintf(out, "| live sessions not listed as active on their Devices page | %d | %s |\n", d.liveUnlisted, check(d.liveUnlisted == 0))
	fmt.Fprintf(out, "| users with ends waiting for their record | %d | %s |\n", d.pendingEnds, check(d.pendingEnds == 0))
	fmt.Fprintf(out, "| no 5xx, no transport errors | %d | %s |\n", s.serverErrors(), check(s.serverErrors() == 0))
	fmt.Fprintf(out, "\nRecords by end: %s. Abandoned sessions: %d; sessions left idle until their timeout (retired by the soak, not used again): %d.\n",
		formatCounts(d.byReason), len(s.abandoned), s.expired.Load())

	fmt.Fprintf(out, "\n| process | RSS at start | RSS at end | peak RSS | threads start → end | exit on SIGTERM |\n| --- | ---: | ---: | ---: | --- | --- |\n")
	for i := range d.insts {
		fmt.Fprintf(out, "| web%d | %s | %s | %s | %d → %d | %s |\n", i+1, mb(d.startMem[i].rssKB), mb(d.endMem[i].rssKB),
			mb(d.endMem[i].hwmKB), d.startMem[i].threads, d.endMem[i].threads, d.exits[i])
		if d.exits[i] != "exit 0" {
			ok = false
		}
	}
	fmt.Fprintf(out, "\nGoroutines are not reported: the app has no debug endpoint; RSS and OS threads come from /proc/<pid>/status.\n")
	for i, counts := range d.logCounts {
		fmt.Fprintf(out, "\nweb%d log warnings and errors: %s\n", i+1, formatCounts(counts))
	}
	if ok {
		fmt.Fprintln(out, "\nRESULT: every invariant held.")
	} else {
		fmt.Fprintln(out, "\nRESULT: FAILED (see FAIL above).")
	}
	return ok
}

// serverErrors counts 5xx answers and transport errors. Callers hold mu.
func (s *soak) serverErrors() int {
	n := 0
	for k, c := range s.errors {
		if strings.Contains(k, "status 5") || strings.Contains(k, "transport") {
			n += c
		}
	}
	return n
}

func formatCounts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func pct(sorted []time.Duration, p float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	d := sorted[i]
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

func mb(kb int) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }
