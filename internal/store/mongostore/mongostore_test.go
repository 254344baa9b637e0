package mongostore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/store/mongostore"
	"github.com/billing/billing/internal/store/recordtest"
	"github.com/billing/billing/internal/storetest"
	"github.com/billing/billing/internal/webhook"
)

// What is particular to the mongodb engine; the behaviour it shares with every engine is
// the conformance suite's (package store).

func TestMain(m *testing.M) { os.Exit(storetest.Run(m)) }

func open(t *testing.T) (s *mongostore.Store, uri, database string) {
	t.Helper()
	uri, database = storetest.New(t), storetest.Database(t)
	s, err := mongostore.Open(t.Context(), uri, database, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.DropDatabase(ctx))
		require.NoError(t, s.Close(ctx))
	})
	return s, uri, database
}

func TestOpenTwice(t *testing.T) {
	t.Parallel()
	_, uri, database := open(t)

	// open opened the database already: creating its indexes again must be a no-op.
	s, err := mongostore.Open(t.Context(), uri, database, nil)
	require.NoError(t, err)
	require.NoError(t, s.Ping(t.Context()))
	require.NoError(t, s.Close(t.Context()))
}

func TestUnavailable(t *testing.T) {
	t.Parallel()

	t.Run("NoServer", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		require.NoError(t, l.Close())

		_, err = mongostore.Open(t.Context(), "mongodb://"+addr+"/?serverSelectionTimeoutMS=200", "x", nil)
		require.ErrorIs(t, err, charge.ErrUnavailable)
	})

	t.Run("Closed", func(t *testing.T) {
		t.Parallel()
		s, err := mongostore.Open(t.Context(), storetest.New(t), storetest.Database(t), nil)
		require.NoError(t, err)
		require.NoError(t, s.DropDatabase(t.Context()))
		require.NoError(t, s.Close(t.Context()))

		_, err = s.GetCharge(t.Context(), "acct_1", "ch_x")
		require.ErrorIs(t, err, charge.ErrUnavailable)
		require.ErrorIs(t, s.Ping(t.Context()), charge.ErrUnavailable)
	})
}

// An endpoint's document holds its secrets sealed, and neither the plain secret nor the
// object name.
func TestEndpointDocument(t *testing.T) {
	t.Parallel()
	s, uri, database := open(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	e := webhook.Endpoint{
		ID: charge.NewID(charge.PrefixWebhookEndpoint), Merchant: "acct_1", URL: "https://example.com/hooks",
		EnabledEvents: []string{"*"}, Status: webhook.StatusEnabled, Secret: "whsec_plain",
		Secrets: []webhook.SealedSecret{{Sealed: []byte("sealed-1"), CreatedAt: now}}, CreatedAt: now, UpdatedAt: now,
	}
	require.NoError(t, s.InsertEndpoint(t.Context(), e))

	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	require.NoError(t, err)
	defer func() { require.NoError(t, client.Disconnect(context.WithoutCancel(t.Context()))) }()
	raw, err := client.Database(database).Collection("webhook_endpoints").FindOne(t.Context(), bson.D{{Key: "_id", Value: e.ID}}).Raw()
	require.NoError(t, err)
	require.False(t, bytes.Contains(raw, []byte(e.Secret)), "plain secret stored: %s", raw)
	var doc bson.M
	require.NoError(t, bson.Unmarshal(raw, &doc))
	require.NotContains(t, doc, "secret")
	require.NotContains(t, doc, "object")
	_, sealed := raw.Lookup("secrets", "0", "sealed").Binary()
	require.Equal(t, []byte("sealed-1"), sealed, "the sealed secret is stored")
}

// A worker that dies between any two writes of a fold leaves the balance exact once the
// command is delivered again, whether other writes of the merchant come before that
// delivery or after it; only the last steps of a shard keep the list of what they folded.
func TestBalanceCrashAtEveryPoint(t *testing.T) {
	t.Parallel()
	s, uri, database := open(t)
	ctx := t.Context()
	at := time.Now().UTC().Truncate(time.Millisecond)
	errCrash := errors.New("crashed")

	for _, p := range mongostore.FoldPoints {
		for _, otherFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/other first %t", p, otherFirst), func(t *testing.T) {
				merchant := "acct_" + charge.NewID("m")
				crashed := recordtest.Ledger(merchant, 24, at)
				other := recordtest.Ledger(merchant, 24, at)

				dying, err := mongostore.Open(ctx, uri, database, nil)
				require.NoError(t, err)
				defer func() { require.NoError(t, dying.Close(context.WithoutCancel(ctx))) }()
				mongostore.SetFault(dying, func(q mongostore.FoldPoint) error {
					if q == p {
						return errCrash
					}
					return nil
				})
				require.ErrorIs(t, dying.InsertLedgerEntries(ctx, crashed), errCrash)

				if otherFirst {
					require.NoError(t, s.InsertLedgerEntries(ctx, other))
				}
				require.NoError(t, s.InsertLedgerEntries(ctx, crashed)) // redelivered
				require.NoError(t, s.InsertLedgerEntries(ctx, crashed)) // and again
				if !otherFirst {
					require.NoError(t, s.InsertLedgerEntries(ctx, other))
				}

				bal, err := s.Balance(ctx, merchant)
				require.NoError(t, err)
				require.Equal(t, recordtest.Balance(slices.Concat(crashed, other)), bal)

				client, err := mongo.Connect(options.Client().ApplyURI(uri))
				require.NoError(t, err)
				defer func() { require.NoError(t, client.Disconnect(context.WithoutCancel(ctx))) }()
				listing, err := client.Database(database).Collection("balance_steps").CountDocuments(ctx, bson.D{
					{Key: "merchant", Value: merchant}, {Key: "folds.0", Value: bson.D{{Key: "$exists", Value: true}}},
				})
				require.NoError(t, err)
				require.LessOrEqual(t, listing, int64(2*mongostore.BalanceShards), "steps that still list their folds")
			})
		}
	}
}
