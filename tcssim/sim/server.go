package sim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server runs the TCS listener (which an outage closes) and the admin listener (which always answers).
type Server struct {
	Store     *Store
	addr      string
	token     string
	api       http.Handler
	adminSrv  *http.Server
	adminLn   net.Listener
	mu        sync.Mutex
	tcsSrv    *http.Server
	tcsAddr   string
	closed    bool
	serveErrs chan error
}

// Config of a Server.
// DevToken is the bearer token the simulator accepts unless told another: make run, the harness
// and the tests all use it.
const DevToken = "dev-token"

type Config struct {
	Addr       string // TCS listener, e.g. 127.0.0.1:8081 (":0" picks a port)
	AdminAddr  string
	Token      string
	Placements int64
	Seed       uint64 // random seed for fault decisions (0: time-based)
}

// Start listens on both addresses.
func Start(c Config) (*Server, error) {
	seed := c.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	st := NewStore(c.Placements, r.Float64)
	s := &Server{Store: st, token: c.Token, serveErrs: make(chan error, 4)}
	s.api = s.withFaults(st.APIHandler(c.Token))
	st.onOutage = s.outage

	aln, err := net.Listen("tcp", c.AdminAddr)
	if err != nil {
		return nil, err
	}
	s.adminLn = aln
	s.adminSrv = &http.Server{Handler: st.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.adminSrv.Serve(aln) }()

	if err := s.listenTCS(c.Addr); err != nil {
		aln.Close()
		return nil, err
	}
	return s, nil
}

// Addr is the TCS listener's address (host:port).
func (s *Server) Addr() string { s.mu.Lock(); defer s.mu.Unlock(); return s.tcsAddr }

// URL is the TCS base URL.
func (s *Server) URL() string { return "http://" + s.Addr() }

// AdminURL is the admin base URL.
func (s *Server) AdminURL() string { return "http://" + s.adminLn.Addr().String() }

func (s *Server) listenTCS(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tcsSrv != nil || s.closed {
		return nil
	}
	var ln net.Listener
	var err error
	// After an outage the old port may linger briefly; keep trying for a moment.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	s.tcsAddr = ln.Addr().String()
	srv := &http.Server{Handler: s.api, ReadHeaderTimeout: 10 * time.Second}
	s.tcsSrv = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.serveErrs <- err
		}
	}()
	return nil
}

// outage closes the TCS listener and every open TCS connection, or opens it again.
func (s *Server) outage(on bool) {
	if on {
		s.mu.Lock()
		srv := s.tcsSrv
		s.tcsSrv = nil
		s.mu.Unlock()
		if srv != nil {
			_ = srv.Close() // closes the listener and all connections, hijacked ones aside
		}
		return
	}
	_ = s.listenTCS(s.Addr())
}

// withFaults applies the faults in force before authentication.
func (s *Server) withFaults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := s.Store.CurrentFaults()
		ep := endpointName(r.Method, r.URL.Path)
		s.Store.track(ep, 1)
		defer s.Store.track(ep, -1)
		applies := (f.Only == "" || strings.Contains(r.URL.Path, f.Only)) &&
			(f.Agent == "" || strings.Contains(r.UserAgent(), f.Agent))
		if applies && f.LatencyMs > 0 {
			select {
			case <-time.After(time.Duration(f.LatencyMs) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		if applies && f.ErrorRate > 0 && s.Store.random() < f.ErrorRate {
			status := f.ErrorStatus
			if status == 0 {
				status = http.StatusServiceUnavailable
			}
			if f.RetryAfterSeconds > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfterSeconds))
			}
			s.Store.count(ep, status)
			problem(w, status, "injected fault")
			return
		}
		if applies && f.LateCommitRate > 0 && r.Method != http.MethodGet && s.Store.random() < f.LateCommitRate {
			// Hold the write unanswered until the client gives up, then commit it later.
			body, _ := io.ReadAll(r.Body)
			<-r.Context().Done()
			s.Store.count(ep, 0)
			late := r.Clone(context.Background())
			late.Body = io.NopCloser(bytes.NewReader(body))
			go func() {
				time.Sleep(time.Duration(f.LateCommitMs) * time.Millisecond)
				next.ServeHTTP(httptest.NewRecorder(), late)
			}()
			return
		}
		if applies && f.TimeoutRate > 0 && s.Store.random() < f.TimeoutRate {
			// Process the request, then never answer: the write happened, the answer is lost.
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			s.Store.count(ep, 0)
			<-r.Context().Done()
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: 200}
		next.ServeHTTP(sw, r)
		s.Store.count(ep, sw.status)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// Close stops both listeners.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	srv := s.tcsSrv
	s.tcsSrv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.adminSrv.Shutdown(ctx)
	return s.adminSrv.Close()
}
