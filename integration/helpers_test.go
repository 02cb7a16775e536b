package integration_test

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
)

func testutilCounter(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }
func testutilGauge(g prometheus.Gauge) float64     { return testutil.ToFloat64(g) }

func amqpJSON(body []byte) amqp.Publishing {
	return amqp.Publishing{ContentType: "application/json", Body: body}
}
