package queue

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
)

// CommandBacklog reads, without creating or changing the workers' consumer, what
// Consumer.Lag and Consumer.Waiting report: commands waiting for a worker or in a
// worker's hands, and those handed back to wait. Before any worker has made the consumer,
// every command in CHARGES is pending.
func (c *Conn) CommandBacklog(ctx context.Context) (pending, waiting uint64, err error) {
	stream, err := c.js.Stream(ctx, StreamCharges)
	if err != nil {
		return 0, 0, unavailable("reading stream "+StreamCharges, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, 0, unavailable("reading stream info", err)
	}
	all := info.State.Msgs
	cons, err := c.js.Consumer(ctx, StreamCharges, CommandConsumerName)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return all, 0, nil
	}
	if err != nil {
		return 0, 0, unavailable("reading consumer "+CommandConsumerName, err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		return 0, 0, unavailable("reading consumer info", err)
	}
	lag := ci.NumPending + uint64(ci.NumAckPending)
	return lag, all - min(all, lag), nil
}

// CommandCounts reads, in one request, the CHARGES stream's last sequence and the number
// of messages it holds. CHARGES is a work queue: a command leaves it once settled
// (acked), so lastSeq − held approximates the commands settled since the stream was
// made. Approximates: a purge, a withdrawn command and each hand-back for later (its
// schedule, then the schedule's copy) count as settled too.
func (c *Conn) CommandCounts(ctx context.Context) (lastSeq, held uint64, err error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	info, err := c.streams().charges.Info(ctx)
	if err != nil {
		return 0, 0, unavailable("reading stream info", err)
	}
	return info.State.LastSeq, info.State.Msgs, nil
}
