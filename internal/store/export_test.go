package store

import "context"

// DropDatabase drops the database of s, so that a test leaves nothing behind.
func (s *Store) DropDatabase(ctx context.Context) error {
	return s.db.Drop(ctx)
}
