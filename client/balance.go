package client

import "context"

// Money is an amount in a currency's minor unit.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Balance is the merchant's balance, per currency.
type Balance struct {
	// Available is what was captured less what was refunded.
	Available []Money `json:"available"`
	// Pending is what is authorized and not captured yet.
	Pending []Money `json:"pending"`
}

// GetBalance returns the merchant's balance.
func (c *Client) GetBalance(ctx context.Context, opts ...RequestOption) (*Balance, error) {
	return get[Balance](ctx, c, "/v1/balance", nil, opts)
}
