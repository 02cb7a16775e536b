package integration_test

import (
	"encoding/json"
	"net/url"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
)

func testutilCounter(c prometheus.Counter) float64 { return testutil.ToFloat64(c) }
func testutilGauge(g prometheus.Gauge) float64     { return testutil.ToFloat64(g) }

func amqpJSON(body []byte) amqp.Publishing {
	return amqp.Publishing{ContentType: "application/json", Body: body}
}

func mustJSON(t interface{ Fatal(...any) }, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
