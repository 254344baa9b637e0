package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/billing/billing/internal/charge"
	"github.com/billing/billing/internal/webhook"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

var _ webhook.Store = (*Store)(nil)

// InsertEndpoint stores a new endpoint. It is idempotent by id: an endpoint already
// stored with that id is left as it is and is not an error. Only the sealed secrets are
// stored; the plain one (e.Secret) is never written.
func (s *Store) InsertEndpoint(ctx context.Context, e webhook.Endpoint) error {
	_, err := s.webhookEndpoints.InsertOne(ctx, e)
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("inserting webhook endpoint %s: %w", e.ID, translate(err))
	}
	return nil
}

// Endpoint returns the endpoint id as stored, whoever its merchant (callers check it;
// call Public before showing it). It returns charge.ErrNotFound if there is none.
func (s *Store) Endpoint(ctx context.Context, id string) (webhook.Endpoint, error) {
	var e webhook.Endpoint
	if err := s.webhookEndpoints.FindOne(ctx, byID(id)).Decode(&e); err != nil {
		return webhook.Endpoint{}, fmt.Errorf("getting webhook endpoint %s: %w", id, translate(err))
	}
	return e, nil
}

// ListEndpoints returns a page of merchant's endpoints, newest first: at most limit (10 if
// it is not positive), only those older than startingAfter when it is set. The bool
// reports whether older endpoints remain.
func (s *Store) ListEndpoints(ctx context.Context, merchant string, limit int, startingAfter string) ([]webhook.Endpoint, bool, error) {
	filter := bson.D{{Key: "merchant", Value: merchant}}
	if startingAfter != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: startingAfter}}})
	}
	es := []webhook.Endpoint{}
	hasMore, err := findPage(ctx, s.webhookEndpoints, filter, listLimit(limit), &es)
	if err != nil {
		return nil, false, fmt.Errorf("listing webhook endpoints: %w", err)
	}
	return es, hasMore, nil
}

// EnabledEndpoints returns the enabled endpoints of each of merchants, oldest first;
// merchants with none are absent from the map. It is one query for the whole batch, which
// FerretDB answers with a scan of the endpoints: a small collection.
func (s *Store) EnabledEndpoints(ctx context.Context, merchants []string) (map[string][]webhook.Endpoint, error) {
	out := make(map[string][]webhook.Endpoint)
	if len(merchants) == 0 {
		return out, nil
	}
	filter := bson.D{
		{Key: "merchant", Value: bson.D{{Key: "$in", Value: merchants}}},
		{Key: "status", Value: webhook.StatusEnabled},
	}
	cur, err := s.webhookEndpoints.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("reading enabled webhook endpoints of %d merchants: %w", len(merchants), translate(err))
	}
	var es []webhook.Endpoint
	if err := cur.All(ctx, &es); err != nil {
		return nil, fmt.Errorf("reading enabled webhook endpoints of %d merchants: %w", len(merchants), translate(err))
	}
	for _, e := range es {
		out[e.Merchant] = append(out[e.Merchant], e)
	}
	return out, nil
}

// SaveEndpoint writes what a merchant edits of an endpoint by id: url, enabled_events,
// description, status, updated_at and version; re-enabling also clears the recorded
// failures. Secrets and health have writers of their own (SetEndpointSecrets,
// SetEndpointHealth), so no edit can undo a rotation or a disabling made meanwhile.
func (s *Store) SaveEndpoint(ctx context.Context, e webhook.Endpoint) error {
	set := bson.D{
		{Key: "url", Value: e.URL},
		{Key: "enabled_events", Value: e.EnabledEvents},
		{Key: "description", Value: e.Description},
		{Key: "status", Value: e.Status},
		{Key: "updated_at", Value: e.UpdatedAt},
		{Key: "version", Value: e.Version},
	}
	if e.Status == webhook.StatusEnabled && e.FailingSince == nil {
		set = append(set, bson.E{Key: "failing_since", Value: nil}, bson.E{Key: "disabled_reason", Value: ""})
	}
	return s.setEndpoint(ctx, e.ID, "saving", set)
}

// SetEndpointSecrets writes an endpoint's secrets by id, and nothing else.
func (s *Store) SetEndpointSecrets(ctx context.Context, id string, secrets []webhook.SealedSecret, updatedAt time.Time) error {
	return s.setEndpoint(ctx, id, "rotating the secret of", bson.D{
		{Key: "secrets", Value: secrets}, {Key: "updated_at", Value: updatedAt},
	})
}

func (s *Store) setEndpoint(ctx context.Context, id, what string, set bson.D) error {
	res, err := s.webhookEndpoints.UpdateOne(ctx, byID(id), bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return fmt.Errorf("%s webhook endpoint %s: %w", what, id, translate(err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("%s webhook endpoint %s: %w", what, id, charge.ErrNotFound)
	}
	return nil
}

// SetEndpointHealth records the health of the endpoint id: failing_since becomes
// failingSince (nil while it answers) and, when disabledReason is not empty, status
// becomes disabled with that reason. No other field is written (not even updated_at or
// version), so a merchant's edit made meanwhile stays. It returns charge.ErrNotFound if
// there is no such endpoint.
func (s *Store) SetEndpointHealth(ctx context.Context, id string, failingSince *time.Time, disabledReason string) error {
	set := bson.D{{Key: "failing_since", Value: failingSince}}
	if disabledReason != "" {
		set = append(set,
			bson.E{Key: "status", Value: webhook.StatusDisabled},
			bson.E{Key: "disabled_reason", Value: disabledReason})
	}
	res, err := s.webhookEndpoints.UpdateOne(ctx, byID(id), bson.D{{Key: "$set", Value: set}})
	if err != nil {
		return fmt.Errorf("setting health of webhook endpoint %s: %w", id, translate(err))
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("setting health of webhook endpoint %s: %w", id, charge.ErrNotFound)
	}
	return nil
}

// DeleteEndpoint removes the endpoint id, whoever its merchant (callers check it). It
// returns charge.ErrNotFound if there is none.
func (s *Store) DeleteEndpoint(ctx context.Context, id string) error {
	res, err := s.webhookEndpoints.DeleteOne(ctx, byID(id))
	if err != nil {
		return fmt.Errorf("deleting webhook endpoint %s: %w", id, translate(err))
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("deleting webhook endpoint %s: %w", id, charge.ErrNotFound)
	}
	return nil
}

// run is the document of a run of delivery attempts: how many its key has made.
type run struct {
	Key      string `bson:"_id"`
	Attempts int    `bson:"attempts"`
}

// Run returns how many attempts the run with the given key has made; 0 if none is recorded.
func (s *Store) Run(ctx context.Context, key string) (int, error) {
	var r run
	err := s.webhookRuns.FindOne(ctx, byID(key)).Decode(&r)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading webhook run %s: %w", key, translate(err))
	}
	return r.Attempts, nil
}

// SaveRun records that the run with the given key has made attempts attempts: an upsert
// by id. Of two concurrent first saves of a key, the upsert that loses the insert may fail
// on the duplicate id (FerretDB does not retry it as MongoDB does); it is then retried
// once, as an update of the document the other inserted.
func (s *Store) SaveRun(ctx context.Context, key string, attempts int) error {
	// created_at is when the run last moved: DeleteBefore sweeps runs idle past retention.
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "attempts", Value: attempts}, {Key: "created_at", Value: time.Now().UTC()}}}}
	opts := options.UpdateOne().SetUpsert(true)
	_, err := s.webhookRuns.UpdateOne(ctx, byID(key), update, opts)
	if mongo.IsDuplicateKeyError(err) {
		_, err = s.webhookRuns.UpdateOne(ctx, byID(key), update, opts)
	}
	if err != nil {
		return fmt.Errorf("saving webhook run %s: %w", key, translate(err))
	}
	return nil
}

// InsertDelivery records one delivery attempt. It is idempotent by id: an attempt already
// recorded is left as it is and is not an error.
func (s *Store) InsertDelivery(ctx context.Context, d webhook.Delivery) error {
	_, err := s.webhookDeliveries.InsertOne(ctx, d)
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("inserting webhook delivery %s: %w", d.ID, translate(err))
	}
	return nil
}

// ListDeliveries returns a page of the delivery attempts to endpoint, newest first: at
// most limit (10 if it is not positive), only those older than startingAfter when it is
// set. The bool reports whether older attempts remain. It filters by endpoint alone:
// callers check that the endpoint is their merchant's.
func (s *Store) ListDeliveries(ctx context.Context, endpoint string, limit int, startingAfter string) ([]webhook.Delivery, bool, error) {
	filter := bson.D{{Key: "endpoint", Value: endpoint}}
	if startingAfter != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: startingAfter}}})
	}
	ds := []webhook.Delivery{}
	hasMore, err := findPage(ctx, s.webhookDeliveries, filter, listLimit(limit), &ds)
	if err != nil {
		return nil, false, fmt.Errorf("listing webhook deliveries of %s: %w", endpoint, err)
	}
	return ds, hasMore, nil
}

// DeleteBefore removes the events and the delivery records created before t, and returns
// how many it removed. Neither server is asked for TTL indexes (FerretDB has none): a
// periodic janitor calls this. On an error the count is of what was removed before it.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	filter := bson.D{{Key: "created_at", Value: bson.D{{Key: "$lt", Value: t}}}}
	var total int64
	for _, c := range []struct {
		what string
		coll *mongo.Collection
	}{
		{"events", s.events},
		{"webhook deliveries", s.webhookDeliveries},
		{"webhook runs", s.webhookRuns},
	} {
		res, err := c.coll.DeleteMany(ctx, filter)
		if res != nil {
			total += res.DeletedCount
		}
		if err != nil {
			return total, fmt.Errorf("deleting %s created before %s: %w", c.what, t.UTC().Format(time.RFC3339), translate(err))
		}
	}
	return total, nil
}
