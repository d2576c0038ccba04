package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// scenario is one row of the fan-out table.
type scenario struct {
	name       string
	deliveries int     // per run
	rate       stat    // deliveries per second (deliveries / time until the last client has it)
	last       stat    // ms until the last client has the notification
	p50, p99   stat    // ms, publish-to-receive per client
	invoke     stat    // ms until the synchronous invoke returned
	limit      stat    // the loopback limit for the same POSTs, requests/s
	ideal      float64 // concurrency / post delay, when there is a delay
	frameLen   int
	note       string
}

type runner struct {
	fleet *fleet
	iv    *invoker
	runID int
}

func (r *runner) nextID() int { r.runID++; return r.runID }

// oneRun publishes once to target and measures the want deliveries.
func (r *runner) oneRun(target string, want int) (rate, last, p50, p99, inv float64, frameLen int, err error) {
	id := r.nextID()
	m := r.fleet.begin(id, want)
	body := publishBody(target, id, "")
	t0 := time.Now()
	res, err := r.iv.publish(context.Background(), body)
	invoked := time.Since(t0)
	if err != nil {
		return
	}
	if res.Delivered != want || res.Failed != 0 {
		err = fmt.Errorf("publish %s: %+v, want %d delivered", target, res, want)
		return
	}
	if err = m.wait(60 * time.Second); err != nil {
		return
	}
	lats := m.latencies(t0)
	slices.Sort(lats)
	l := lats[len(lats)-1]
	return float64(want) / l.Seconds(), ms(l), ms(percentile(lats, 50)), ms(percentile(lats, 99)), ms(invoked), int(m.frameLen.Load()), nil
}

// fanOut runs a warm-up publish, then runs measured ones.
func (r *runner) fanOut(name, target string, want, runs int) (scenario, error) {
	sc := scenario{name: name, deliveries: want}
	if _, _, _, _, _, _, err := r.oneRun(target, want); err != nil {
		return sc, fmt.Errorf("%s warm-up: %w", name, err)
	}
	var rates, lasts, p50s, p99s, invs []float64
	for i := range runs {
		rate, last, p50, p99, inv, fl, err := r.oneRun(target, want)
		if err != nil {
			return sc, fmt.Errorf("%s run %d: %w", name, i+1, err)
		}
		rates, lasts, p50s, p99s, invs = append(rates, rate), append(lasts, last), append(p50s, p50), append(p99s, p99), append(invs, inv)
		sc.frameLen = fl
		logf("  %s run %d: %s deliveries/s, last %.1f ms, p50 %.1f ms, p99 %.1f ms, invoke %.1f ms",
			name, i+1, thousands(rate), last, p50, p99, inv)
	}
	sc.rate, sc.last, sc.p50, sc.p99, sc.invoke = summarize(rates), summarize(lasts), summarize(p50s), summarize(p99s), summarize(invs)
	return sc, nil
}

// sequential is scenario 1: n publishes in sequence to one user with one
// connection, each waiting for the previous notification's arrival and the
// invoke's answer. last is the time for the whole sequence.
func (r *runner) sequential(name, target string, n, runs int) (scenario, error) {
	sc := scenario{name: name, deliveries: n}
	one := func() (time.Duration, time.Duration, int, error) {
		id := r.nextID()
		m := r.fleet.begin(id, 1)
		body := publishBody(target, id, "")
		t0 := time.Now()
		res, err := r.iv.publish(context.Background(), body)
		inv := time.Since(t0)
		if err != nil {
			return 0, 0, 0, err
		}
		if res.Delivered != 1 {
			return 0, 0, 0, fmt.Errorf("publish %s: %+v, want 1 delivered", target, res)
		}
		if err := m.wait(10 * time.Second); err != nil {
			return 0, 0, 0, err
		}
		return m.latencies(t0)[0], inv, int(m.frameLen.Load()), nil
	}
	for range 50 { // warm-up
		if _, _, _, err := one(); err != nil {
			return sc, fmt.Errorf("%s warm-up: %w", name, err)
		}
	}
	var rates, lasts, p50s, p99s, invs []float64
	for i := range runs {
		lats := make([]time.Duration, 0, n)
		var invTotal time.Duration
		start := time.Now()
		for range n {
			l, inv, fl, err := one()
			if err != nil {
				return sc, fmt.Errorf("%s run %d: %w", name, i+1, err)
			}
			lats = append(lats, l)
			invTotal += inv
			sc.frameLen = fl
		}
		total := time.Since(start)
		slices.Sort(lats)
		rate, p50, p99 := float64(n)/total.Seconds(), ms(percentile(lats, 50)), ms(percentile(lats, 99))
		rates, lasts, p50s, p99s = append(rates, rate), append(lasts, ms(total)), append(p50s, p50), append(p99s, p99)
		invs = append(invs, ms(invTotal)/float64(n))
		logf("  %s run %d: %s deliveries/s, %d publishes in %.0f ms, p50 %.2f ms, p99 %.2f ms, max %.2f ms",
			name, i+1, thousands(rate), n, ms(total), p50, p99, ms(lats[len(lats)-1]))
	}
	sc.rate, sc.last, sc.p50, sc.p99, sc.invoke = summarize(rates), summarize(lasts), summarize(p50s), summarize(p99s), summarize(invs)
	return sc, nil
}
