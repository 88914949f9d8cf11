// Command gotcmu is the TCMU userspace handler daemon: run without
// arguments it serves every user:file, user:mem and user:rbd backstore the
// kernel has, in the foreground, as tcmu-runner does (what the systemd
// unit's ExecStart runs). `gotcmu status` asks the running daemon what it
// serves.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(mainErr(os.Args[1:]))
}

func mainErr(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "status":
			return runStatus(args[1:])
		case "version", "--version", "-version":
			fmt.Println("gotcmu", version)
			return 0
		}
	}
	fs := flag.NewFlagSet("gotcmu", flag.ContinueOnError)
	var o options
	o.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: gotcmu [flags]           run the daemon in the foreground
       gotcmu status [--json]   show the devices the running daemon serves
       gotcmu version | --version

gotcmu serves LIO's user:file, user:mem and user:rbd backstores (TCMU).
Settings come from the configuration file (tcmu-runner's tcmu.conf format,
reloaded when it changes) unless a flag below is given, which wins.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "gotcmu: unexpected argument %q (see gotcmu --help)\n", fs.Arg(0))
		return 2
	}
	o.set = map[string]bool{}
	keepSysmonAwake()
	raiseProcs()
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "gotcmu: %v\n", err)
		return 1
	}
	return 0
}

// version is set by `make build` (-ldflags "-X main.version=$(VERSION)",
// systemd/deb/version.sh: git describe as a Debian version); "dev" in a
// plain `go build`.
var version = "dev"
