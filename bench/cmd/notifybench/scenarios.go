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
	cpu        stat    // µs of the stack's CPU time per delivery
	limit      stat    // the loopback limit for the same POSTs, requests/s
	limitKey   string  // which loopback measurement limit is (rows share them)
	ideal      float64 // concurrency / post delay, when there is a delay (unsharded)
	budget     float64 // FanoutPostsPerSecond, for a sharded row
	sequential bool    // scenario 1: last and invoke are for the whole sequence
	frameLen   int
	// Sharded rows: FanoutFunction EMF objects (one per invocation) over
	// publishes publishes (warm-up included), the sum of their
	// Deliveries, FanoutBatchSize and ceil(connections / FanoutBatchSize).
	fanoutInvocations, publishes, batch, batches int
	fanoutDeliveries                             float64
	err                                          error // the row failed: the other fields are empty
}

type runner struct {
	fleet *fleet
	iv    *invoker
	cpu   *cpuMeter // the stack's process; nil: CPU not measured
	runID int
}

func (r *runner) nextID() int { r.runID++; return r.runID }

// runResult is one measured publish.
type runResult struct {
	rate, last, p50, p99, inv float64 // deliveries/s, ms
	frameLen                  int
	cpu                       cpuSample // the stack's CPU time during the run
}

// oneRun publishes once to target and measures the want deliveries, and the
// stack's CPU time from just before the publish until both the invoke has
// returned and the last client has the notification.
func (r *runner) oneRun(target string, want int) (res runResult, err error) {
	id := r.nextID()
	m := r.fleet.begin(id, want)
	body := publishBody(target, id, "")
	cpu0, err := r.cpu.sample()
	if err != nil {
		return
	}
	t0 := time.Now()
	pub, err := r.iv.publish(context.Background(), body)
	invoked := time.Since(t0)
	if err != nil {
		return
	}
	if pub.Delivered != want || pub.Failed != 0 {
		err = fmt.Errorf("publish %s: %+v, want %d delivered", target, pub, want)
		return
	}
	if err = m.wait(60 * time.Second); err != nil {
		return
	}
	cpu1, err := r.cpu.sample()
	if err != nil {
		return
	}
	lats := m.latencies(t0)
	slices.Sort(lats)
	l := lats[len(lats)-1]
	return runResult{
		rate: float64(want) / l.Seconds(), last: ms(l), p50: ms(percentile(lats, 50)), p99: ms(percentile(lats, 99)),
		inv: ms(invoked), frameLen: int(m.frameLen.Load()), cpu: cpu1.sub(cpu0),
	}, nil
}

// usPer is a CPU time in µs per delivery.
func usPer(d time.Duration, deliveries int) float64 {
	return float64(d) / float64(time.Microsecond) / float64(deliveries)
}

// fanOut runs a warm-up publish, then runs measured ones.
func (r *runner) fanOut(name, target string, want, runs int) (scenario, error) {
	sc := scenario{name: name, deliveries: want}
	if _, err := r.oneRun(target, want); err != nil {
		return sc, fmt.Errorf("%s warm-up: %w", name, err)
	}
	var rates, lasts, p50s, p99s, invs, cpus []float64
	for i := range runs {
		res, err := r.oneRun(target, want)
		if err != nil {
			return sc, fmt.Errorf("%s run %d: %w", name, i+1, err)
		}
		cpu := usPer(res.cpu.clock, want)
		rates, lasts, p50s, p99s = append(rates, res.rate), append(lasts, res.last), append(p50s, res.p50), append(p99s, res.p99)
		invs, cpus = append(invs, res.inv), append(cpus, cpu)
		sc.frameLen = res.frameLen
		logf("  %s run %d: %s deliveries/s, last %.1f ms, p50 %.1f ms, p99 %.1f ms, invoke %.1f ms, stack CPU %.1f ms (stat: %d ms) = %.2f µs/delivery",
			name, i+1, thousands(res.rate), res.last, res.p50, res.p99, res.inv, ms(res.cpu.clock), res.cpu.ticks.Milliseconds(), cpu)
	}
	sc.rate, sc.last, sc.p50, sc.p99, sc.invoke = summarize(rates), summarize(lasts), summarize(p50s), summarize(p99s), summarize(invs)
	if r.cpu != nil {
		sc.cpu = summarize(cpus)
	} else {
		sc.cpu = summarize(nil)
	}
	return sc, nil
}

// sequential is scenario 1: n publishes in sequence to one user with one
// connection, each waiting for the previous notification's arrival and the
// invoke's answer. last is the time for the whole sequence.
func (r *runner) sequential(name, target string, n, runs int) (scenario, error) {
	sc := scenario{name: name, deliveries: n, sequential: true}
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
	var rates, lasts, p50s, p99s, invs, cpus []float64
	for i := range runs {
		lats := make([]time.Duration, 0, n)
		var invTotal time.Duration
		cpu0, err := r.cpu.sample()
		if err != nil {
			return sc, err
		}
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
		cpu1, err := r.cpu.sample()
		if err != nil {
			return sc, err
		}
		cpu := cpu1.sub(cpu0)
		cpus = append(cpus, usPer(cpu.clock, n))
		slices.Sort(lats)
		rate, p50, p99 := float64(n)/total.Seconds(), ms(percentile(lats, 50)), ms(percentile(lats, 99))
		rates, lasts, p50s, p99s = append(rates, rate), append(lasts, ms(total)), append(p50s, p50), append(p99s, p99)
		invs = append(invs, ms(invTotal)/float64(n))
		logf("  %s run %d: %s deliveries/s, %d publishes in %.0f ms, p50 %.2f ms, p99 %.2f ms, max %.2f ms, stack CPU %.1f ms (stat: %d ms) = %.2f µs/delivery",
			name, i+1, thousands(rate), n, ms(total), p50, p99, ms(lats[len(lats)-1]), ms(cpu.clock), cpu.ticks.Milliseconds(), usPer(cpu.clock, n))
	}
	sc.rate, sc.last, sc.p50, sc.p99, sc.invoke = summarize(rates), summarize(lasts), summarize(p50s), summarize(p99s), summarize(invs)
	if r.cpu != nil {
		sc.cpu = summarize(cpus)
	} else {
		sc.cpu = summarize(nil)
	}
	return sc, nil
}
