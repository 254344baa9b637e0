package sqlitestore

import (
	"context"
	"fmt"
	"time"
)

// DeleteBefore removes the events, the delivery records and the runs idle since before t,
// and returns how many it removed. It deletes at most deleteChunk rows per statement (a
// transaction of its own), found by the created_at indexes, so that a large sweep never
// holds the write lock long enough to make the workers wait out their busy timeout; a
// sweep cut short is finished by the next. On an error the count is of what was removed
// before it.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	var total int64
	for _, table := range []string{"events", "webhook_deliveries", "webhook_runs"} {
		query := "DELETE FROM " + table + " WHERE rowid IN (SELECT rowid FROM " + table + " WHERE created_at < ? LIMIT ?)"
		for {
			res, err := s.exec(ctx, query, millis(t), deleteChunk)
			var n int64
			if err == nil {
				n, err = res.RowsAffected()
			}
			total += n
			if err != nil {
				return total, s.wrap(fmt.Sprintf("deleting %s created before %s", table, t.UTC().Format(time.RFC3339)), err)
			}
			if n < deleteChunk {
				break
			}
		}
	}
	return total, nil
}
