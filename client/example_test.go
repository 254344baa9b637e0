package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/billing/billing/client"
)

// These examples run against a real API (baseURL) with a merchant's token (token), as from
// `devstack token`.

// Create a charge with an idempotency key of your own, and wait for it to settle.
func Example() {
	ctx := context.Background()
	c, err := client.New(baseURL, token, nil)
	if err != nil {
		log.Fatal(err)
	}
	ch, err := c.CreateCharge(ctx, client.ChargeParams{
		Amount: 1999, Currency: "usd", PaymentMethod: "pm_card_visa",
		Metadata: map[string]string{"order_id": "6735"},
	}, client.WithIdempotencyKey("order-6735"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ch.Status)

	ch, err = c.WaitCharge(ctx, ch.ID, 30*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ch.Status, ch.AmountCaptured, ch.Currency)
	// Output:
	// pending
	// succeeded 1999 usd
}

// Errors of the API match their code with errors.Is, and carry the details as *Error.
func ExampleError() {
	ctx := context.Background()
	c, err := client.New(baseURL, token, nil)
	if err != nil {
		log.Fatal(err)
	}
	params := client.ChargeParams{Amount: 500, Currency: "usd", PaymentMethod: "pm_card_visa"}
	if _, err := c.CreateCharge(ctx, params, client.WithIdempotencyKey("order-7001")); err != nil {
		log.Fatal(err)
	}
	params.Amount = 600 // the same key for another request
	_, err = c.CreateCharge(ctx, params, client.WithIdempotencyKey("order-7001"))
	if errors.Is(err, client.ErrIdempotencyKeyReused) {
		fmt.Println("that key was used for another charge")
	}

	_, err = c.CreateCharge(ctx, client.ChargeParams{Amount: 500, Currency: "usd"})
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Code, e.Param)
	}
	// Output:
	// that key was used for another charge
	// 400 parameter_missing payment_method
}

// Lists are iterators that fetch the next page when the loop gets there.
func ExampleClient_ListCharges() {
	ctx := context.Background()
	c, err := client.New(baseURL, token, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, amount := range []int64{100, 200, 300} {
		ch, err := c.CreateCharge(ctx, client.ChargeParams{Amount: amount, Currency: "usd", PaymentMethod: "pm_card_visa"})
		if err != nil {
			log.Fatal(err)
		}
		// Lists show the charges that a worker has taken up.
		if _, err := c.WaitCharge(ctx, ch.ID, 30*time.Second); err != nil {
			log.Fatal(err)
		}
	}

	n := 0
	for ch, err := range c.ListCharges(ctx, client.ListChargesParams{ListParams: client.ListParams{Limit: 2}}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ch.Amount)
		if n++; n == 3 {
			break // newest first: the three just made, from two pages
		}
	}
	// Output:
	// 300
	// 200
	// 100
}

// Verify each webhook delivery with the endpoint's secret before trusting it.
func ExampleParseWebhook() {
	ctx := context.Background()
	c, err := client.New(baseURL, token, nil)
	if err != nil {
		log.Fatal(err)
	}
	// The merchant's webhook receiver; here it hands each delivery over to be verified.
	type delivery struct {
		header http.Header
		body   []byte
	}
	deliveries := make(chan delivery, 16)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "unreadable", http.StatusBadRequest)
			return
		}
		deliveries <- delivery{r.Header, body}
	}))
	defer receiver.Close()

	endpoint, err := c.CreateWebhookEndpoint(ctx, client.WebhookEndpointParams{
		URL: receiver.URL + "/hooks", EnabledEvents: []string{client.EventChargeSucceeded},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.DeleteWebhookEndpoint(ctx, endpoint.ID)
	verifier, err := client.NewWebhookVerifier(endpoint.Secret)
	if err != nil {
		log.Fatal(err)
	}

	ch, err := c.CreateCharge(ctx, client.ChargeParams{Amount: 4200, Currency: "usd", PaymentMethod: "pm_card_visa"})
	if err != nil {
		log.Fatal(err)
	}
	for d := range deliveries {
		ev, err := client.ParseWebhook(verifier, d.header, d.body)
		if err != nil {
			log.Fatal(err) // in a handler: answer 400
		}
		if ev.Data.Object.ID == ch.ID { // charges made before may be delivered too
			fmt.Println(ev.Type, ev.Data.Object.Amount)
			break
		}
	}
	// Output:
	// charge.succeeded 4200
}
