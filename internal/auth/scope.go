package auth

// The scopes of docs/api.md, "Authentication": what a token may do.
const (
	ScopeChargesWrite   = "charges:write"
	ScopeChargesRead    = "charges:read"
	ScopeEventsRead     = "events:read"
	ScopeWebhooksManage = "webhooks:manage"
	// ScopeOpsRead shows the dashboard's operator pages; ScopeOpsWrite allows their
	// actions (replaying dead letters, running a reconciliation).
	ScopeOpsRead  = "ops:read"
	ScopeOpsWrite = "ops:write"
)
