package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tis-writeback/writeback/internal/config"
)

// stdout and stderr are where the commands print: the process's, or a test's buffers.
var (
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

// exitCode carries a command's exit code other than 0 back through cobra.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// usageError is a command line the command cannot run (exit 2): a flag, an argument or a setting.
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// body is a command's work once its flags are parsed; it returns the exit code.
type body func(args []string) int

// leaf is a command whose flags are Go flags with environment fallbacks (internal/config): define
// registers them on fs and returns the body that runs with their values. A flag given on the
// command line wins over its variable.
func leaf(c *cobra.Command, define func(fs *flag.FlagSet) body) *cobra.Command {
	fs := flag.NewFlagSet(c.Name(), flag.ContinueOnError)
	run := define(fs)
	c.Flags().AddGoFlagSet(fs)
	c.Flags().SortFlags = false
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if err := config.ApplyEnvExcept(fs, cmd.Flags().Changed); err != nil {
			return usageError{err}
		}
		if code := run(args); code != 0 {
			return exitCode(code)
		}
		return nil
	}
	return c
}

// group is a command that only holds subcommands.
func group(c *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	c.AddCommand(subs...)
	c.Args = cobra.NoArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		return usagef("%s needs one of its commands", progPath(cmd))
	}
	return c
}

// exactArgs wants n positional arguments, named in the error when they are missing.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s needs %s (got %d argument(s): %q)", progPath(cmd), names, len(args), args)
		}
		return nil
	}
}

func newRoot() *cobra.Command {
	root := group(&cobra.Command{
		Use:   "starter",
		Short: "moves records from RabbitMQ into writeback workflows, and is the operator's CLI",
		// A runtime failure has printed its own words; only a wrong command line shows the usage.
		SilenceErrors: true,
		SilenceUsage:  true,
	},
		consumeCmd(), publishCmd(), retryCmd(), abandonCmd(), deadLettersCmd(), historyCmd(), jobsCmd(), tcsCmd(),
		versioningCmd(), redriveCmd(), reconcileCmd(), ledgerCmd(), checkCmd())
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.CompletionOptions.DisableDefaultCmd = true
	cobra.AddTemplateFunc("prog", progPath)
	cobra.AddTemplateFunc("useArgs", func(c *cobra.Command) string {
		if _, rest, ok := strings.Cut(c.Use, " "); ok {
			return " " + rest
		}
		return ""
	})
	root.SetUsageTemplate(usageTemplate)
	return root
}

// progPath is the command as the operator types it: the program as it was run, then the words
// after the root.
func progPath(c *cobra.Command) string {
	return strings.TrimSpace(prog + strings.TrimPrefix(c.CommandPath(), c.Root().Name()))
}

// usageTemplate is cobra's, with the program named as it was run (so the lines can be pasted back).
const usageTemplate = `Usage: {{prog .}}{{if .HasAvailableSubCommands}} <command>{{end}}{{useArgs .}}{{if .HasAvailableFlags}} [flags]{{end}}
{{if .HasAvailableSubCommands}}
Commands:{{range .Commands}}{{if .IsAvailableCommand}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}
{{end}}{{if .HasAvailableLocalFlags}}
Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}
{{end}}{{if .HasAvailableSubCommands}}
Run '{{prog .}} <command> --help' for a command's flags.
{{end}}`

// execute runs the command line args and returns the exit code: 0, 1 when the command failed, 2
// when the command line was wrong (with the usage on standard error).
func execute(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	default:
		// A usage error, or cobra's own (an unknown command): say what was wrong, then the usage.
		fmt.Fprintf(stderr, "%s\n\n%s", err, cmd.UsageString())
		return 2
	}
}
