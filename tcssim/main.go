// Command tcssim is a stand-in for TCS for local runs, demos and tests (the API of
// docs/contract.md, The TCS API writeback uses).
// It is never used in production.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/tis-writeback/writeback/internal/buildinfo"
	"github.com/tis-writeback/writeback/internal/demo"
	"github.com/tis-writeback/writeback/tcssim/sim"
)

func main() {
	buildinfo.HandleVersionFlag("writeback-tcssim")
	fs := flag.NewFlagSet("tcssim", flag.ExitOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./tcssim [flags]\n\nAn in-memory TCS simulator with fault injection on an admin listener.\n\n")
		fs.PrintDefaults()
	}
	addr := fs.String("addr", env("TCSSIM_ADDR", "127.0.0.1:8081"), "TCS API listen address (env TCSSIM_ADDR)")
	admin := fs.String("admin-addr", env("TCSSIM_ADMIN_ADDR", "127.0.0.1:8082"), "admin listen address, no auth (env TCSSIM_ADMIN_ADDR)")
	token := fs.String("token", env("TCSSIM_TOKEN", sim.DevToken), "bearer token TCS accepts (env TCSSIM_TOKEN)")
	placements := fs.Int64("placements", envInt("TCSSIM_PLACEMENTS", demo.SeededPlacements), "seed placements 1..N (env TCSSIM_PLACEMENTS)")
	_ = fs.Parse(os.Args[1:])

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	srv, err := sim.Start(sim.Config{Addr: *addr, AdminAddr: *admin, Token: *token, Placements: *placements})
	if err != nil {
		log.Error("tcssim cannot start", "err", err)
		os.Exit(1)
	}
	log.Info("tcssim listening", "tcs", srv.URL(), "admin", srv.AdminURL(), "placements", *placements)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	_ = srv.Close()
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func envInt(k string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(k), 10, 64); err == nil {
		return v
	}
	return def
}
