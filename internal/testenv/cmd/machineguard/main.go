// Command machineguard proves that make test leaves the machine's own RabbitMQ alone. Started before
// the tests, it opens a connection to that broker (127.0.0.1:5672) and reads its consumer_timeout
// (rabbitmqctl eval against the default node); then it waits. On SIGTERM, after the tests, it checks
// that the connection is still open and answers, and that consumer_timeout is what it was, and exits
// 1 if not. With no broker on that port there is nothing to guard: it says so and exits 0.
//
// It writes --ready once it has looked, so the caller knows when to start the tests. SIGINT is left
// alone (make test's Ctrl-C must not end the guard before its check); when the process that started
// it is gone it exits without checking.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func main() {
	url := flag.String("url", "amqp://guest:guest@127.0.0.1:5672/", "the machine's RabbitMQ")
	ready := flag.String("ready", "", "file written once the guard has looked")
	flag.Parse()
	os.Exit(run(*url, *ready))
}

func run(url, ready string) int {
	parent := os.Getppid()
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	markReady := func() {
		if ready != "" {
			_ = os.WriteFile(ready, nil, 0o644)
		}
	}

	conn, err := amqp.DialConfig(url, amqp.Config{Heartbeat: 10 * time.Second, Locale: "en_US",
		Properties: amqp.Table{"connection_name": "writeback make test: machine broker guard"}})
	if err != nil {
		fmt.Printf("machine RabbitMQ guard: no broker at %s (%v): nothing to guard\n", redact(url), err)
		markReady()
		wait(term, parent)
		return 0
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	before, berr := consumerTimeout()
	if berr != nil {
		fmt.Printf("machine RabbitMQ guard: cannot read its consumer_timeout (%v); checking the connection only\n", berr)
	}
	fmt.Printf("machine RabbitMQ guard: connection to %s open, consumer_timeout %s\n", redact(url), before)
	markReady()
	if !wait(term, parent) {
		_ = conn.Close()
		return 0
	}

	var problems []string
	select {
	case e := <-closed:
		problems = append(problems, fmt.Sprintf("the guard's connection to the machine's RabbitMQ was closed during the tests: %v", e))
	default:
		if ch, err := conn.Channel(); err != nil { // a round trip: the broker still answers on it
			problems = append(problems, fmt.Sprintf("the guard's connection to the machine's RabbitMQ no longer works: %v", err))
		} else {
			_ = ch.Close()
		}
	}
	_ = conn.Close()
	if berr == nil {
		after, err := consumerTimeout()
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("cannot read the machine's RabbitMQ consumer_timeout after the tests: %v", err))
		case after != before:
			problems = append(problems, fmt.Sprintf("the machine's RabbitMQ consumer_timeout changed during the tests: %s before, %s after", before, after))
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "machine RabbitMQ guard: FAIL: "+p)
		}
		return 1
	}
	fmt.Println("machine RabbitMQ guard: untouched (connection still open, consumer_timeout " + before + ")")
	return 0
}

// wait returns true on SIGTERM, false once the parent is gone.
func wait(term <-chan os.Signal, parent int) bool {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-term:
			return true
		case <-tick.C:
			if os.Getppid() != parent {
				return false
			}
		}
	}
}

// consumerTimeout asks the machine's default node, as its operator would.
func consumerTimeout() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "eval", "application:get_env(rabbit, consumer_timeout).").CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return "", fmt.Errorf("rabbitmqctl eval: %v: %s", err, s)
	}
	return s, nil
}

// redact drops the password from a URL for the log.
func redact(url string) string {
	if u, err := amqp.ParseURI(url); err == nil {
		return fmt.Sprintf("%s:%d", u.Host, u.Port)
	}
	return "the URL given"
}
