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

// endpointDoc is a webhook endpoint as the webhook_endpoints collection stores it: its
// secrets sealed, never the plain one.
type endpointDoc struct {
	ID             string                 `bson:"_id"`
	Merchant       string                 `bson:"merchant"`
	URL            string                 `bson:"url"`
	EnabledEvents  []string               `bson:"enabled_events"`
	Description    *string                `bson:"description"`
	Status         webhook.EndpointStatus `bson:"status"`
	CreatedAt      time.Time              `bson:"created_at"`
	UpdatedAt      time.Time              `bson:"updated_at"`
	Secrets        []sealedSecretDoc      `bson:"secrets"`
	Version        int64                  `bson:"version"`
	FailingSince   *time.Time             `bson:"failing_since"`
	DisabledReason string                 `bson:"disabled_reason,omitempty"`
}

func newEndpointDoc(e webhook.Endpoint) endpointDoc {
	return endpointDoc{
		ID:             e.ID,
		Merchant:       e.Merchant,
		URL:            e.URL,
		EnabledEvents:  e.EnabledEvents,
		Description:    e.Description,
		Status:         e.Status,
		CreatedAt:      e.CreatedAt,
		UpdatedAt:      e.UpdatedAt,
		Secrets:        mapSlice(e.Secrets, newSealedSecretDoc),
		Version:        e.Version,
		FailingSince:   e.FailingSince,
		DisabledReason: e.DisabledReason,
	}
}

func (d endpointDoc) toEndpoint() webhook.Endpoint {
	return webhook.Endpoint{
		ID:             d.ID,
		Merchant:       d.Merchant,
		URL:            d.URL,
		EnabledEvents:  d.EnabledEvents,
		Description:    d.Description,
		Status:         d.Status,
		CreatedAt:      d.CreatedAt,
		UpdatedAt:      d.UpdatedAt,
		Secrets:        mapSlice(d.Secrets, sealedSecretDoc.toSealedSecret),
		Version:        d.Version,
		FailingSince:   d.FailingSince,
		DisabledReason: d.DisabledReason,
	}
}

// sealedSecretDoc is a signing secret as its endpoint's document holds it.
type sealedSecretDoc struct {
	Sealed    []byte     `bson:"sealed"`
	CreatedAt time.Time  `bson:"created_at"`
	ExpiresAt *time.Time `bson:"expires_at,omitempty"`
}

func newSealedSecretDoc(s webhook.SealedSecret) sealedSecretDoc {
	return sealedSecretDoc{Sealed: s.Sealed, CreatedAt: s.CreatedAt, ExpiresAt: s.ExpiresAt}
}

func (d sealedSecretDoc) toSealedSecret() webhook.SealedSecret {
	return webhook.SealedSecret{Sealed: d.Sealed, CreatedAt: d.CreatedAt, ExpiresAt: d.ExpiresAt}
}

// deliveryDoc is a delivery attempt as the webhook_deliveries collection stores it.
type deliveryDoc struct {
	ID             string     `bson:"_id"`
	Merchant       string     `bson:"merchant"`
	Endpoint       string     `bson:"endpoint"`
	Event          string     `bson:"event"`
	Attempt        int        `bson:"attempt"`
	ResponseStatus *int       `bson:"response_status"`
	DurationMS     int64      `bson:"duration_ms"`
	Error          *string    `bson:"error"`
	NextAttemptAt  *time.Time `bson:"next_attempt_at"`
	CreatedAt      time.Time  `bson:"created_at"`
	Key            string     `bson:"key"`
}

func newDeliveryDoc(d webhook.Delivery) deliveryDoc {
	return deliveryDoc{
		ID:             d.ID,
		Merchant:       d.Merchant,
		Endpoint:       d.Endpoint,
		Event:          d.Event,
		Attempt:        d.Attempt,
		ResponseStatus: d.ResponseStatus,
		DurationMS:     d.DurationMS,
		Error:          d.Error,
		NextAttemptAt:  d.NextAttemptAt,
		CreatedAt:      d.CreatedAt,
		Key:            d.Key,
	}
}

func (d deliveryDoc) toDelivery() webhook.Delivery {
	return webhook.Delivery{
		ID:             d.ID,
		Merchant:       d.Merchant,
		Endpoint:       d.Endpoint,
		Event:          d.Event,
		Attempt:        d.Attempt,
		ResponseStatus: d.ResponseStatus,
		DurationMS:     d.DurationMS,
		Error:          d.Error,
		NextAttemptAt:  d.NextAttemptAt,
		CreatedAt:      d.CreatedAt,
		Key:            d.Key,
	}
}

// InsertEndpoint stores a new endpoint. It is idempotent by id: an endpoint already
// stored with that id is left as it is and is not an error. Only the sealed secrets are
// stored; the plain one (e.Secret) is never written.
func (s *Store) InsertEndpoint(ctx context.Context, e webhook.Endpoint) error {
	_, err := s.webhookEndpoints.InsertOne(ctx, newEndpointDoc(e))
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("inserting webhook endpoint %s: %w", e.ID, translate(err))
	}
	return nil
}

// Endpoint returns the endpoint id as stored, whoever its merchant (callers check it;
// call Public before showing it). It returns charge.ErrNotFound if there is none.
func (s *Store) Endpoint(ctx context.Context, id string) (webhook.Endpoint, error) {
	var d endpointDoc
	if err := s.webhookEndpoints.FindOne(ctx, byID(id)).Decode(&d); err != nil {
		return webhook.Endpoint{}, fmt.Errorf("getting webhook endpoint %s: %w", id, translate(err))
	}
	return d.toEndpoint(), nil
}

// ListEndpoints returns a page of merchant's endpoints, newest first: at most limit (10 if
// it is not positive), only those older than startingAfter when it is set. The bool
// reports whether older endpoints remain.
func (s *Store) ListEndpoints(ctx context.Context, merchant string, limit int, startingAfter string) ([]webhook.Endpoint, bool, error) {
	filter := bson.D{{Key: "merchant", Value: merchant}}
	if startingAfter != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: startingAfter}}})
	}
	es, hasMore, err := findPage(ctx, s.webhookEndpoints, filter, listLimit(limit), endpointDoc.toEndpoint)
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
	var docs []endpointDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("reading enabled webhook endpoints of %d merchants: %w", len(merchants), translate(err))
	}
	for _, d := range docs {
		out[d.Merchant] = append(out[d.Merchant], d.toEndpoint())
	}
	return out, nil
}

// DisabledEndpoints returns up to limit disabled endpoints (10 if it is not positive),
// whatever their merchant, newest first: what the operator page lists. MongoDB reads them
// from the index status_id; FerretDB scans the endpoints (it pushes down only _id
// filters): a small collection, and an operator's page.
func (s *Store) DisabledEndpoints(ctx context.Context, limit int) ([]webhook.Endpoint, error) {
	filter := bson.D{{Key: "status", Value: webhook.StatusDisabled}}
	es, _, err := findPage(ctx, s.webhookEndpoints, filter, listLimit(limit), endpointDoc.toEndpoint)
	if err != nil {
		return nil, fmt.Errorf("listing disabled webhook endpoints: %w", err)
	}
	return es, nil
}

// SaveEndpoint writes what a merchant edits of an endpoint by id: url, enabled_events,
// description, status, updated_at and version; re-enabling also clears the recorded
// failures. Secrets and health have writers of their own (SetEndpointSecrets,
// SetEndpointHealth), so no edit can undo a rotation or a disabling made meanwhile.
func (s *Store) SaveEndpoint(ctx context.Context, e webhook.Endpoint) error {
	d := newEndpointDoc(e)
	set := bson.D{
		{Key: "url", Value: d.URL},
		{Key: "enabled_events", Value: d.EnabledEvents},
		{Key: "description", Value: d.Description},
		{Key: "status", Value: d.Status},
		{Key: "updated_at", Value: d.UpdatedAt},
		{Key: "version", Value: d.Version},
	}
	if e.Status == webhook.StatusEnabled && e.FailingSince == nil {
		set = append(set, bson.E{Key: "failing_since", Value: nil}, bson.E{Key: "disabled_reason", Value: ""})
	}
	return s.setEndpoint(ctx, e.ID, "saving", set)
}

// SetEndpointSecrets writes an endpoint's secrets by id, and nothing else.
func (s *Store) SetEndpointSecrets(ctx context.Context, id string, secrets []webhook.SealedSecret, updatedAt time.Time) error {
	return s.setEndpoint(ctx, id, "rotating the secret of", secretsFields(secrets, updatedAt))
}

// secretsFields are the fields of an endpoint's document that SetEndpointSecrets writes.
func secretsFields(secrets []webhook.SealedSecret, updatedAt time.Time) bson.D {
	return bson.D{
		{Key: "secrets", Value: mapSlice(secrets, newSealedSecretDoc)}, {Key: "updated_at", Value: updatedAt},
	}
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
	_, err := s.webhookDeliveries.InsertOne(ctx, newDeliveryDoc(d))
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
	ds, hasMore, err := findPage(ctx, s.webhookDeliveries, filter, listLimit(limit), deliveryDoc.toDelivery)
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
