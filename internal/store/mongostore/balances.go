package mongostore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"

	"github.com/billing/billing/internal/charge"
)

// Balances are running totals, kept without a multi-document transaction and exact under
// redelivery, two workers on one message, and a crash between any two writes.
//
// A merchant's totals are split into balanceShards shards; a ledger transaction belongs to
// the shard of its charge (shardOf). Each shard is a chain of numbered steps, documents of
// balance_steps that are never updated: step n+1 holds the totals of step n plus the
// ledger transactions it folds in, and lists them. Inserting a step is the only write
// that decides anything, and the unique _id arbitrates it on MongoDB and FerretDB alike
// (FerretDB applies no conditional update atomically): of two folders that read step n,
// one inserts n+1 and the other finds it taken, reads again and folds what is left.
//
// A transaction is folded when ledger_folds holds it. A folder marks the transactions of
// the step it read before it reads the marks of its own, so that every step but the one
// being inserted has its transactions marked: a transaction not marked is in no step, and
// the step inserted after that check folds it exactly once. A crash at any point leaves
// either nothing done (the entries are folded when the command is redelivered) or a step
// whose marks the next folder of the shard writes.
//
// A step's number is never used twice: steps are not deleted, so an insert of a number
// that was ever taken fails, however late it comes. Its folder clears a step's list of
// folds once it has marked them, so that a step keeps only its number and totals, about
// a hundred bytes: one per fold of a batch, far fewer than the ledger entries. A list
// left by a folder that died before clearing it stays, marked, as garbage.
//
// balance_heads holds, per shard, the number of a recent step: where readers start. It is
// advanced with $max after each step is in; readers walk forward from it to the first
// number not taken. The head lags after a crash, or on FerretDB when two $max race (it
// applies no update atomically), which costs the walk a step or two.
//
// The balance reads, per shard, its head and the steps from there: a bounded number of
// documents by _id, whatever the history.

// balanceShards is the number of chains a merchant's totals are split into: how many
// folders of one merchant can insert a step at once, and how many the balance reads.
const balanceShards = 8

// maxFoldRounds bounds the rounds of one fold: each round past the first needs another
// folder to have inserted a step of the same shard in the meantime.
const maxFoldRounds = 100

// maxStepWalk bounds how far a reader walks from a shard's head to its last step.
const maxStepWalk = 1000

// stepDoc is a step of a shard's totals, as balance_steps stores it.
type stepDoc struct {
	ID       string     `bson:"_id"`
	Merchant string     `bson:"merchant"`
	Shard    int        `bson:"shard"`
	Step     int64      `bson:"step"`
	Totals   []totalDoc `bson:"totals"`
	// Folds are the ledger transactions this step added to the totals of the one before.
	// Cleared by its folder once marked.
	Folds []string  `bson:"folds"`
	At    time.Time `bson:"at"`
}

// totalDoc is the sum of the entries of one account in one currency.
type totalDoc struct {
	Currency string         `bson:"currency"`
	Account  charge.Account `bson:"account"`
	Amount   int64          `bson:"amount"`
}

// headDoc is a shard's head: a recent step.
type headDoc struct {
	ID   string `bson:"_id"`
	Step int64  `bson:"step"`
}

// foldDoc marks a ledger transaction as folded into the step Step of its shard.
type foldDoc struct {
	ID   string    `bson:"_id"`
	Step int64     `bson:"step"`
	At   time.Time `bson:"at"`
}

// shardOf is the shard of the ledger transactions of charge id.
func shardOf(chargeID string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(chargeID))
	return int(h.Sum32() % balanceShards)
}

// headID and stepID are the _ids of a shard's head and of its step n. A merchant contains
// no space (auth.validSubject), so the ids of one merchant never collide with another's.
func headID(merchant string, shard int) string {
	return fmt.Sprintf("%s %02d", merchant, shard)
}

func stepID(merchant string, shard int, n int64) string {
	return fmt.Sprintf("%s %02d %020d", merchant, shard, n)
}

// foldPoint is a point between two writes of a fold, where a test can make it fail.
type foldPoint string

const (
	afterEntries     foldPoint = "entries inserted"
	afterMarkingRead foldPoint = "the step read marked"
	afterStep        foldPoint = "step inserted"
	afterMarks       foldPoint = "own transactions marked"
	afterHead        foldPoint = "head advanced"
)

// failAt returns the error a test asked for at p, if any.
func (s *Store) failAt(p foldPoint) error {
	if s.fault == nil {
		return nil
	}
	return s.fault(p)
}

// InsertLedgerEntries writes entries in one unordered insert, then folds each ledger
// transaction among them into its merchant's totals, once (see the top of this file).
// Entries are never updated or deleted: one already stored under its id is left as it is
// and is not an error, and its transaction is folded only if it was not yet. The entries
// of one transaction come in one call, as charge.Entries makes them.
func (s *Store) InsertLedgerEntries(ctx context.Context, es []charge.LedgerEntry) error {
	if err := insertAll(ctx, s.ledger, mapSlice(es, newLedgerEntryDoc)); err != nil {
		return fmt.Errorf("inserting %d ledger entries: %w", len(es), err)
	}
	if err := s.failAt(afterEntries); err != nil {
		return err
	}
	type key struct {
		merchant string
		shard    int
	}
	groups := map[key][]charge.LedgerEntry{}
	for _, e := range es {
		k := key{e.Merchant, shardOf(e.ChargeID)}
		groups[k] = append(groups[k], e)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(idParallelism)
	for k, group := range groups {
		g.Go(func() error { return s.fold(ctx, k.merchant, k.shard, group) })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("adding %d ledger entries to the balance: %w", len(es), err)
	}
	return nil
}

// fold adds the transactions of es not yet folded to the totals of shard of merchant.
func (s *Store) fold(ctx context.Context, merchant string, shard int, es []charge.LedgerEntry) error {
	byTx := map[string][]charge.LedgerEntry{}
	for _, e := range es {
		byTx[e.Transaction] = append(byTx[e.Transaction], e)
	}
	txs := keys(byTx)
	slices.Sort(txs)
	for range maxFoldRounds {
		last, err := s.lastStep(ctx, merchant, shard)
		if err != nil {
			return err
		}
		// The folder of the last step marks its folds, then clears its list: a list
		// still there means it died in between.
		if err := s.markFolded(ctx, last.Folds, last.Step); err != nil {
			return err
		}
		if err := s.failAt(afterMarkingRead); err != nil {
			return err
		}
		folded, err := findEach(ctx, s, s.ledgerFolds, txs, func(d foldDoc) int64 { return d.Step })
		if err != nil {
			return fmt.Errorf("reading which transactions are folded: %w", err)
		}
		var todo []string
		for _, tx := range txs {
			if _, ok := folded[tx]; !ok {
				todo = append(todo, tx)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		next := stepDoc{
			ID: stepID(merchant, shard, last.Step+1), Merchant: merchant, Shard: shard, Step: last.Step + 1,
			Totals: addTotals(last.Totals, byTx, todo), Folds: todo, At: time.Now().UTC(),
		}
		taken, err := insertNew(ctx, s.balanceSteps, []stepDoc{next})
		if err != nil {
			return fmt.Errorf("inserting step %d of %s: %w", next.Step, headID(merchant, shard), err)
		}
		if len(taken) > 0 {
			continue // another folder took this step: read it
		}
		if err := s.failAt(afterStep); err != nil {
			return err
		}
		return s.settleStep(ctx, next)
	}
	return fmt.Errorf("folding into %s: %d rounds, each lost to another folder: %w",
		headID(merchant, shard), maxFoldRounds, charge.ErrUnavailable)
}

// settleStep does what follows the insert of step next: marks the transactions of next,
// advances the head, and clears the list of next's folds, now marked.
func (s *Store) settleStep(ctx context.Context, next stepDoc) error {
	if err := s.markFolded(ctx, next.Folds, next.Step); err != nil {
		return err
	}
	if err := s.failAt(afterMarks); err != nil {
		return err
	}
	head := headID(next.Merchant, next.Shard)
	_, err := s.balanceHeads.UpdateOne(ctx, s.byMerchantID(next.Merchant, head),
		bson.D{{Key: "$max", Value: bson.D{{Key: "step", Value: next.Step}}}, {Key: "$set", Value: bson.D{{Key: "merchant", Value: next.Merchant}}}},
		options.UpdateOne().SetUpsert(true))
	// Two first upserts of a head race to insert it; the one that loses leaves a hint
	// that the readers' walk corrects.
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("advancing %s to step %d: %w", head, next.Step, translate(err))
	}
	if err := s.failAt(afterHead); err != nil {
		return err
	}
	// By exact id: the one update FerretDB does through an index.
	_, err = s.balanceSteps.UpdateOne(ctx, s.byMerchantID(next.Merchant, next.ID),
		bson.D{{Key: "$set", Value: bson.D{{Key: "folds", Value: bson.A{}}}}})
	if err != nil {
		return fmt.Errorf("clearing the folds of step %d of %s: %w", next.Step, head, translate(err))
	}
	return nil
}

// markFolded marks transactions txs as folded by step n, in one unordered insert;
// marks already there are left as they are.
func (s *Store) markFolded(ctx context.Context, txs []string, n int64) error {
	at := time.Now().UTC()
	docs := make([]foldDoc, len(txs))
	for i, tx := range txs {
		docs[i] = foldDoc{ID: tx, Step: n, At: at}
	}
	if err := insertAll(ctx, s.ledgerFolds, docs); err != nil {
		return fmt.Errorf("marking %d transactions folded: %w", len(txs), err)
	}
	return nil
}

// addTotals returns totals plus the entries of the transactions todo, sorted by currency
// and account.
func addTotals(totals []totalDoc, byTx map[string][]charge.LedgerEntry, todo []string) []totalDoc {
	type key struct {
		currency string
		account  charge.Account
	}
	sums := map[key]int64{}
	for _, t := range totals {
		sums[key{t.Currency, t.Account}] += t.Amount
	}
	for _, tx := range todo {
		for _, e := range byTx[tx] {
			sums[key{e.Currency, e.Account}] += e.Amount
		}
	}
	out := make([]totalDoc, 0, len(sums))
	for k, v := range sums {
		out = append(out, totalDoc{Currency: k.currency, Account: k.account, Amount: v})
	}
	slices.SortFunc(out, func(a, b totalDoc) int {
		if c := strings.Compare(a.Currency, b.Currency); c != 0 {
			return c
		}
		return strings.Compare(string(a.Account), string(b.Account))
	})
	return out
}

// lastStep returns the last step of shard of merchant, or a step 0 with no totals if the
// shard has none. It starts at the head (or at step 1 if there is none yet) and walks
// forward to the first number not taken.
func (s *Store) lastStep(ctx context.Context, merchant string, shard int) (stepDoc, error) {
	var head headDoc
	err := s.balanceHeads.FindOne(ctx, s.byMerchantID(merchant, headID(merchant, shard))).Decode(&head)
	if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
		return stepDoc{}, fmt.Errorf("reading the head of %s: %w", headID(merchant, shard), translate(err))
	}
	last := stepDoc{Merchant: merchant, Shard: shard}
	for n := max(head.Step, 1); n < head.Step+maxStepWalk; n++ {
		var d stepDoc
		err := s.balanceSteps.FindOne(ctx, s.byMerchantID(merchant, stepID(merchant, shard, n))).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return last, nil
		}
		if err != nil {
			return stepDoc{}, fmt.Errorf("reading step %d of %s: %w", n, headID(merchant, shard), translate(err))
		}
		last = d
	}
	return stepDoc{}, fmt.Errorf("no last step of %s within %d of its head %d: %w",
		headID(merchant, shard), maxStepWalk, head.Step, charge.ErrUnavailable)
}

// Balance adds up the last step of each of merchant's shards: available is what the
// available account holds, pending what the authorized account holds. Currencies appear
// once money has moved in them, in alphabetical order; the lists are empty, not nil, for
// a merchant without entries.
func (s *Store) Balance(ctx context.Context, merchant string) (charge.Balance, error) {
	var mu sync.Mutex
	sums := charge.BalanceSums{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(idParallelism)
	for shard := range balanceShards {
		g.Go(func() error {
			last, err := s.lastStep(gctx, merchant, shard)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, t := range last.Totals {
				sums.Add(t.Currency, t.Account, t.Amount)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return charge.Balance{}, fmt.Errorf("reading the balance: %w", err)
	}
	return sums.Balance(), nil
}
