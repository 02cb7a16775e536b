// Package sim is an in-memory stand-in for TCS (docs/contract.md, The TCS API writeback uses):
// the real API semantics, duplicates included, plus fault injection on an admin listener. Never
// used in production.
package sim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/tis-writeback/writeback/internal/demo"
)

// Faults is what POST /admin/faults sets; the zero value is "no faults".
type Faults struct {
	Outage            bool    `json:"outage"`
	ErrorRate         float64 `json:"errorRate"`
	ErrorStatus       int     `json:"errorStatus,omitempty"`
	LatencyMs         int     `json:"latencyMs"`
	TimeoutRate       float64 `json:"timeoutRate"`
	RetryAfterSeconds int     `json:"retryAfterSeconds"`
	Only              string  `json:"only,omitempty"`
	// Agent: the faults apply only to requests whose User-Agent contains it (one build of the workers).
	Agent string `json:"agent,omitempty"`
	// LateCommitRate of the write requests are held unanswered until the client gives up, and
	// committed LateCommitMs after that: the write lands after the client's next read.
	LateCommitRate float64 `json:"lateCommitRate,omitempty"`
	LateCommitMs   int     `json:"lateCommitMs,omitempty"`
}

// Event is one PlacementEsrEvent row.
type Event struct {
	ID             int64  `json:"id"`
	PlacementID    int64  `json:"placementId"`
	EventDateTime  string `json:"eventDateTime"`
	Filename       string `json:"filename"`
	PositionNumber int64  `json:"positionNumber,omitempty"`
	PositionID     int64  `json:"positionId,omitempty"`
	Status         string `json:"status"`
	Reason         string `json:"reason,omitempty"`
}

// Scan is one scan record.
type Scan struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Result      string `json:"result,omitempty"`
	FileName    string `json:"fileName,omitempty"`
	CompletedAt string `json:"completedAt,omitempty"`
	Reason      string `json:"reason,omitempty"`
	FailedAt    string `json:"failedAt,omitempty"`
	Writes      int    `json:"writes"`
}

// Store holds TCS's records.
type Store struct {
	mu         sync.Mutex
	seeded     int64          // placements 1..seeded exist
	extra      map[int64]bool // placements added by the admin API
	extraScans map[string]bool
	allKnown   bool // every placement and scan is known (after POST /admin/known {"all":true})
	events     map[int64][]Event
	idempotent map[string]Event // Idempotency-Key → the event its first request inserted
	timeline   map[int64]int    // Unix second → API requests that arrived in it
	nextID     int64
	scans      map[string]*Scan
	requests   map[string]map[string]int // endpoint → status → count
	inFlight   map[string]int
	faults     Faults
	rnd        func() float64
	now        func() time.Time
	onOutage   func(bool)
	randMu     sync.Mutex
}

// NewStore seeds placements 1..placements.
func NewStore(placements int64, rnd func() float64) *Store {
	return &Store{
		seeded: placements, extra: map[int64]bool{}, extraScans: map[string]bool{}, events: map[int64][]Event{}, scans: map[string]*Scan{},
		idempotent: map[string]Event{}, timeline: map[int64]int{},
		requests: map[string]map[string]int{}, inFlight: map[string]int{}, rnd: rnd, now: func() time.Time { return time.Now().UTC() },
	}
}

// PlacementKnown: the seeded placements 1..N, those added by the admin API, or any after {"all":true}.
func (s *Store) PlacementKnown(id int64) bool {
	return (id >= 1 && id <= s.seeded) || s.extra[id] || (s.allKnown && id >= 1)
}

// ScanKnown: a UUID the demo package calls known (first hex digit not f), or one made known.
func (s *Store) ScanKnown(id string) bool {
	if _, err := uuid.Parse(id); err != nil {
		return false
	}
	return demo.ScanKnown(id) || s.allKnown || s.extraScans[strings.ToLower(id)]
}

// MakeKnown adds placements and scans to what TCS knows; all makes every record known.
func (s *Store) MakeKnown(placements []int64, scans []string, all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range placements {
		s.extra[id] = true
	}
	for _, id := range scans {
		s.extraScans[strings.ToLower(id)] = true
	}
	s.allKnown = s.allKnown || all
}

func (s *Store) count(endpoint string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.requests[endpoint]
	if m == nil {
		m = map[string]int{}
		s.requests[endpoint] = m
	}
	m[strconv.Itoa(status)]++
}

func (s *Store) track(endpoint string, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight[endpoint] += delta
	if delta > 0 {
		s.timeline[s.now().Unix()]++
	}
}

// Timeline is the number of API requests that arrived in each second (Unix time → count).
func (s *Store) Timeline() map[int64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[int64]int, len(s.timeline))
	for k, v := range s.timeline {
		out[k] = v
	}
	return out
}

// MaxRate is the highest average of requests per second over any window of w seconds.
func MaxRate(timeline map[int64]int, w int) float64 {
	if len(timeline) == 0 {
		return 0
	}
	var first, last int64 = 1 << 62, 0
	for k := range timeline {
		first, last = min(first, k), max(last, k)
	}
	best := 0
	for start := first; start <= last; start++ {
		n := 0
		for k := start; k < start+int64(w); k++ {
			n += timeline[k]
		}
		best = max(best, n)
	}
	return float64(best) / float64(w)
}

// InFlight returns how many requests to an endpoint (e.g. "POST esr-exported") are being served.
func (s *Store) InFlight(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight[endpoint]
}

// CurrentFaults returns the faults in force.
func (s *Store) CurrentFaults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// SetFaults replaces the faults in force.
func (s *Store) SetFaults(f Faults) {
	s.mu.Lock()
	was := s.faults.Outage
	s.faults = f
	hook := s.onOutage
	s.mu.Unlock()
	if hook != nil && was != f.Outage {
		hook(f.Outage)
	}
}

func (s *Store) random() float64 {
	s.randMu.Lock()
	defer s.randMu.Unlock()
	return s.rnd()
}

// ExportedCount returns how many EXPORTED events a placement holds for a filename.
func (s *Store) ExportedCount(placementID int64, filename string) int {
	return s.countEvents(placementID, filename, "EXPORTED")
}

// FailedCount returns how many FAILED events a placement holds for a filename.
func (s *Store) FailedCount(placementID int64, filename string) int {
	return s.countEvents(placementID, filename, "FAILED")
}

func (s *Store) countEvents(placementID int64, filename, status string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events[placementID] {
		if e.Filename == filename && e.Status == status {
			n++
		}
	}
	return n
}

// Events returns a copy of a placement's events.
func (s *Store) Events(placementID int64) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events[placementID]...)
}

// DeleteEvents removes a placement's events, as a restore, a data fix or a bad migration does
// (drift: TCS no longer holds what was written), and says how many went.
func (s *Store) DeleteEvents(placementID int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.events[placementID])
	delete(s.events, placementID)
	// The rows' Idempotency-Keys go with them (a restore loses both): a write of the record again
	// makes a row again.
	for key, ev := range s.idempotent {
		if ev.PlacementID == placementID {
			delete(s.idempotent, key)
		}
	}
	return n
}

// ScanRecord returns a copy of a scan (PENDING if known and never written).
func (s *Store) ScanRecord(id string) (Scan, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id = strings.ToLower(id)
	if sc, ok := s.scans[id]; ok {
		return *sc, true
	}
	if s.ScanKnown(id) {
		return Scan{ID: id, Status: "PENDING"}, true
	}
	return Scan{}, false
}

// Stats is what GET /admin/stats returns.
type Stats struct {
	Requests map[string]map[string]int `json:"requests"`
	// Duplicates counts (placement, filename) pairs holding more than one EXPORTED event.
	Duplicates int `json:"duplicates"`
	Exported   int `json:"exported"`
	Failed     int `json:"failed"`
	ScansDone  int `json:"scansCompleted"`
	ScansError int `json:"scansErrored"`
}

// Stats counts requests and records.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Requests: map[string]map[string]int{}}
	for ep, m := range s.requests {
		c := map[string]int{}
		for k, v := range m {
			c[k] = v
		}
		st.Requests[ep] = c
	}
	for _, evs := range s.events {
		perFile := map[string]int{}
		for _, e := range evs {
			switch e.Status {
			case "EXPORTED":
				st.Exported++
				perFile[e.Filename]++
			case "FAILED":
				st.Failed++
			}
		}
		for _, n := range perFile {
			if n > 1 {
				st.Duplicates++
			}
		}
	}
	for _, sc := range s.scans {
		switch sc.Status {
		case "COMPLETED":
			st.ScansDone++
		case "ERRORED":
			st.ScansError++
		}
	}
	return st
}

// Export is every record TCS holds, for reconciling a run from the outside.
type Export struct {
	Events map[int64][]Event `json:"events"`
	Scans  map[string]Scan   `json:"scans"`
}

// Export copies every event and scan.
func (s *Store) Export() Export {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Export{Events: map[int64][]Event{}, Scans: map[string]Scan{}}
	for id, evs := range s.events {
		out.Events[id] = append([]Event(nil), evs...)
	}
	for id, sc := range s.scans {
		out.Scans[id] = *sc
	}
	return out
}

// --- TCS API ---

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func problem(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"status": status, "error": http.StatusText(status), "message": msg})
}

// APIHandler serves the TCS API with token auth; faults are applied by the Server around it.
func (s *Store) APIHandler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/placements/{id}", s.getPlacement)
	mux.HandleFunc("POST /api/placements/{id}/esr-exported", s.postExported)
	mux.HandleFunc("POST /api/placements/{id}/esr-export-failed", s.postExportFailed)
	mux.HandleFunc("PUT /api/scans/{id}", s.putScan)
	mux.HandleFunc("GET /api/scans/{id}", s.getScan)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			problem(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		problem(w, http.StatusBadRequest, "placement id must be a positive integer")
		return 0, false
	}
	return id, true
}

func (s *Store) getPlacement(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	known := s.PlacementKnown(id)
	evs := append([]Event{}, s.events[id]...)
	s.mu.Unlock()
	if !known {
		problem(w, http.StatusNotFound, fmt.Sprintf("placement %d not found", id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "esrEvents": evs})
}

func (s *Store) postExported(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var body struct {
		PlacementID    *int64  `json:"placementId"`
		PositionNumber *int64  `json:"positionNumber"`
		PositionID     *int64  `json:"positionId"`
		Filename       *string `json:"filename"`
		ExportedAt     *string `json:"exportedAt"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		problem(w, http.StatusBadRequest, "body is not valid JSON: "+err.Error())
		return
	}
	if body.PositionNumber == nil || body.PositionID == nil || body.Filename == nil || *body.Filename == "" || body.ExportedAt == nil {
		problem(w, http.StatusBadRequest, "positionNumber, positionId, filename and exportedAt are required")
		return
	}
	if body.PlacementID != nil && *body.PlacementID != id {
		problem(w, http.StatusBadRequest, "placementId in body does not match the path")
		return
	}
	if _, err := time.Parse(time.RFC3339Nano, *body.ExportedAt); err != nil {
		problem(w, http.StatusBadRequest, "exportedAt is not an RFC 3339 time")
		return
	}
	s.mu.Lock()
	if !s.PlacementKnown(id) {
		s.mu.Unlock()
		problem(w, http.StatusNotFound, fmt.Sprintf("placement %d not found", id))
		return
	}
	// The Idempotency-Key extension (docs/contract.md, The TCS API writeback uses): a key seen
	// before inserts nothing and answers with the first request's event. It is checked when the
	// write commits, so a late commit and a later request with the same key make one row.
	key := r.Header.Get("Idempotency-Key")
	if ev, seen := s.idempotent[key]; key != "" && seen {
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, ev)
		return
	}
	// Real TCS semantics otherwise: a new row on every call, no deduplication.
	s.nextID++
	ev := Event{ID: s.nextID, PlacementID: id, EventDateTime: s.now().Format(time.RFC3339Nano), Filename: *body.Filename,
		PositionNumber: *body.PositionNumber, PositionID: *body.PositionID, Status: "EXPORTED"}
	s.events[id] = append(s.events[id], ev)
	if key != "" {
		s.idempotent[key] = ev
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, ev)
}

func (s *Store) postExportFailed(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var body struct {
		Filename string `json:"filename"`
		Reason   string `json:"reason"`
		FailedAt string `json:"failedAt"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Filename == "" {
		problem(w, http.StatusBadRequest, "body must be JSON with filename, reason, failedAt")
		return
	}
	s.mu.Lock()
	if !s.PlacementKnown(id) {
		s.mu.Unlock()
		problem(w, http.StatusNotFound, fmt.Sprintf("placement %d not found", id))
		return
	}
	s.nextID++
	ev := Event{ID: s.nextID, PlacementID: id, EventDateTime: s.now().Format(time.RFC3339Nano), Filename: body.Filename,
		Status: "FAILED", Reason: body.Reason}
	s.events[id] = append(s.events[id], ev)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, ev)
}

func (s *Store) putScan(w http.ResponseWriter, r *http.Request) {
	id := strings.ToLower(r.PathValue("id"))
	var body struct {
		Status      string `json:"status"`
		Result      string `json:"result"`
		FileName    string `json:"fileName"`
		CompletedAt string `json:"completedAt"`
		Reason      string `json:"reason"`
		FailedAt    string `json:"failedAt"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		problem(w, http.StatusBadRequest, "body is not valid JSON")
		return
	}
	switch body.Status {
	case "COMPLETED":
		if body.Result != "CLEAN" && body.Result != "SANITISED" && body.Result != "BLOCKED" {
			problem(w, http.StatusBadRequest, "result must be CLEAN, SANITISED or BLOCKED")
			return
		}
	case "ERRORED":
	default:
		problem(w, http.StatusBadRequest, "status must be COMPLETED or ERRORED")
		return
	}
	s.mu.Lock()
	if !s.ScanKnown(id) {
		s.mu.Unlock()
		problem(w, http.StatusNotFound, "scan "+id+" not found")
		return
	}
	sc := s.scans[id]
	if sc == nil {
		sc = &Scan{ID: id}
		s.scans[id] = sc
	}
	writes := sc.Writes + 1
	*sc = Scan{ID: id, Status: body.Status, Result: body.Result, FileName: body.FileName, CompletedAt: body.CompletedAt,
		Reason: body.Reason, FailedAt: body.FailedAt, Writes: writes}
	out := *sc
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Store) getScan(w http.ResponseWriter, r *http.Request) {
	sc, ok := s.ScanRecord(r.PathValue("id"))
	if !ok {
		problem(w, http.StatusNotFound, "scan not found")
		return
	}
	writeJSON(w, http.StatusOK, sc)
}

// endpointName groups request paths for the stats.
func endpointName(method, path string) string {
	switch {
	case strings.HasSuffix(path, "/esr-exported"):
		return method + " esr-exported"
	case strings.HasSuffix(path, "/esr-export-failed"):
		return method + " esr-export-failed"
	case strings.HasPrefix(path, "/api/placements/"):
		return method + " placement"
	case strings.HasPrefix(path, "/api/scans/"):
		return method + " scan"
	}
	return method + " other"
}

// --- admin API ---

// AdminHandler serves /admin/*, without auth.
func (s *Store) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/faults", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.CurrentFaults()) })
	mux.HandleFunc("POST /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			problem(w, http.StatusBadRequest, "faults must be a JSON object: "+err.Error())
			return
		}
		if f.ErrorRate < 0 || f.ErrorRate > 1 || f.TimeoutRate < 0 || f.TimeoutRate > 1 || f.LatencyMs < 0 ||
			f.LateCommitRate < 0 || f.LateCommitRate > 1 || f.LateCommitMs < 0 {
			problem(w, http.StatusBadRequest, "errorRate, timeoutRate and lateCommitRate must be 0..1, latencyMs and lateCommitMs ≥ 0")
			return
		}
		s.SetFaults(f)
		writeJSON(w, 200, f)
	})
	mux.HandleFunc("GET /admin/export", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Export()) })
	mux.HandleFunc("GET /admin/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Stats()) })
	mux.HandleFunc("GET /admin/timeline", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Timeline()) })
	mux.HandleFunc("GET /admin/events", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.URL.Query().Get("placementId"), 10, 64)
		if err != nil {
			problem(w, http.StatusBadRequest, "placementId must be an integer")
			return
		}
		evs := s.Events(id)
		sort.Slice(evs, func(i, j int) bool { return evs[i].ID < evs[j].ID })
		if evs == nil {
			evs = []Event{}
		}
		writeJSON(w, 200, evs)
	})
	mux.HandleFunc("DELETE /admin/events", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseInt(r.URL.Query().Get("placementId"), 10, 64)
		if err != nil {
			problem(w, http.StatusBadRequest, "placementId must be an integer")
			return
		}
		writeJSON(w, 200, map[string]int{"deleted": s.DeleteEvents(id)})
	})
	mux.HandleFunc("GET /admin/scans/{id}", func(w http.ResponseWriter, r *http.Request) {
		sc, ok := s.ScanRecord(r.PathValue("id"))
		if !ok {
			problem(w, http.StatusNotFound, "scan not found")
			return
		}
		writeJSON(w, 200, sc)
	})
	mux.HandleFunc("POST /admin/known", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Placements []int64  `json:"placements"`
			Scans      []string `json:"scans"`
			All        bool     `json:"all"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			problem(w, http.StatusBadRequest, `body must be {"placements":[...],"scans":[...],"all":bool}`)
			return
		}
		s.MakeKnown(body.Placements, body.Scans, body.All)
		writeJSON(w, 200, body)
	})
	return mux
}
