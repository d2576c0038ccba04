package main

import (
	"fmt"
	"io"
	"time"
)

// AWS list prices used by the cost model: us-east-1, as published on the
// AWS pricing pages for Lambda, API Gateway and DynamoDB (DynamoDB's
// on-demand prices since their 2024-11-01 reduction); as of 2026-11-25.
const (
	priceDate            = "us-east-1 list prices, as of 2026-11-25 (DynamoDB on-demand since its 2024-11-01 reduction)"
	lambdaGBSecondArm    = 0.0000133334 // $ per GB-second, arm64
	lambdaPerRequest     = 0.20 / 1e6   // $ per request
	apigwPerMessage      = 1.00 / 1e6   // $ per WebSocket message (first 1 billion a month; 32 KB increments)
	apigwPerConnMinute   = 0.25 / 1e6   // $ per connection minute
	dynamoPerWriteUnit   = 0.625 / 1e6  // $ per on-demand write request unit
	dynamoPerReadUnit    = 0.125 / 1e6  // $ per on-demand read request unit
	publishMemoryGB      = 512.0 / 1024 // template.yaml: PublishFunction MemorySize 512
	routeMemoryGB        = 256.0 / 1024 // template.yaml: Globals MemorySize 256
	assumedStoreSeconds  = 0.010        // a publish's DynamoDB writes and first query on AWS (assumed)
	assumedRouteSeconds  = 0.010        // a $connect / $disconnect invocation on AWS (assumed)
	assumedPostRoundTrip = 0.020        // one Management API round trip (the --post-delay model)
	costConnections      = 100
)

// countRequests runs a stack on dynalite through the counting proxy and
// counts DynamoDB requests and capacity per connect, per publish (to one
// user, a group, everyone, with an idempotency key) and per disconnect.
func countRequests(c config, root, notifyBin, dynamo, connTable, notifTable string) ([]phaseCounts, error) {
	proxy, err := startCountingProxy(dynamo)
	if err != nil {
		return nil, err
	}
	defer proxy.close()
	st, err := startStack(root, notifyBin,
		[]string{"--dynamodb-endpoint", proxy.url, "--param", fmt.Sprintf("PublishConcurrency=%d", c.concurrency)},
		[]string{"CONNECTIONS_TABLE=" + connTable, "NOTIFICATIONS_TABLE=" + notifTable})
	if err != nil {
		return nil, err
	}
	defer st.stop(30 * time.Second)
	proxy.snapshot() // table creation
	f := newFleet(st.url)
	defer f.close()
	r := &runner{fleet: f, iv: newInvoker(st.http)}
	var phases []phaseCounts
	add := func(name string, per int, unit string) {
		phases = append(phases, phaseCounts{name: name, per: per, unit: unit, counts: proxy.snapshot()})
	}

	const k = costConnections
	if _, err := f.connect(k, 8, func(i int) string { return fmt.Sprintf("c%d", i) }, []string{"bench:team"}); err != nil {
		return nil, fmt.Errorf("%w; stack: %s", err, st.stderr.String())
	}
	add("connect (user + 1 group)", k, "connection")

	publish := func(target string, want, n int) error {
		for range n {
			if _, err := r.oneRun(target, want); err != nil {
				return fmt.Errorf("%w; stack: %s", err, st.stderr.String())
			}
		}
		return nil
	}
	if err := publish(`"users":["c0"],`, 1, 10); err != nil {
		return nil, err
	}
	add("publish to 1 user (1 connection)", 10, "publish")
	if err := publish(`"groups":["bench:team"],`, k, 5); err != nil {
		return nil, err
	}
	add(fmt.Sprintf("publish to a group (%d connections)", k), 5, "publish")
	if err := publish(`"broadcast":true,`, k, 5); err != nil {
		return nil, err
	}
	add(fmt.Sprintf("broadcast (%d connections)", k), 5, "publish")
	for i := range 5 {
		if err := publish(fmt.Sprintf(`"users":["c0"],"idempotencyKey":"bench-cost-%d-%d",`, time.Now().UnixNano(), i), 1, 1); err != nil {
			return nil, err
		}
	}
	add("publish to 1 user with idempotencyKey", 5, "publish")

	f.close()
	time.Sleep(3 * time.Second) // $disconnect runs after each socket closed
	add("disconnect", k, "connection")
	for _, p := range phases {
		logf("  %s: %s", p.name, p.describe())
	}
	return phases, nil
}

// costModel prints the cost per million notifications delivered for three
// shapes of publish, from the observed request counts.
func costModel(w io.Writer, phases []phaseCounts, connTable string) {
	byName := map[string]phaseCounts{}
	for _, p := range phases {
		byName[p.name] = p
	}
	k := float64(costConnections)
	userR, userW := byName["publish to 1 user (1 connection)"].units(connTable)
	groupR, groupW := byName[fmt.Sprintf("publish to a group (%d connections)", costConnections)].units(connTable)
	bcastR, bcastW := byName[fmt.Sprintf("broadcast (%d connections)", costConnections)].units(connTable)
	connR, connW := byName["connect (user + 1 group)"].units(connTable)
	discR, discW := byName["disconnect"].units(connTable)

	rate := lastFanOut.s4Rate
	rateNote := "scenario 4's measured rate"
	if rate <= 0 {
		rate = 0.9 * 64 / assumedPostRoundTrip
		rateNote = "90% of the ideal 3,200/s"
	}
	duration := func(n float64) float64 {
		return assumedStoreSeconds + max(assumedPostRoundTrip, n/rate)
	}
	type shape struct {
		name         string
		n            float64
		reads, write float64
	}
	shapes := []shape{
		{"to one user (1 connection each)", 1, userR, userW},
		{"to a group of 1,000", 1000, userR + (groupR-userR)*(1000-1)/(k-1), groupW},
		{"broadcast to 10,000", 10000, bcastR * 10000 / k, bcastW},
	}
	fmt.Fprintf(w, "\n## Cost per million notifications delivered on AWS (%s)\n\n", priceDate)
	fmt.Fprintf(w, "Lambda: arm64 $%.10f/GB-s, $0.20/M requests; API Gateway WebSocket: $1.00/M messages, $0.25/M connection minutes; "+
		"DynamoDB on-demand: $0.625/M write units, $0.125/M read units. PublishFunction 512 MB; its billed duration is "+
		"%.0f ms (store, assumed) + max(%.0f ms, deliveries ÷ %s/s, %s).\n\n",
		lambdaGBSecondArm, assumedStoreSeconds*1000, assumedPostRoundTrip*1000, thousands(rate), rateNote)
	fmt.Fprintln(w, "| publish shape | publishes per 1M deliveries | Lambda (requests + GB-s) | API Gateway messages | DynamoDB reads | DynamoDB writes | total per 1M deliveries |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, s := range shapes {
		p := 1e6 / s.n
		lambda := p*lambdaPerRequest + p*publishMemoryGB*duration(s.n)*lambdaGBSecondArm
		msgs := 1e6 * apigwPerMessage
		reads := p * s.reads * dynamoPerReadUnit
		writes := p * s.write * dynamoPerWriteUnit
		fmt.Fprintf(w, "| %s | %s | $%.4f | $%.2f | $%.4f (%.3g RRU/publish) | $%.4f (%.3g WRU/publish) | **$%.2f** |\n",
			s.name, thousands(p), lambda, msgs, reads, s.reads, writes, s.write, lambda+msgs+reads+writes)
	}
	perConn := 2*lambdaPerRequest + 2*routeMemoryGB*assumedRouteSeconds*lambdaGBSecondArm +
		(connR+discR)*dynamoPerReadUnit + (connW+discW)*dynamoPerWriteUnit
	fmt.Fprintf(w, "\nConnections (not per delivery): each connect + disconnect costs $%.3g per million "+
		"(2 Lambda requests at 256 MB × %.0f ms assumed, %.3g write units and %.3g read units observed), "+
		"plus $0.25 per million connection minutes: a million connections held one hour cost $%.2f.\n",
		perConn*1e6, assumedRouteSeconds*1000, connW+discW, connR+discR, perConn*1e6+60*1e6*apigwPerConnMinute)
}
