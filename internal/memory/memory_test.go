package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/workorders/notify/internal/memory"
	"github.com/workorders/notify/internal/notify"
	"github.com/workorders/notify/internal/notify/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) notify.ConnectionStore { return memory.New() })
}

// BenchmarkForEachTarget walks a broadcast to 10,000 connections of 5
// groups each.
func BenchmarkForEachTarget(b *testing.B) {
	s := memory.New()
	ctx := context.Background()
	now := time.Now()
	const connections = 10000
	for i := range connections {
		c := notify.Connection{
			ID:          fmt.Sprintf("conn-%05d=", i),
			UserID:      fmt.Sprintf("user-%d", i%2000),
			Groups:      []string{"team:plant-1", "team:plant-2", "role:dispatcher", fmt.Sprintf("team:%d", i%100), "all"},
			ConnectedAt: now,
			ExpiresAt:   now.Add(2 * time.Hour),
		}
		if err := s.SaveConnection(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	target := notify.Target{Broadcast: true}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		err := s.ForEachTarget(ctx, target, func(page []notify.Connection) error {
			n += len(page)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if n != connections {
			b.Fatalf("walked %d connections, want %d", n, connections)
		}
	}
}
