package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes, as az uses them.
const (
	exitError    = 1 // a service or validation error
	exitUsage    = 2 // the command line is wrong
	exitNotFound = 3 // the resource does not exist
)

// stdio is where an invocation reads and writes.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// cliError is an error az would print as "ERROR: <message>" and exit with code.
type cliError struct {
	msg  string
	code int
}

func (e *cliError) Error() string { return e.msg }

func usageError(format string, args ...any) error {
	return &cliError{msg: fmt.Sprintf(format, args...), code: exitUsage}
}

func failure(format string, args ...any) error {
	return &cliError{msg: fmt.Sprintf(format, args...), code: exitError}
}

func notFound(format string, args ...any) error {
	return &cliError{msg: fmt.Sprintf(format, args...), code: exitNotFound}
}

// exitCode maps an error to az's exit code.
func exitCode(err error) int {
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code
	}
	var se *serviceError
	if errors.As(err, &se) {
		return se.exitCode()
	}
	return exitError
}

// app is one invocation of azlocal: its streams, environment, global flags and, once a command
// needs it, its connection to the local cloud.
type app struct {
	ctx    context.Context
	io     stdio
	getenv func(string) string

	query, output, subscription string
	onlyShowErrors, verbose     bool
	debug                       bool

	cloud *cloud
}

// warn prints an az warning unless --only-show-errors is on.
func (a *app) warn(format string, args ...any) {
	if !a.onlyShowErrors {
		fmt.Fprintf(a.io.err, "WARNING: "+format+"\n", args...)
	}
}

// info prints what az prints with --verbose.
func (a *app) info(format string, args ...any) {
	if a.verbose || a.debug {
		fmt.Fprintf(a.io.err, "INFO: "+format+"\n", args...)
	}
}

// debugf prints what az prints with --debug. Callers never pass tokens or secret values.
func (a *app) debugf(format string, args ...any) {
	if a.debug {
		fmt.Fprintf(a.io.err, "DEBUG: "+format+"\n", args...)
	}
}

// connect finds and signs in to the local cloud, once per process.
func (a *app) connect() (*cloud, error) {
	if a.cloud != nil {
		return a.cloud, nil
	}
	dir, err := findDir(a.getenv)
	if err != nil {
		return nil, err
	}
	c, err := dial(a.ctx, dir, a.debugf)
	if err != nil {
		return nil, err
	}
	if a.subscription != "" && !strings.EqualFold(a.subscription, c.subscriptionID) && !strings.EqualFold(a.subscription, subscriptionName) {
		return nil, failure("Subscription '%s' not found. Check the spelling and casing and try again.", a.subscription)
	}
	a.cloud = c
	return c, nil
}

// command describes one az command: its flags are added by flags, required lists the flags az
// requires (checked in this order, so the message names them as az does), and run returns the
// result to print (nil prints nothing).
type command struct {
	use, short string
	args       cobra.PositionalArgs
	required   []string
	flags      func(*pflag.FlagSet)
	run        func(a *app, cmd *cobra.Command, args []string) (any, error)
	// table is az's table transformer: the rows and columns -o table shows without --query.
	table func(result any) (rows any, columns []string)
}

func (a *app) add(parent *cobra.Command, c command) *cobra.Command {
	args := c.args
	if args == nil {
		args = noArgs
	}
	cmd := &cobra.Command{
		Use:   c.use,
		Short: c.short,
		Args:  args,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkRequired(cmd, c.required); err != nil {
				return err
			}
			result, err := c.run(a, cmd, args)
			if err != nil {
				return err
			}
			return a.print(result, c.table)
		},
	}
	if c.flags != nil {
		c.flags(cmd.Flags())
	}
	parent.AddCommand(cmd)
	return cmd
}

// noArgs rejects positional arguments as argparse does.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("unrecognized arguments: %s", strings.Join(args, " "))
	}
	return nil
}

// group adds a command group: az prints its help when run without a subcommand.
func group(parent *cobra.Command, use, short string) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short}
	parent.AddCommand(g)
	return g
}

// checkRequired reports the missing required flags the way argparse does.
func checkRequired(cmd *cobra.Command, required []string) error {
	var missing []string
	for _, name := range required {
		// "a|b": either flag satisfies the requirement (aliases such as --name/--resource-group).
		alts := strings.Split(name, "|")
		if !slices.ContainsFunc(alts, func(n string) bool { return cmd.Flags().Changed(n) }) {
			missing = append(missing, flagLabel(cmd.Flags(), alts[0]))
		}
	}
	if len(missing) > 0 {
		return usageError("the following arguments are required: %s", strings.Join(missing, ", "))
	}
	return nil
}

// flagLabel is how az names a flag in messages: --name/-n.
func flagLabel(fs *pflag.FlagSet, name string) string {
	label := "--" + name
	if f := fs.Lookup(name); f != nil && f.Shorthand != "" {
		label += "/-" + f.Shorthand
	}
	return label
}

var outputFormats = []string{"json", "jsonc", "none", "table", "tsv", "yaml", "yamlc"}

// newRoot builds the command tree for one invocation.
func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "azlocal",
		Short: "The az commands of this tutorial, against the local cloud",
		Long: `azlocal answers the az command lines this tutorial uses, with az's flags and output, against the
local cloud (start one with 'go run ./shared/cmd/localcloud'). It finds the local cloud through
$LOCALCLOUD_DIR, else ./.localcloud, else a .localcloud folder in a parent directory, and signs
in as the local developer principal.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if !slices.Contains(outputFormats, a.output) {
				return usageError("argument --output/-o: invalid choice: '%s' (choose from '%s')", a.output, strings.Join(outputFormats, "', '"))
			}
			if a.output == "yaml" || a.output == "yamlc" {
				return usageError("argument --output/-o: azlocal does not emulate '%s'; use json, jsonc, table, tsv or none", a.output)
			}
			if a.query != "" {
				if _, err := compileQuery(a.query); err != nil {
					return usageError("argument --query: invalid jmespath_type value: '%s'", a.query)
				}
			}
			return nil
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVar(&a.query, "query", "", "JMESPath query string. See http://jmespath.org/ for more information and examples.")
	pf.StringVarP(&a.output, "output", "o", "json", "Output format: json, jsonc, none, table, tsv.")
	pf.StringVar(&a.subscription, "subscription", "", "Name or ID of subscription (the local cloud has one).")
	pf.BoolVar(&a.onlyShowErrors, "only-show-errors", false, "Only show errors, suppressing warnings.")
	pf.BoolVar(&a.verbose, "verbose", false, "Increase logging verbosity.")
	pf.BoolVar(&a.debug, "debug", false, "Increase logging verbosity to show all debug logs (never tokens or secrets).")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return flagError(err) })

	addAccount(a, root)
	addGroup(a, root)
	addKeyVault(a, root)
	addAD(a, root)
	addRole(a, root)
	addACR(a, root)
	addAppService(a, root)
	addWebApp(a, root)
	return root
}

// flagError rewrites pflag's messages into argparse's.
func flagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "unknown flag: "); ok {
		return usageError("unrecognized arguments: %s", name)
	}
	if name, ok := strings.CutPrefix(msg, "unknown shorthand flag: "); ok {
		return usageError("unrecognized arguments: %s", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return usageError("argument %s: expected one argument", strings.Trim(name, "'"))
	}
	return usageError("%s", msg)
}

// run executes one command line and returns its exit code.
func run(ctx context.Context, args []string, std stdio, getenv func(string) string) int {
	start := time.Now()
	a := &app{ctx: ctx, io: std, getenv: getenv}
	root := newRoot(a)
	root.SetOut(std.out)
	root.SetErr(std.err)
	root.SetIn(std.in)
	args = normalizeArgs(root, args)
	root.SetArgs(args)

	err := checkCommand(root, args)
	if err == nil {
		err = root.ExecuteContext(ctx)
	}
	if a.cloud != nil {
		a.cloud.close()
	}
	if err != nil {
		printError(std.err, err)
		return exitCode(err)
	}
	a.info("Command ran in %.3f seconds", time.Since(start).Seconds())
	return 0
}

func printError(w io.Writer, err error) {
	fmt.Fprintf(w, "ERROR: %s\n", err.Error())
}

// checkCommand reports a command line that names no emulated command, as az does for an
// unknown command, with the list of what azlocal emulates.
func checkCommand(root *cobra.Command, args []string) error {
	cmd, rest, err := root.Find(args)
	switch {
	case err != nil && strings.HasPrefix(err.Error(), "unknown command"):
		cmd, rest = root, args
	case err != nil || cmd.Runnable():
		return nil // cobra reports its own errors; runnable commands check their arguments
	}
	var words []string
scan:
	for i := 0; i < len(rest); i++ {
		switch arg := rest[i]; {
		case arg == "-o" || arg == "--output" || arg == "--query" || arg == "--subscription":
			i++ // a global flag's value
		case strings.HasPrefix(arg, "-"):
			if len(words) > 0 {
				break scan
			}
		default:
			words = append(words, arg)
		}
	}
	if len(words) == 0 {
		return nil // a group alone prints its help
	}
	path := strings.TrimSpace(strings.TrimPrefix(cmd.CommandPath(), root.Name()) + " " + strings.Join(words, " "))
	return usageError("'%s' is not an az command emulated by azlocal. See 'azlocal --help'.\n\nazlocal emulates:\n  %s",
		path, strings.Join(commandList(root), "\n  "))
}

// commandList is every runnable command, as "az ..." lines.
func commandList(root *cobra.Command) []string {
	var out []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && c != root {
			out = append(out, "az"+strings.TrimPrefix(c.CommandPath(), root.Name()))
		}
		for _, sub := range c.Commands() {
			if sub.Name() != "help" {
				walk(sub)
			}
		}
	}
	walk(root)
	slices.Sort(out)
	return out
}

// multiValue flags take one or more values after them, as argparse's nargs='+' does
// (--scopes A B); optionalValue flags may stand alone (--assign-identity).
var (
	multiValue    = []string{"scopes", "settings", "generic-configurations", "ids", "assign-identity", "slot-settings", "tags"}
	optionalValue = map[string]string{"assign-identity": "[system]"}
)

// normalizeArgs rewrites az's argparse conventions into pflag's: the values after a
// multi-value flag become repeated --flag=value, and an explicit true/false after a boolean
// flag (az's three-state flags: --enable-rbac-authorization false) is attached to it.
func normalizeArgs(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil {
		return args
	}
	var out []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return append(out, args[i:]...)
		}
		name, hasValue := strings.CutPrefix(arg, "--")
		if !hasValue || strings.Contains(name, "=") {
			out = append(out, arg)
			continue
		}
		if slices.Contains(multiValue, name) {
			j := i + 1
			for ; j < len(args) && !strings.HasPrefix(args[j], "-"); j++ {
				out = append(out, "--"+name+"="+args[j])
			}
			if j == i+1 {
				if def, ok := optionalValue[name]; ok {
					out = append(out, "--"+name+"="+def)
				} else {
					out = append(out, arg)
				}
			}
			i = j - 1
			continue
		}
		if f := lookupFlag(cmd, name); f != nil && f.Value.Type() == "bool" && i+1 < len(args) {
			switch strings.ToLower(args[i+1]) {
			case "true", "false", "yes", "no":
				out = append(out, "--"+name+"="+boolWord(args[i+1]))
				i++
				continue
			}
		}
		out = append(out, arg)
	}
	return out
}

func boolWord(s string) string {
	switch strings.ToLower(s) {
	case "true", "yes":
		return "true"
	}
	return "false"
}

func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	if f := cmd.Flags().Lookup(name); f != nil {
		return f
	}
	return cmd.InheritedFlags().Lookup(name)
}

// confirm asks az's yes/no question; without a terminal it fails as az does.
func (a *app) confirm(question string) (bool, error) {
	f, ok := a.io.in.(*os.File)
	if !ok {
		return false, failure("Unable to prompt for confirmation as no tty available. Use --yes.")
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false, failure("Unable to prompt for confirmation as no tty available. Use --yes.")
	}
	fmt.Fprintf(a.io.err, "%s (y/n): ", question)
	var answer string
	fmt.Fscanln(f, &answer)
	return strings.EqualFold(answer, "y") || strings.EqualFold(answer, "yes"), nil
}

// connected is the run of a command that calls the local cloud: it connects first, as every az
// command that calls Azure needs the signed-in account before it does anything else.
func connected(run func(a *app, c *cloud) (any, error)) func(*app, *cobra.Command, []string) (any, error) {
	return func(a *app, _ *cobra.Command, _ []string) (any, error) {
		c, err := a.connect()
		if err != nil {
			return nil, err
		}
		return run(a, c)
	}
}
