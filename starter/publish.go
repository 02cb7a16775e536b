package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/spf13/cobra"

	"github.com/tis-writeback/writeback/contract"
	"github.com/tis-writeback/writeback/internal/broker"
	"github.com/tis-writeback/writeback/internal/demo"
	"github.com/tis-writeback/writeback/internal/progress"
	"github.com/tis-writeback/writeback/starter/intake"
)

func publishCmd() *cobra.Command {
	return leaf(&cobra.Command{Use: "publish", Short: "publish messages (a file of JSON lines, or a demo batch) with publisher confirms", Args: cobra.NoArgs,
		Long: `Publishes messages to the writeback exchange with publisher confirms (persistent, mandatory).
  --file F     JSON lines, one message each ("-" for standard input); the kind comes from --kind,
               or from each line's fields (placementId or scanId).
  --demo N     N realistic synthetic placements and scans; about 3% are unknown to TCS, so a demo
               shows dead letters too.
Messages are published as given: an invalid one ends in the DLQ with its reason, as it would from
any producer.`},
		func(fs *flag.FlagSet) body {
			bf := addBrokerFlags(fs)
			file := fs.String("file", "", "JSON-lines file to publish (- for stdin)")
			demoN := fs.Int("demo", 0, "publish N synthetic records")
			kind := fs.String("kind", "", "placement or scan (for --file: the kind of every line; for --demo: only this kind)")
			seed := fs.Uint64("seed", 0, "random seed of --demo (0: time-based)")
			return func([]string) int {
				if (*file == "") == (*demoN == 0) {
					fmt.Fprintln(stderr, "give exactly one of --file F or --demo N")
					return 2
				}
				if *kind != "" && *kind != string(contract.KindPlacement) && *kind != string(contract.KindScan) {
					fmt.Fprintf(stderr, "--kind must be placement or scan, not %q\n", *kind)
					return 2
				}
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
				defer stop()

				var batch []outgoing
				var err error
				if *demoN > 0 {
					for _, r := range demo.Batch(*demoN, contract.Kind(*kind), *seed) {
						batch = append(batch, outgoing{kind: r.Kind, body: r.Body})
					}
				} else {
					batch, err = readLines(*file, contract.Kind(*kind))
					if err != nil {
						fmt.Fprintln(stderr, err)
						return 1
					}
				}

				conn, pub, ok := openBroker(ctx, bf, true)
				if !ok {
					return 1
				}
				defer conn.Close()
				defer pub.Close()
				return publishAll(ctx, pub, bf.topology.Exchange, batch)
			}
		})
}

type outgoing struct {
	kind contract.Kind
	body []byte
}

// publishAll publishes in windows of confirms, so a large batch is quick but bounded in memory.
func publishAll(ctx context.Context, pub *broker.Publisher, exchange string, batch []outgoing) int {
	bar := progress.Start("publishing", len(batch))
	const window = 256
	failed, poison := 0, 0
	var pending []*broker.Pending
	flush := func() {
		for _, p := range pending {
			if err := p.Wait(ctx); err != nil {
				failed++
				fmt.Fprintln(stderr, "not confirmed:", err)
			}
			bar.Add(1)
		}
		pending = pending[:0]
	}
	for _, o := range batch {
		if _, err := intake.Decode(o.kind, o.body); err != nil {
			poison++
		}
		p, err := pub.PublishAsync(ctx, exchange, o.kind.RoutingKey(), amqp.Publishing{
			ContentType: "application/json", Body: o.body, Timestamp: time.Now(), AppId: "writeback-starter"})
		if err != nil {
			flush()
			bar.Done()
			fmt.Fprintln(stderr, "publish:", err)
			return 1
		}
		pending = append(pending, p)
		if len(pending) == window {
			flush()
		}
	}
	flush()
	bar.Done()
	fmt.Fprintf(stdout, "published %d, confirmed %d, failed %d", len(batch), len(batch)-failed, failed)
	if poison > 0 {
		fmt.Fprintf(stdout, " (%d invalid: they will end in the DLQ)", poison)
	}
	fmt.Fprintln(stdout)
	if failed > 0 {
		return 1
	}
	return 0
}

func readLines(path string, kind contract.Kind) ([]outgoing, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<22)
	var out []outgoing
	for n := 1; sc.Scan(); n++ {
		line := append([]byte(nil), sc.Bytes()...)
		if len(line) == 0 {
			continue
		}
		k := kind
		if k == "" {
			k = guessKind(line)
			if k == "" {
				return nil, fmt.Errorf("line %d: cannot tell placement from scan (no placementId or scanId): use --kind", n)
			}
		}
		out = append(out, outgoing{kind: k, body: line})
	}
	return out, sc.Err()
}

func guessKind(line []byte) contract.Kind {
	var probe map[string]json.RawMessage
	if json.Unmarshal(line, &probe) != nil {
		return ""
	}
	if _, ok := probe["placementId"]; ok {
		return contract.KindPlacement
	}
	if _, ok := probe["scanId"]; ok {
		return contract.KindScan
	}
	return ""
}
