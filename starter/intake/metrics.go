package intake

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a message, the values of writeback_messages_total's outcome label.
const (
	OutcomeStarted   = "started"   // a workflow was started
	OutcomeDuplicate = "duplicate" // its workflow existed: acked, nothing started
	OutcomePoison    = "poison"    // invalid: moved to the DLQ with its reason
	OutcomeRefused   = "refused"   // Temporal refused the start for the message itself: moved to the DLQ with the server's reason
)

// Metrics of the intake.
type Metrics struct {
	Messages      *prometheus.CounterVec
	StartRetries  *prometheus.CounterVec
	InFlight      prometheus.Gauge
	Held          prometheus.Gauge
	TemporalUp    prometheus.Gauge
	StartDuration prometheus.Histogram
	QueueDepth    *prometheus.GaugeVec
	ConsumerUp    *prometheus.GaugeVec
	// Returned counts delivery-limit dead letters put back in their queue by the starter.
	Returned prometheus.Counter
	// DLQPoison is how many poison messages the DLQ held at the last pass: the DLQ's depth beyond it
	// is valid messages that should not stay there (an alert watches the difference).
	DLQPoison prometheus.Gauge
	// RecordsUpdating counts the records Updating (from visibility): with no workflow task executed
	// meanwhile, no worker takes their tasks (an alert watches the pair).
	RecordsUpdating prometheus.Gauge
}

// NewMetrics registers the intake metrics, every queue × outcome series at 0 from start-up.
func NewMetrics(reg prometheus.Registerer, queues []string, dlq string) *Metrics {
	m := &Metrics{
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writeback_messages_total", Help: "Messages consumed, by queue and outcome (started, duplicate, poison).",
		}, []string{"queue", "outcome"}),
		StartRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writeback_start_retries_total", Help: "Workflow starts retried because Temporal did not accept them (infrastructure, not the message).",
		}, []string{"queue"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "writeback_inflight_starts", Help: "Deliveries being turned into workflows (unacked).",
		}),
		Held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "writeback_held_deliveries", Help: "Deliveries held because Temporal is unreachable; retried with backoff.",
		}),
		TemporalUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "writeback_temporal_up", Help: "1 if the last call to Temporal succeeded.",
		}),
		StartDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "writeback_start_duration_seconds", Help: "Time from delivery to ack of a started or duplicate message.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		QueueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "writeback_queue_messages", Help: "Messages ready in each writeback queue (the DLQ included), polled by the starter.",
		}, []string{"queue"}),
		ConsumerUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "writeback_consumer_up", Help: "1 while the starter has a consumer on the record queue; 0 names a queue nothing consumes.",
		}, []string{"queue"}),
		Returned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "writeback_dlq_returned_total", Help: "Messages the broker dead-lettered for the delivery limit (never judged bad) that the starter put back in their queue.",
		}),
	}
	m.DLQPoison = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "writeback_dlq_poison_messages", Help: "Poison messages (x-writeback-error) the DLQ held at the starter's last pass over it.",
	})
	m.RecordsUpdating = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "writeback_records_updating", Help: "Records in state Updating (running), counted in Temporal's visibility by the starter every 30 s.",
	})
	reg.MustRegister(m.Messages, m.StartRetries, m.InFlight, m.Held, m.TemporalUp, m.StartDuration, m.QueueDepth, m.ConsumerUp, m.Returned,
		m.DLQPoison, m.RecordsUpdating)
	for _, q := range queues {
		for _, o := range []string{OutcomeStarted, OutcomeDuplicate, OutcomePoison, OutcomeRefused} {
			m.Messages.WithLabelValues(q, o)
		}
		m.StartRetries.WithLabelValues(q)
		m.ConsumerUp.WithLabelValues(q)
		m.QueueDepth.WithLabelValues(q)
	}
	m.QueueDepth.WithLabelValues(dlq)
	return m
}
