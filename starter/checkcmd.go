package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/logging"
	"github.com/tis-writeback/writeback/internal/temporalclient"
	"github.com/tis-writeback/writeback/starter/ops"
)

// runCheck is `starter check`: whether a record can go end to end here, each dependency in turn
// (the chart's `helm test` runs it). It writes nothing to TCS.
func checkCmd() *cobra.Command {
	return leaf(&cobra.Command{Use: "check", Short: "whether a record can go end to end here: Temporal, RabbitMQ, a worker and TCS, each in turn (helm test)", Args: cobra.NoArgs,
		Long: `Asks each dependency in turn whether a record can go end to end, and says which fails:
  temporal     the namespace exists and has writeback's search attributes
  rabbitmq     the record queues and the DLQ exist, and a starter consumes each record queue
  end to end   a probe workflow on the record task queue is taken by a worker of the build that
               gets the records, which reads TCS through its cap and hold (it writes nothing)
Exit 0 when every check passed, 1 otherwise. The chart's helm test runs it.`},
		func(fs *flag.FlagSet) body {
			tc := temporalclient.Flags(fs)
			bf := addBrokerFlags(fs)
			wait := fs.Duration("wait", 30*time.Second, "how long the probe may wait for a worker")
			asJSON := fs.Bool("json", false, `print JSON: {"ok","checks":[{"name","ok","detail"}]}`)
			return func([]string) int {
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
				defer stop()

				var checks []ops.Check
				dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				c, err := temporalclient.Dial(dctx, tc, logging.New(stderr, slog.LevelError), nil)
				cancel()
				if err != nil {
					checks = append(checks, ops.Check{Name: "temporal", Detail: fmt.Sprintf("cannot reach Temporal at %s: %v", tc.Address, err)})
				} else {
					defer c.Close()
					checks = append(checks, ops.CheckTemporal(ctx, c, tc.Namespace))
				}
				if conn, err := broker.Dial(bf.conn, logging.New(stderr, slog.LevelError), 1, ctx.Done()); err != nil {
					checks = append(checks, ops.Check{Name: "rabbitmq", Detail: "cannot connect: " + err.Error()})
				} else {
					checks = append(checks, ops.CheckRabbitMQ(conn, bf.topology))
					conn.Close()
				}
				if c != nil && checks[0].OK {
					id := "writeback-probe-" + time.Now().UTC().Format("20060102T150405") + "-" + strings.TrimPrefix(newRequestID(), "cli-")
					checks = append(checks, ops.CheckEndToEnd(ctx, c, id, *wait))
				} else {
					checks = append(checks, ops.Check{Name: "end to end", Detail: "not tried: Temporal is not ready"})
				}
				code := 0
				if len(ops.Failed(checks)) > 0 {
					code = 1
				}
				if *asJSON {
					return printJSON(struct {
						OK     bool        `json:"ok"`
						Checks []ops.Check `json:"checks"`
					}{code == 0, checks}, code)
				}
				for _, ck := range checks {
					verdict := "ok  "
					if !ck.OK {
						verdict = "FAIL"
					}
					fmt.Fprintf(stdout, "%s  %-10s  %s\n", verdict, ck.Name, ck.Detail)
				}
				return code
			}
		})
}
