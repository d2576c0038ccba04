package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// countingProxy sits between the stack and dynalite and counts DynamoDB
// requests per operation and table. It asks dynalite for the consumed
// capacity of every request (ReturnConsumedCapacity: TOTAL is added to the
// body; dynalite does not check signatures) and counts the items each write
// touches, so that the cost model uses observed numbers.
type countingProxy struct {
	target string
	client *http.Client
	srv    *http.Server
	url    string

	mu     sync.Mutex
	counts map[string]*opCount // "Operation table"
}

type opCount struct {
	requests int
	items    int     // items written (writes) or returned (reads)
	capacity float64 // capacity units dynalite reports (table only, no GSI)
}

func startCountingProxy(target string) (*countingProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &countingProxy{target: target, counts: map[string]*opCount{},
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 64}}}
	p.srv = &http.Server{Handler: p}
	p.url = "http://" + ln.Addr().String()
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *countingProxy) close() { _ = p.srv.Close() }

// snapshot returns and resets the counts.
func (p *countingProxy) snapshot() map[string]opCount {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]opCount, len(p.counts))
	for k, v := range p.counts {
		out[k] = *v
	}
	p.counts = map[string]*opCount{}
	return out
}

func (p *countingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_20120810.")
	var in map[string]json.RawMessage
	_ = json.Unmarshal(body, &in)
	counted := in != nil && isDataOp(op)
	if counted {
		if _, ok := in["ReturnConsumedCapacity"]; !ok {
			in["ReturnConsumedCapacity"] = json.RawMessage(`"TOTAL"`)
			body, _ = json.Marshal(in)
		}
	}
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	for k, vs := range r.Header {
		if k != "Content-Length" && k != "Accept-Encoding" {
			req.Header[k] = vs
		}
	}
	resp, err := p.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	for k, vs := range resp.Header {
		if k != "Content-Length" {
			w.Header()[k] = vs
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(out)
	if counted && resp.StatusCode == http.StatusOK {
		p.count(op, in, out)
	}
}

func isDataOp(op string) bool {
	switch op {
	case "GetItem", "PutItem", "DeleteItem", "UpdateItem", "Query", "Scan", "BatchGetItem", "BatchWriteItem",
		"TransactWriteItems", "TransactGetItems":
		return true
	}
	return false
}

func (p *countingProxy) count(op string, in map[string]json.RawMessage, out []byte) {
	var resp struct {
		Count            int              `json:"Count"`
		Responses        map[string][]any `json:"Responses"`
		ConsumedCapacity json.RawMessage  `json:"ConsumedCapacity"`
	}
	_ = json.Unmarshal(out, &resp)
	type cc struct {
		TableName     string
		CapacityUnits float64
	}
	var caps []cc
	if len(resp.ConsumedCapacity) > 0 && resp.ConsumedCapacity[0] == '[' {
		_ = json.Unmarshal(resp.ConsumedCapacity, &caps)
	} else if len(resp.ConsumedCapacity) > 0 {
		var one cc
		_ = json.Unmarshal(resp.ConsumedCapacity, &one)
		caps = []cc{one}
	}
	capOf := map[string]float64{}
	for _, c := range caps {
		capOf[c.TableName] += c.CapacityUnits
	}
	items := map[string]int{}
	switch op {
	case "BatchWriteItem":
		var ri map[string][]any
		_ = json.Unmarshal(in["RequestItems"], &ri)
		for t, reqs := range ri {
			items[t] += len(reqs)
		}
		// Unprocessed items are retried by the caller and counted then.
	case "BatchGetItem":
		for t, got := range resp.Responses {
			items[t] += len(got)
		}
	case "Query", "Scan":
		items[tableOf(in)] = resp.Count
	default:
		items[tableOf(in)] = 1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	tables := slices.Collect(maps.Keys(items))
	for t := range capOf {
		if _, ok := items[t]; !ok {
			tables = append(tables, t)
		}
	}
	for i, t := range tables {
		key := op + " " + t
		c := p.counts[key]
		if c == nil {
			c = &opCount{}
			p.counts[key] = c
		}
		if i == 0 {
			c.requests++
		}
		c.items += items[t]
		c.capacity += capOf[t]
	}
}

func tableOf(in map[string]json.RawMessage) string {
	var t string
	_ = json.Unmarshal(in["TableName"], &t)
	return t
}

// phaseCounts is what one phase of the cost run observed, per operation.
type phaseCounts struct {
	name   string
	per    int // the phase's unit count (connections, publishes)
	unit   string
	counts map[string]opCount
}

// writeUnits and readUnits turn the counts of a phase into on-demand request
// units per unit: dynalite's table capacity, plus one write unit per item
// written to the connections table for its ByConnection GSI (every
// connections item carries connectionId, the index key, and is under 1 KB),
// which dynalite does not count.
func (pc phaseCounts) units(connectionsTable string) (reads, writes float64) {
	for key, c := range pc.counts {
		op, table, _ := strings.Cut(key, " ")
		switch op {
		case "GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems":
			reads += c.capacity
		default:
			writes += c.capacity
			if table == connectionsTable {
				writes += float64(c.items)
			}
		}
	}
	return reads / float64(pc.per), writes / float64(pc.per)
}

func (pc phaseCounts) describe() string {
	var parts []string
	for _, key := range slices.Sorted(maps.Keys(pc.counts)) {
		c := pc.counts[key]
		parts = append(parts, fmt.Sprintf("%s ×%.2g (%.3g items, %.3g CU)", key,
			float64(c.requests)/float64(pc.per), float64(c.items)/float64(pc.per), c.capacity/float64(pc.per)))
	}
	return strings.Join(parts, "; ")
}
