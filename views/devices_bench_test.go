package views

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/models"
)

// BenchmarkDevicesView renders the Devices page of a user with 100 active
// sessions and 10 recently ended ones, as the handler does (into a buffer,
// with the page chrome in the context), so the page's cost and allocations
// show on their own (docs/performance.md):
//
//	go test -run '^$' -bench DevicesView -benchmem ./views/
func BenchmarkDevicesView(b *testing.B) {
	now := time.Now()
	agents := []struct{ browser, os, kind string }{
		{"Firefox", "Linux", "desktop"}, {"Chrome", "Windows", "desktop"}, {"Safari", "iOS", "phone"}, {"Chrome", "Android", "tablet"},
	}
	record := func(i int) models.SessionRecord {
		a := agents[i%len(agents)]
		return models.SessionRecord{
			ID: int64(i), PublicID: fmt.Sprintf("%026d", i), UserID: 1, Browser: a.browser, OS: a.os, DeviceType: a.kind,
			IP: fmt.Sprintf("10.0.%d.%d", i/256, i%256), CreatedAt: now.Add(-time.Duration(i) * time.Hour),
			LastSeenAt: now.Add(-time.Duration(i) * time.Minute), ExpiresAt: now.Add(12 * time.Hour),
		}
	}
	page := DevicesPage{
		Sessions: SessionTable{CurrentID: fmt.Sprintf("%026d", 0), Now: now, IdleTimeout: 30 * time.Minute, RevokeAction: DevicesRevokeAction, Confirm: RevokeConsequence},
		Ended:    EndedTable{Now: now},
	}
	for i := range 100 {
		page.Sessions.Active = append(page.Sessions.Active, record(i))
	}
	for i := range 10 {
		r := record(100 + i)
		ended := now.Add(-time.Duration(i) * time.Hour)
		r.EndedAt, r.EndReason = &ended, models.EndRevokedByUser
		page.Ended.Ended = append(page.Ended.Ended, r)
	}
	ctx := WithChrome(context.Background(), Chrome{
		User: &CurrentUser{Name: "Ada", Email: "ada@example.com"}, CSRF: "k2NqmCqFRO7dENWLzvWqzRnExhX3hCVf",
	})
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := DevicesView(page).Render(ctx, &buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(buf.Len()), "page-bytes")
}
