package ops

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cleavefs/cleave/wire"
)

// RequestMetrics counts and times the wire requests a server handles:
// cleave_<subsystem>_requests_total{op,code} and
// cleave_<subsystem>_request_duration_seconds{op}. Both label sets are
// bounded (wire ops and codes). Observe is safe for concurrent use.
type RequestMetrics struct {
	total *prometheus.CounterVec
	dur   *prometheus.HistogramVec
}

// NewRequestMetrics registers the request metrics of subsystem ("node",
// "router") in reg.
func NewRequestMetrics(reg prometheus.Registerer, subsystem string) *RequestMetrics {
	m := &RequestMetrics{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "cleave", Subsystem: subsystem, Name: "requests_total",
			Help: "Wire requests handled, by op and response code.",
		}, []string{"op", "code"}),
		dur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "cleave", Subsystem: subsystem, Name: "request_duration_seconds",
			Help:    "Time from a request's arrival to its response being queued, by op.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 16), // 50 µs .. 1.6 s
		}, []string{"op"}),
	}
	reg.MustRegister(m.total, m.dur)
	return m
}

// Observe records one handled request.
func (m *RequestMetrics) Observe(op wire.Op, code wire.Code, d time.Duration) {
	o := op.String()
	m.total.WithLabelValues(o, code.String()).Inc()
	m.dur.WithLabelValues(o).Observe(d.Seconds())
}
