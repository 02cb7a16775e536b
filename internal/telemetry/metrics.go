// Package telemetry holds one Prometheus registry per process, serving our metrics and the Temporal
// SDK's, plus the /metrics, /healthz and /readyz HTTP endpoints.
package telemetry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"

	"github.com/tis-writeback/writeback/internal/buildinfo"
)

// Registry is a process's metrics registry.
type Registry struct {
	*prometheus.Registry
	provider *sdkmetric.MeterProvider
}

// NewRegistry builds a registry with the Go and process collectors.
func NewRegistry() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	version, revision := buildinfo.Get()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "writeback_build_info",
		Help: "1, labelled with the build that runs (version, revision).", ConstLabels: prometheus.Labels{"version": version, "revision": revision}},
		func() float64 { return 1 }))
	return &Registry{Registry: reg}
}

// TemporalHandler returns the SDK metrics handler exporting into this registry. Counters counted
// from workflow code through it are replay-safe (the SDK suppresses them during replay).
func (r *Registry) TemporalHandler() (client.MetricsHandler, error) {
	exp, err := otelprom.New(otelprom.WithRegisterer(r.Registry), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo(), otelprom.WithoutUnits())
	if err != nil {
		return nil, err
	}
	r.provider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	return temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter:                r.provider.Meter("temporal-sdk-go"),
		UseMonotonicCounters: true,
		OnError:              func(error) {}, // a metric must never crash the worker
	}), nil
}

// Shutdown flushes the SDK meter provider.
func (r *Registry) Shutdown(ctx context.Context) error {
	if r.provider == nil {
		return nil
	}
	return r.provider.Shutdown(ctx)
}

// Health is what /healthz and /readyz report.
type Health struct {
	ready atomic.Bool
	// Check, if set, is called by /readyz (e.g. Temporal reachable).
	Check func(ctx context.Context) error
}

// SetReady marks the process ready (or not).
func (h *Health) SetReady(v bool) { h.ready.Store(v) }

// Server serves /metrics, /healthz and /readyz.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// NewServer listens on addr at once, so a port clash fails start-up rather than later.
func NewServer(addr string, reg *Registry, h *Health) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg.Registry, promhttp.HandlerOpts{Registry: reg.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !h.ready.Load() {
			http.Error(w, "not ready: starting or stopping", http.StatusServiceUnavailable)
			return
		}
		if h.Check != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
			defer cancel()
			if err := h.Check(ctx); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}, nil
}

// Addr is the address it listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve runs until Shutdown; call it in a goroutine.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops serving.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
