package sqlitestore_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/store"
	"github.com/billing/billing/internal/store/sqlitestore"
)

// The engine implements the contract. (Package store imports the engines, so the
// assertion lives here, in a package of its own.)
var _ store.Store = (*sqlitestore.Store)(nil)

// What is particular to the sqlite engine: the file, its schema, several processes on
// one file, errors. The behaviour it shares with every engine is the conformance suite's
// (package store).

// open opens a store on path, closed when the test ends.
func open(t testing.TB, path string) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(t.Context(), path, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// raw opens the database file at path past the store.
func raw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func newCharge(merchant string) charge.Charge {
	at := now()
	return charge.Charge{ID: charge.NewID(charge.PrefixCharge), Merchant: merchant, Amount: 1500, Currency: "usd",
		PaymentMethod: "pm_card_visa", Capture: true, Status: charge.StatusPending, CreatedAt: at, UpdatedAt: at}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "store")
	path := filepath.Join(dir, "billing.db")
	s := open(t, path)
	_, err := s.InsertCharges(t.Context(), []charge.Charge{newCharge("acct_1")})
	require.NoError(t, err)

	for _, p := range []string{filepath.Dir(dir), dir} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), p)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), p)
	}

	var mode string
	require.NoError(t, raw(t, path).QueryRow("PRAGMA journal_mode").Scan(&mode))
	require.Equal(t, "wal", mode)
}

// Opening again finds the schema up to date; a schema newer than the program is refused.
func TestOpenAgain(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "billing.db")
	s := open(t, path)
	c := newCharge("acct_1")
	_, err := s.InsertCharges(t.Context(), []charge.Charge{c})
	require.NoError(t, err)
	require.NoError(t, s.Close(t.Context()))

	again := open(t, path)
	got, err := again.GetCharge(t.Context(), c.Merchant, c.ID)
	require.NoError(t, err)
	require.Equal(t, c, got)
	require.NoError(t, again.Close(t.Context()))

	db := raw(t, path)
	var version int
	require.NoError(t, db.QueryRow("PRAGMA user_version").Scan(&version))
	require.Positive(t, version)
	_, err = db.Exec(fmt.Sprintf("PRAGMA user_version = %d", version+1))
	require.NoError(t, err)
	_, err = sqlitestore.Open(t.Context(), path, nil)
	require.ErrorContains(t, err, "newer than this program's")
}

// A database of version 2 (before the indexes of the disabled endpoints and of the
// customers' charges) is brought up to date when opened, its rows kept.
func TestUpgradeFromVersion2(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "billing.db")
	s := open(t, path)
	c := newCharge("acct_1")
	_, err := s.InsertCharges(t.Context(), []charge.Charge{c})
	require.NoError(t, err)
	require.NoError(t, s.Close(t.Context()))
	db := raw(t, path)
	added := []string{"webhook_endpoints_disabled_id", "charges_merchant_customer_id"}
	for _, name := range added {
		_, err = db.Exec("DROP INDEX " + name)
		require.NoError(t, err)
	}
	_, err = db.Exec("PRAGMA user_version = 2")
	require.NoError(t, err)

	again := open(t, path)
	got, err := again.GetCharge(t.Context(), c.Merchant, c.ID)
	require.NoError(t, err)
	require.Equal(t, c, got)
	require.NoError(t, again.Close(t.Context()))
	var version int
	require.NoError(t, db.QueryRow("PRAGMA user_version").Scan(&version))
	require.Equal(t, 4, version)
	for _, name := range added {
		var indexes int
		require.NoError(t, db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = ?", name).Scan(&indexes))
		require.Equal(t, 1, indexes, name)
	}
}

// Processes starting together on a new file: one creates the schema, none fails.
func TestOpenConcurrently(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "billing.db")
	const n = 8
	stores := make([]*sqlitestore.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = sqlitestore.Open(t.Context(), path, nil) })
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "store %d", i)
		t.Cleanup(func() { _ = stores[i].Close(context.Background()) })
	}

	// Each writes; each reads what all wrote.
	cs := make([]charge.Charge, n)
	for i, s := range stores {
		cs[i] = newCharge("acct_1")
		_, err := s.InsertCharges(t.Context(), []charge.Charge{cs[i]})
		require.NoError(t, err)
	}
	for _, s := range stores {
		list, _, err := s.ListCharges(t.Context(), "acct_1", charge.ListParams{Limit: 100})
		require.NoError(t, err)
		require.Len(t, list, n)
	}
}

// Two processes on one file (two Stores: each its own connections): they see each
// other's writes, the log arbitrates their claims, and entries both insert are counted
// once in the balance.
func TestTwoProcesses(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "billing.db")
	a, b := open(t, path), open(t, path)
	ctx := t.Context()

	c := newCharge("acct_1")
	_, err := a.InsertCharges(ctx, []charge.Charge{c})
	require.NoError(t, err)
	got, err := b.GetCharge(ctx, c.Merchant, c.ID)
	require.NoError(t, err)
	require.Equal(t, c, got)

	win := charge.NewTransition(c, charge.StatusSucceeded, now(), c.Amount, "", "auth_1")
	lose := charge.NewTransition(c, charge.StatusFailed, now(), 0, charge.FailureCardDeclined, "")
	lost, err := b.ClaimTransitions(ctx, []charge.Transition{win})
	require.NoError(t, err)
	require.Empty(t, lost)
	lost, err = a.ClaimTransitions(ctx, []charge.Transition{lose})
	require.NoError(t, err)
	require.Equal(t, []string{c.ID}, lost)
	log, err := a.TransitionsFrom(ctx, map[string]int{c.ID: 1})
	require.NoError(t, err)
	require.Equal(t, []charge.Transition{win}, log[c.ID])

	// Both write batches at once, the same charges and ledger entries (a redelivery
	// handled by two workers) and charges of their own.
	var shared []charge.Charge
	var entries []charge.LedgerEntry
	for range 50 {
		c := newCharge("acct_2")
		shared = append(shared, c)
		entries = append(entries, charge.Ledger(c, []charge.Transition{charge.NewTransition(c, charge.StatusSucceeded, now(), c.Amount, "", "")})...)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for _, s := range []*sqlitestore.Store{a, b} {
		wg.Go(func() {
			for i := 0; i < len(shared); i += 10 {
				own := newCharge("acct_2")
				_, err := s.InsertCharges(ctx, append([]charge.Charge{own}, shared[i:i+10]...))
				errs <- err
				errs <- s.InsertLedgerEntries(ctx, entries[2*i:2*i+20])
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	list, _, err := b.ListCharges(ctx, "acct_2", charge.ListParams{Limit: 100})
	require.NoError(t, err)
	require.Len(t, list, len(shared)+10)
	bal, err := a.Balance(ctx, "acct_2")
	require.NoError(t, err)
	require.Equal(t, []charge.Money{{Amount: 50 * 1500, Currency: "usd"}}, bal.Available)
}

func TestUnavailable(t *testing.T) {
	t.Parallel()

	t.Run("Closed", func(t *testing.T) {
		t.Parallel()
		s := open(t, filepath.Join(t.TempDir(), "billing.db"))
		require.NoError(t, s.Close(t.Context()))
		_, err := s.GetCharge(t.Context(), "acct_1", "ch_x")
		require.ErrorIs(t, err, charge.ErrUnavailable)
		require.ErrorIs(t, s.Ping(t.Context()), charge.ErrUnavailable)
		_, err = s.InsertCharges(t.Context(), []charge.Charge{newCharge("acct_1")})
		require.ErrorIs(t, err, charge.ErrUnavailable)
	})

	t.Run("Locked", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "billing.db")
		s := open(t, path)
		// Another process holds the write lock for longer than the caller waits.
		conn, err := raw(t, path).Conn(t.Context())
		require.NoError(t, err)
		defer conn.Close()
		_, err = conn.ExecContext(t.Context(), "BEGIN IMMEDIATE")
		require.NoError(t, err)
		defer func() { _, _ = conn.ExecContext(context.Background(), "ROLLBACK") }()

		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		_, err = s.InsertCharges(ctx, []charge.Charge{newCharge("acct_1")})
		require.ErrorIs(t, err, charge.ErrUnavailable)
		// Reads go on: WAL readers do not wait for the writer.
		_, _, err = s.ListCharges(t.Context(), "acct_1", charge.ListParams{})
		require.NoError(t, err)
	})
}

// A transition whose id is not its charge's and sequence's would arbitrate nothing: it
// is refused for good, and the batch with it written not at all.
func TestRejected(t *testing.T) {
	t.Parallel()
	s := open(t, filepath.Join(t.TempDir(), "billing.db"))
	c, other := newCharge("acct_1"), newCharge("acct_1")
	good := charge.NewTransition(other, charge.StatusSucceeded, now(), other.Amount, "", "")
	bad := charge.NewTransition(c, charge.StatusSucceeded, now(), c.Amount, "", "")
	bad.ID = "ch_other/1"
	_, err := s.ClaimTransitions(t.Context(), []charge.Transition{good, bad})
	require.ErrorIs(t, err, charge.ErrRejected)
	log, err := s.TransitionsFrom(t.Context(), map[string]int{other.ID: 1})
	require.NoError(t, err)
	require.Empty(t, log[other.ID], "nothing of the batch is written")
}

// envChild makes the test binary a writer process of TestKilledMidWrite.
const envChild = "SQLITESTORE_TEST_WRITER"

// Writer processes SIGKILLed while they write: every batch a writer was told is stored
// is there whole, every other batch is there whole or not at all, and the balance is the
// sum of the entries stored. Two writers share a new file from the start, so they also
// open it, and create its schema, at the same time.
func TestKilledMidWrite(t *testing.T) {
	if name := os.Getenv(envChild); name != "" {
		writeUntilKilled(t, name)
		return
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "billing.db")
	const writers, acked = 2, 20
	// stored[w] are the batches writer w acknowledged.
	stored := make([]map[int]bool, writers)
	var wg sync.WaitGroup
	for w := range writers {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKilledMidWrite$", "-test.count=1")
		cmd.Env = append(os.Environ(), envChild+"="+strconv.Itoa(w), "SQLITESTORE_TEST_PATH="+path)
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		wg.Go(func() {
			ok := map[int]bool{}
			lines := bufio.NewScanner(out)
			for lines.Scan() {
				if k, err := strconv.Atoi(strings.TrimPrefix(lines.Text(), "stored ")); err == nil {
					ok[k] = true
				}
				if len(ok) == acked {
					// Some time into the next batch: building it, writing it or
					// committing it.
					time.Sleep(time.Duration(rand.N(100_000)) * time.Microsecond)
					_ = cmd.Process.Signal(syscall.SIGKILL)
				}
			}
			_ = cmd.Wait()
			stored[w] = ok
		})
	}
	wg.Wait()

	s := open(t, path)
	perBatch := map[string]int{}
	var available int64
	require.NoError(t, s.EachLedgerEntry(t.Context(), func(e charge.LedgerEntry) error {
		perBatch[e.Transaction]++
		if e.Account == charge.AccountAvailable {
			available += e.Amount
		}
		return nil
	}))
	for w, ok := range stored {
		require.GreaterOrEqual(t, len(ok), acked, "writer %d stored batches", w)
		for k := range ok {
			require.Equal(t, batchSize, perBatch[batchID(strconv.Itoa(w), k)], "batch %d of writer %d was acknowledged", k, w)
		}
	}
	for id, n := range perBatch {
		require.Equal(t, batchSize, n, "batch %s is partly written", id)
	}
	bal, err := s.Balance(t.Context(), "acct_killed")
	require.NoError(t, err)
	require.Equal(t, []charge.Money{{Amount: available, Currency: "usd"}}, bal.Available)
}

// batchSize is the number of ledger entries in one batch of a writer.
const batchSize = 256

func batchID(writer string, k int) string { return fmt.Sprintf("writer_%s/%d", writer, k) }

// writeUntilKilled writes batches of ledger entries for ever, printing the number of each
// once it is stored.
func writeUntilKilled(t *testing.T, writer string) {
	s, err := sqlitestore.Open(t.Context(), os.Getenv("SQLITESTORE_TEST_PATH"), nil)
	require.NoError(t, err)
	for k := 0; ; k++ {
		es := make([]charge.LedgerEntry, batchSize)
		for i := range es {
			account, amount := charge.AccountAvailable, int64(1)
			if i%2 == 1 {
				account, amount = charge.AccountCustomer, -1
			}
			es[i] = charge.LedgerEntry{ID: fmt.Sprintf("%s/%d", batchID(writer, k), i), Transaction: batchID(writer, k),
				Merchant: "acct_killed", ChargeID: "ch_" + writer, Kind: charge.KindAuthorization, Account: account,
				Currency: "usd", Amount: amount, CreatedAt: now()}
		}
		require.NoError(t, s.InsertLedgerEntries(t.Context(), es))
		fmt.Printf("stored %d\n", k)
	}
}
