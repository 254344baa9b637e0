package service

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/config"
	"github.com/billing/billing/internal/queue"
	"github.com/billing/billing/internal/store"
)

// DeadLetters runs `worker deadletters`: without replay, it writes every dead letter to
// out, one line each (id, subject, deliveries, when, why) and returns them. With replay, it
// publishes again the message of each dead letter named there ("all": every one), on its
// subject with its payload and headers, and removes the dead letter once the queue has
// stored it; a message refused again becomes a dead letter again.
func DeadLetters(ctx context.Context, cfg config.Config, logger *slog.Logger, replay []string, out io.Writer) ([]charge.DeadLetter, error) {
	st, err := store.Open(ctx, StoreConfig(cfg), logger)
	if err != nil {
		return nil, fmt.Errorf("opening the store: %w", err)
	}
	defer func() { _ = st.Close(context.WithoutCancel(ctx)) }()
	dead, err := st.DeadLetters(ctx)
	if err != nil {
		return nil, err
	}
	if len(replay) == 0 {
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSUBJECT\tDELIVERIES\tAT\tREASON")
		for _, d := range dead {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", d.ID, d.Subject, d.Attempts, d.At.UTC().Format(time.RFC3339), oneLine(d.Reason))
		}
		if err := tw.Flush(); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "%d dead letters\n", len(dead))
		return dead, nil
	}

	chosen := dead
	if !slices.Equal(replay, []string{"all"}) {
		chosen = nil
		for _, id := range replay {
			i := slices.IndexFunc(dead, func(d charge.DeadLetter) bool { return d.ID == id })
			if i < 0 {
				return nil, fmt.Errorf("no dead letter %q (worker deadletters lists them)", id)
			}
			chosen = append(chosen, dead[i])
		}
	}
	q, err := queue.Connect(ctx, QueueConfig(cfg, "billing-deadletters"), logger)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS: %w", err)
	}
	defer q.Close()
	for _, d := range chosen {
		if err := q.Replay(ctx, d); err != nil {
			return nil, err
		}
		if err := st.DeleteDeadLetter(ctx, d.ID); err != nil {
			return nil, fmt.Errorf("replayed %s, but could not remove its dead letter: %w", d.ID, err)
		}
		fmt.Fprintf(out, "replayed %s\n", d.ID)
	}
	return chosen, nil
}

// oneLine keeps a reason on one line of the listing.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
