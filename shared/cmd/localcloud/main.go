// Command localcloud runs the tutorial's local cloud in the foreground: Entra ID, Key Vault and
// the managed identity endpoint, answering for Azure's own hostnames through an HTTPS proxy.
//
//	go run ./shared/cmd/localcloud [--dir DIR] [--addr HOST:PORT] [--reset]
//
// It keeps its state in DIR ($LOCALCLOUD_DIR, else .localcloud/), writes DIR/env and
// DIR/developer.env for `set -a; . DIR/env`, prints them, then a line with "ready", and runs
// until interrupted.
package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kvbootstrap/keyvault-bootstrapping/shared/localcloud"
)

// DefaultAddr is fixed, so DIR/env stays valid across restarts.
const DefaultAddr = "127.0.0.1:10443"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newCommand(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "localcloud:", err)
		os.Exit(1)
	}
}

func newCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		dir, addr, level string
		reset            bool
	)
	cmd := &cobra.Command{
		Use:   "localcloud",
		Short: "Run the local cloud: Entra ID, Key Vault and managed identity, offline",
		Long: `Runs the local cloud in the foreground until Ctrl+C.

Apps reach it through HTTPS_PROXY and trust its CA through SSL_CERT_FILE; both, with the
well-known tenant and vault, are written to DIR/env. Load them into a shell with:

    set -a; . .localcloud/env; . .localcloud/developer.env; set +a`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(level)); err != nil {
				return fmt.Errorf("--log-level: %w (use debug, info, warn or error)", err)
			}
			log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
			return run(cmd.Context(), stdout, log, dir, addr, reset)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.Flags().StringVar(&dir, "dir", cmp.Or(os.Getenv("LOCALCLOUD_DIR"), ".localcloud"), "folder for the state, ca.pem, env and developer.env ($LOCALCLOUD_DIR)")
	cmd.Flags().StringVar(&addr, "addr", cmp.Or(os.Getenv("LOCALCLOUD_ADDR"), DefaultAddr), "where the HTTPS proxy listens ($LOCALCLOUD_ADDR)")
	cmd.Flags().BoolVar(&reset, "reset", false, "start afresh: forget the CA, keys, directory and vaults kept in --dir")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func run(ctx context.Context, stdout io.Writer, log *slog.Logger, dir, addr string, reset bool) error {
	// DIR/env names files in DIR: make them absolute so it can be loaded from any folder.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	cloud, err := localcloud.Start(ctx, localcloud.Options{Dir: dir, Addr: addr, Reset: reset, Logger: log})
	if err != nil {
		return err
	}
	defer cloud.Close()

	envFile := filepath.Join(dir, localcloud.EnvFile)
	devFile := filepath.Join(dir, localcloud.DeveloperEnvFile)
	fmt.Fprintf(stdout, "# %s: the proxy, its CA, the tenant and the well-known vault (no credentials)\n", envFile)
	fmt.Fprintln(stdout, strings.Join(cloud.Env(), "\n"))
	fmt.Fprintf(stdout, "# %s: the developer principal (Key Vault Secrets Officer on %s)\n", devFile, localcloud.VaultName)
	fmt.Fprintln(stdout, strings.Join(cloud.DeveloperEnv(), "\n"))
	fmt.Fprintf(stdout, "# load both into a shell: set -a; . %s; . %s; set +a\n", envFile, devFile)
	fmt.Fprintf(stdout, "localcloud ready: proxy %s, vault %s (Ctrl+C to stop)\n", cloud.ProxyURL(), localcloud.VaultURL)

	<-ctx.Done()
	log.Info("shutting down")
	return cloud.Close()
}
