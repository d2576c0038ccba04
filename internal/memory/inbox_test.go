package memory_test

import (
	"testing"

	"github.com/workorders/notify/internal/memory"
	"github.com/workorders/notify/internal/notify"
	"github.com/workorders/notify/internal/notify/inboxtest"
)

func TestInbox(t *testing.T) {
	inboxtest.Run(t, func(t *testing.T) notify.InboxStore { return memory.New() })
}
