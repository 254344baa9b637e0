package consume_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/consume"
	"github.com/billing/billing/internal/natstest"
	"github.com/billing/billing/internal/queue"
	"github.com/billing/billing/internal/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Run(m)) }

// failingDeadLetters refuses to record dead letters the first times it is asked.
type failingDeadLetters struct {
	consume.DeadLetters
	mu    sync.Mutex
	fails int
}

func (f *failingDeadLetters) InsertDeadLetters(ctx context.Context, ds []charge.DeadLetter) error {
	f.mu.Lock()
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if fail {
		return charge.ErrUnavailable
	}
	return f.DeadLetters.InsertDeadLetters(ctx, ds)
}

type delivery struct {
	attempt, delivered uint64
	at                 time.Time
}

// Each outcome settles a message as the package says, on a real queue and store: a retry
// comes back after its delay as the next attempt, a wait comes back as the same attempt,
// a refusal is recorded as a dead letter (after the store failed once to take it: the
// message waited meanwhile) and never comes back, and done is done.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn, err := queue.Connect(ctx, queue.Config{URL: natstest.New(t)}, logger)
	require.NoError(t, err)
	t.Cleanup(conn.Close)
	cons, err := conn.CommandConsumer(ctx, queue.ConsumerConfig{})
	require.NoError(t, err)
	st := storetest.Open(t, storetest.Config(t))
	dead := &failingDeadLetters{DeadLetters: st, fails: 1}
	reg := prometheus.NewRegistry()
	loop := consume.New(consume.Config{Name: "test", Metric: "test_messages_total", Help: "test",
		FetchWait: 100 * time.Millisecond, StepTimeout: 5 * time.Second}, dead, logger, reg, time.Now)

	ids := map[string]string{} // charge id → the outcome its first delivery gets
	for _, kind := range []string{"done", "retry", "wait", "refuse"} {
		cmd := charge.Command{Type: charge.CommandCapture, Merchant: "m", ChargeID: charge.NewID(charge.PrefixCharge), AcceptedAt: time.Now()}
		require.NoError(t, conn.PublishCommand(ctx, cmd))
		ids["charges."+cmd.ChargeID+".op.capture"] = kind
	}

	var mu sync.Mutex
	seen := map[string][]delivery{}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- loop.Run(runCtx, consume.SourceOf(cons.Fetch), func(ctx context.Context, msgs []consume.Message) {
			outs := make([]consume.Outcome, len(msgs))
			mu.Lock()
			for i, m := range msgs {
				seen[m.ID()] = append(seen[m.ID()], delivery{m.Attempt(), m.NumDelivered(), time.Now()})
				outs[i] = consume.Done()
				if ids[m.ID()] == "refuse" {
					outs[i] = consume.Refuse("poison")
				}
				if len(seen[m.ID()]) > 1 {
					continue
				}
				switch ids[m.ID()] {
				case "retry":
					outs[i] = consume.Retry(time.Second)
				case "wait":
					outs[i] = consume.Wait(500 * time.Millisecond)
				}
			}
			mu.Unlock()
			loop.Settle(ctx, msgs, outs)
		})
	}()
	require.Eventually(t, func() bool {
		n, err := cons.Pending(ctx)
		return err == nil && n == 0
	}, 20*time.Second, 50*time.Millisecond, "every message settles")
	stop()
	require.NoError(t, <-done)

	mu.Lock()
	defer mu.Unlock()
	for id, kind := range ids {
		got := seen[id]
		switch kind {
		case "done":
			require.Len(t, got, 1)
		case "retry":
			require.Len(t, got, 2)
			require.Equal(t, uint64(2), got[1].attempt, "a retry is the next attempt")
			require.Equal(t, uint64(2), got[1].delivered)
			require.GreaterOrEqual(t, got[1].at.Sub(got[0].at), 900*time.Millisecond, "not before its delay")
		case "wait":
			require.Len(t, got, 2)
			require.Equal(t, uint64(1), got[1].attempt, "a wait uses no attempt")
			require.Equal(t, uint64(2), got[1].delivered)
		case "refuse":
			// Refused twice: the first dead letter was not recorded, so it waited.
			require.Len(t, got, 2)
			require.Equal(t, uint64(1), got[1].attempt)
		}
	}
	letters, err := st.DeadLetters(ctx)
	require.NoError(t, err)
	require.Len(t, letters, 1)
	for id, kind := range ids {
		if kind == "refuse" {
			require.Equal(t, id, letters[0].ID)
			require.Equal(t, "poison", letters[0].Reason)
		}
	}
}
