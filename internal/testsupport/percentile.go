package testsupport

import (
	"slices"
	"testing"
	"time"
)

// Percentile returns the p-th percentile (0 < p ≤ 100) of ds, sorted in
// place: the measurements' figures.
func Percentile(ds []time.Duration, p float64) time.Duration {
	slices.Sort(ds)
	i := int(float64(len(ds))*p/100+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// ReportDelays reports, in µs, the p50 and p99 of a benchmark's delays
// measured from a commit's acknowledgement (fromCommit) and from the
// statement sent (fromStart): the listeners' commit-to-bump benchmarks.
func ReportDelays(b *testing.B, fromCommit, fromStart []time.Duration) {
	b.ReportMetric(float64(Percentile(fromCommit, 50))/1e3, "p50-µs")
	b.ReportMetric(float64(Percentile(fromCommit, 99))/1e3, "p99-µs")
	b.ReportMetric(float64(Percentile(fromStart, 50))/1e3, "sent-p50-µs")
	b.ReportMetric(float64(Percentile(fromStart, 99))/1e3, "sent-p99-µs")
}
