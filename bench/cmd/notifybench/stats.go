package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// stat is the median, minimum, maximum and mean of several runs.
type stat struct{ med, min, max, mean float64 }

func summarize(xs []float64) stat {
	if len(xs) == 0 {
		return stat{math.NaN(), math.NaN(), math.NaN(), math.NaN()}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	var sum float64
	for _, x := range s {
		sum += x
	}
	return stat{med, s[0], s[len(s)-1], sum / float64(len(s))}
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// format prints "median (min–max)" with the given verb.
func (s stat) format(verb string) string {
	if math.IsNaN(s.med) {
		return "—"
	}
	return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", s.med, s.min, s.max)
}

// rate prints a rate with thousands separators.
func (s stat) rate() string {
	if math.IsNaN(s.med) {
		return "—"
	}
	return fmt.Sprintf("%s (%s–%s)", thousands(s.med), thousands(s.min), thousands(s.max))
}

func thousands(v float64) string {
	n := int64(math.Round(v))
	s := fmt.Sprint(n)
	out := []byte{}
	for i, ch := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, ch)
	}
	return string(out)
}
