// Command notify is the development CLI of the notification service:
//
//	notify local     run API Gateway + Lambda locally from template.yaml
//	notify token     print a token signed with JWT_SECRET
//	notify publish   invoke PublishFunction (locally, or on AWS)
//	notify listen    connect to the WebSocket API and print every frame
//	notify disconnect  close users' sockets and refuse their older tokens
//	notify invoke    run one function's bootstrap once, as `sam local invoke` does
//
// `notify help COMMAND` lists a command's flags. Flags are spelled --name
// (or -name); errors name the flag or value at fault. Exit status: 0 on
// success (and on Ctrl-C for local and listen), 1 on failure, 2 on a usage
// error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	// flags declares the command's flags on fs and returns what runs it.
	flags func(fs *flag.FlagSet, env func(string) string) runFunc
	// args names the command's positional arguments in its usage ("" for
	// none); they may come before, between or after the flags, and the
	// command reads them from fs.Args().
	args string
}

var commands = []command{
	{"local", "run the local stack (API Gateway + Lambda) from template.yaml", localFlags, ""},
	{"token", "print a development token signed with JWT_SECRET", tokenFlags, ""},
	{"publish", "publish a notification by invoking PublishFunction", publishFlags, ""},
	{"listen", "connect to the WebSocket API and print each frame", listenFlags, ""},
	{"disconnect", "sign users out: close their sockets and refuse their older tokens", disconnectFlags, ""},
	{"invoke", "build a function for this machine and invoke it once, like sam local invoke", invokeFlags, "FUNCTION"},
}

// errUsage marks an error the command's usage explains; it exits 2.
var errUsage = errors.New("usage")

// usageError is a usage mistake, reported with the command's usage.
type usageError struct{ msg string }

func (e usageError) Error() string        { return e.msg }
func (e usageError) Is(target error) bool { return target == errUsage }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is the whole CLI; it returns the exit status.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printHelp(stderr)
		return 2
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) == 0 {
			printHelp(stdout)
			return 0
		}
		c, ok := findCommand(rest[0])
		if !ok {
			fmt.Fprintf(stderr, "notify help: unknown command %q\n", rest[0])
			printHelp(stderr)
			return 2
		}
		fs, _ := newFlagSet(c, env, stdout)
		fs.Usage()
		return 0
	}
	c, ok := findCommand(name)
	if !ok {
		fmt.Fprintf(stderr, "notify: unknown command %q\n", name)
		printHelp(stderr)
		return 2
	}
	fs, runCmd := newFlagSet(c, env, stderr)
	if err := parseArgs(fs, c, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2 // the flag package printed the error and the usage
	}
	if c.args == "" && fs.NArg() > 0 {
		fmt.Fprintf(stderr, "notify %s: unexpected argument %q (flags start with --)\n", c.name, fs.Arg(0))
		return 2
	}
	if err := runCmd(ctx, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "notify %s: %v\n", c.name, err)
		if errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "run 'notify help %s' for its flags\n", c.name)
			return 2
		}
		return 1
	}
	return 0
}

// parseArgs parses args into fs. For a command with positional arguments,
// flags may also follow them (notify invoke FUNCTION -e EVENT); once parsed,
// fs.Args() holds the positional arguments.
func parseArgs(fs *flag.FlagSet, c command, args []string) error {
	if c.args == "" {
		return fs.Parse(args)
	}
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		if len(rest) > fs.NArg() && rest[len(rest)-fs.NArg()-1] == "--" {
			// "--": everything after it is positional.
			positional = append(positional, fs.Args()...)
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	return fs.Parse(append([]string{"--"}, positional...))
}

func findCommand(name string) (command, bool) {
	i := slices.IndexFunc(commands, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, false
	}
	return commands[i], true
}

type runFunc = func(ctx context.Context, stdout, stderr io.Writer) error

func newFlagSet(c command, env func(string) string, out io.Writer) (*flag.FlagSet, runFunc) {
	fs := flag.NewFlagSet("notify "+c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	runCmd := c.flags(fs, env)
	fs.Usage = func() {
		usage := c.name
		if c.args != "" {
			usage += " " + c.args
		}
		fmt.Fprintf(out, "notify %s: %s\n\nUsage: notify %s [flags]\n\nFlags:\n", c.name, c.summary, usage)
		fs.VisitAll(func(f *flag.Flag) {
			name, usage := flag.UnquoteUsage(f)
			line := "  --" + f.Name
			if name != "" {
				line += " " + name
			}
			fmt.Fprintf(out, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" && f.DefValue != "0s" {
				fmt.Fprintf(out, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(out)
		})
	}
	return fs, runCmd
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "notify: real-time notifications on API Gateway WebSocket + Lambda, for development")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: notify COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  %-11s %s\n", "help", "list the commands, or a command's flags: notify help COMMAND")
}

// multiFlag is a flag that may be repeated; each value may also be a
// comma-separated list when split is set.
type multiFlag struct {
	values []string
	split  bool
}

func (m *multiFlag) String() string { return strings.Join(m.values, ",") }

func (m *multiFlag) Set(s string) error {
	if !m.split {
		m.values = append(m.values, s)
		return nil
	}
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			m.values = append(m.values, v)
		}
	}
	return nil
}

// orDefault returns env(name), or def when it is empty.
func orDefault(env func(string) string, name, def string) string {
	if v := env(name); v != "" {
		return v
	}
	return def
}

// noNetworkCredentials keeps the AWS SDK in this process from asking the
// EC2 metadata service for credentials (PROTOCOL.md §6), unless told otherwise.
func noNetworkCredentials() {
	if _, ok := os.LookupEnv("AWS_EC2_METADATA_DISABLED"); !ok {
		_ = os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	}
}
