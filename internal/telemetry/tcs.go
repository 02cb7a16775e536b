package telemetry

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/tcs"
)

// TCSMetrics counts TCS requests by endpoint and failure class; class="config" is what the
// auth-failure alert watches.
type TCSMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// Mode is 1 for the TCS mode in force (normal, outage, hold), 0 for the others.
	Mode *prometheus.GaugeVec
	// RateLimit is the cap in force for all workers together, requests per second.
	RateLimit prometheus.Gauge
}

// NewTCSMetrics registers the TCS metrics, every endpoint × class series at 0 from start-up.
func NewTCSMetrics(reg prometheus.Registerer) *TCSMetrics {
	m := &TCSMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writeback_tcs_requests_total",
			Help: "TCS requests by endpoint, failure class (ok, transient, config, permanent) and HTTP status (0: no answer).",
		}, []string{"endpoint", "class", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "writeback_tcs_request_duration_seconds",
			Help:    "TCS request duration by endpoint.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
	}
	m.Mode = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "writeback_tcs_mode", Help: "1 for the TCS mode in force (normal, outage: TCS fails for everyone, hold: an operator's), 0 for the others.",
	}, []string{"mode"})
	m.RateLimit = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "writeback_tcs_rate_limit", Help: "The cap on TCS requests per second for all workers together.",
	})
	reg.MustRegister(m.requests, m.duration, m.Mode, m.RateLimit)
	m.SetMode(contract.TCSModeNormal)
	initial := map[tcs.Class]string{tcs.OK: "200", tcs.Transient: "503", tcs.Config: "401", tcs.Permanent: "404"}
	for _, ep := range tcs.Endpoints {
		m.duration.WithLabelValues(string(ep))
		for _, c := range tcs.Classes {
			m.requests.WithLabelValues(string(ep), string(c), initial[c])
		}
		m.requests.WithLabelValues(string(ep), string(tcs.Transient), "0")
	}
	return m
}

// SetMode shows mode as the one in force.
func (m *TCSMetrics) SetMode(mode contract.TCSMode) {
	for _, x := range contract.TCSModes {
		v := 0.0
		if x == mode {
			v = 1
		}
		m.Mode.WithLabelValues(string(x)).Set(v)
	}
}

// Observe is the tcs.Client's observer.
func (m *TCSMetrics) Observe(o tcs.Observation) {
	m.requests.WithLabelValues(string(o.Endpoint), string(o.Class), strconv.Itoa(o.Status)).Inc()
	m.duration.WithLabelValues(string(o.Endpoint)).Observe(o.Duration.Seconds())
}

// WorkflowCounter names a counter that workflow code increments, per workflow type and kind.
type WorkflowCounter struct {
	Name, WorkflowType, Kind string
}

// InitWorkflowCounters makes the counters that workflow code increments exist at 0 from start-up,
// with the same labels the SDK's workflow metrics handler adds, so an alert on increase() sees the
// first dead letter.
func InitWorkflowCounters(h client.MetricsHandler, namespace, taskQueue string, counters []WorkflowCounter) {
	for _, c := range counters {
		h.WithTags(map[string]string{
			"client_name": "temporal_go", "namespace": namespace, "task_queue": taskQueue,
			"workflow_type": c.WorkflowType, "activity_type": "none", "worker_type": "none", "kind": c.Kind,
		}).Counter(c.Name).Inc(0)
	}
}
