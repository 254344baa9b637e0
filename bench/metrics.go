package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// ackedSeries is the worker's count of commands settled and acknowledged.
const ackedSeries = `billing_worker_commands_total{result="acked"}`

// scraper reads one series from a process's Prometheus text endpoint.
type scraper struct {
	url    string
	client *http.Client
}

func newScraper(adminAddr string) *scraper {
	return &scraper{url: "http://" + adminAddr + "/metrics", client: &http.Client{Timeout: requestTimeout}}
}

// value returns the value of series (name and labels exactly as exposed), or 0 when the
// process has not exposed it yet (a counter with no increment so far).
func (s *scraper) value(ctx context.Context, series string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s answered %d", s.url, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), series+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", s.url, series, err)
		}
		return v, nil
	}
	return 0, sc.Err()
}
