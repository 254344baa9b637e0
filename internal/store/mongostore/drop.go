package mongostore

import "context"

// DropDatabase drops the database of s: what a test leaves behind.
func (s *Store) DropDatabase(ctx context.Context) error {
	return s.db.Drop(ctx)
}
