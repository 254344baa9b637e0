package openapitest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// reports collects what a Transport reports.
type reports struct {
	mu    sync.Mutex
	lines []string
}

func (r *reports) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

// TestTransportReportsDrift sends requests to a server that answers as a drifted API
// would, and requires each departure from the document to be reported, and nothing else.
func TestTransportReportsDrift(t *testing.T) {
	problem := func(w http.ResponseWriter, status int, code string) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("X-Request-Id", "req_1")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"type":"about:blank","title":"t","status":%d,"code":%q,"detail":"d"}`, status, code)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("case") {
		case "unknown-code":
			problem(w, http.StatusNotFound, "no_such_code")
		case "accepts-invalid":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Request-Id", "req_1")
			fmt.Fprint(w, `{"object":"list","data":[],"has_more":false,"next_cursor":null}`)
		default:
			problem(w, http.StatusNotFound, "resource_missing")
		}
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name, method, path, want string
	}{
		{"a documented answer", "GET", "/v1/charges/ch_1", ""},
		{"a code the document lacks", "GET", "/v1/charges/ch_1?case=unknown-code", "is not the document's"},
		{"an invalid request accepted", "GET", "/v1/charges?limit=0&case=accepts-invalid", "the document refuses"},
		{"a path the document lacks answered", "GET", "/v1/nothing-here?case=accepts-invalid", "is not in the document"},
		{"the admin listener, unchecked", "GET", "/metrics?case=accepts-invalid", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := &reports{}
			client := &http.Client{Transport: &Transport{Report: rep}}
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer x")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := strings.Join(rep.lines, "\n")
			switch {
			case tc.want == "" && got != "":
				t.Errorf("reported %q", got)
			case tc.want != "" && !strings.Contains(got, tc.want):
				t.Errorf("reported %q, want %q", got, tc.want)
			}
		})
	}
}
