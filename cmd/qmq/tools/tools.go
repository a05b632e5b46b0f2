package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/qmq-go/qmq/client/admin"
	"github.com/qmq-go/qmq/consul"
)

// TokenEnv is the environment variable read for the API token when
// --token is not given (ours): a token on the command line is visible to
// every user of the machine (ps) and to whatever records commands.
const TokenEnv = "QMQ_TOOLS_TOKEN"

// Main runs `qmq tools <Command> …` and returns the process exit code:
// 0 on success, 1 when the metaserver answers an error (status -1, or an
// "error" field) or cannot be reached, 2 on a usage error (including a
// subject or group that is not a legal name: nothing is sent then).
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		printUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := findCommand(args[0])
	if !ok {
		fmt.Fprintf(stderr, "qmq tools: unknown command %q\n\n", args[0])
		printUsage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("qmq tools "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	metaserver := fs.String("metaserver", "", "metaserver HTTP address: <host> or <host>:<port> (port defaults to 8080), or consul://<service>")
	token := ""
	if cmd.token {
		fs.StringVar(&token, "token", "", "API token: any key of the metaserver's valid-api-tokens.properties (required; or set "+TokenEnv+", which keeps it off the command line)")
	}
	values := map[string]*string{}
	bools := map[string]*bool{}
	for _, f := range cmd.flags {
		help := f.help
		if f.required {
			help += " (required)"
		}
		if f.boolean {
			bools[f.name] = fs.Bool(f.name, false, help)
			continue
		}
		values[f.name] = fs.String(f.name, f.def, help)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: qmq tools %s --metaserver=<host[:port]>", cmd.name)
		if cmd.token {
			fmt.Fprint(fs.Output(), " --token=<token>")
		}
		for _, f := range cmd.flags {
			if f.boolean {
				fmt.Fprintf(fs.Output(), " [--%s]", f.name)
			} else if f.required {
				fmt.Fprintf(fs.Output(), " --%s=<%s>", f.name, f.name)
			} else {
				fmt.Fprintf(fs.Output(), " [--%s=<%s>]", f.name, f.name)
			}
		}
		fmt.Fprintf(fs.Output(), "\n\n%s.\n\n", cmd.help)
		fs.PrintDefaults()
	}
	// The flag package prints the usage itself on --help and on a bad flag;
	// collect it so that --help goes to stdout once and errors to stderr.
	var parseOut bytes.Buffer
	fs.SetOutput(&parseOut)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			stdout.Write(parseOut.Bytes())
			return 0
		}
		stderr.Write(parseOut.Bytes())
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "qmq tools %s: unexpected arguments %q; flags are written --name=value\n", cmd.name, fs.Args())
		return 2
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var missing []string
	if *metaserver == "" {
		missing = append(missing, "--metaserver")
	}
	if cmd.token && token == "" {
		token = os.Getenv(TokenEnv)
	}
	if cmd.token && token == "" {
		missing = append(missing, "--token (or "+TokenEnv+")")
	}
	form := url.Values{"action": {cmd.action}}
	for _, f := range cmd.flags {
		param := f.param
		if param == "" {
			param = f.name
		}
		if f.boolean {
			if *bools[f.name] {
				form.Set(param, "true")
			}
			continue
		}
		v := *values[f.name]
		if f.required && v == "" && !(f.mayBeEmpty && given[f.name]) {
			missing = append(missing, "--"+f.name)
		}
		form.Set(param, v)
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "qmq tools %s: missing required %s (see qmq tools %s --help)\n", cmd.name, strings.Join(missing, ", "), cmd.name)
		return 2
	}
	for _, f := range cmd.flags {
		if f.check == nil {
			continue
		}
		if v := *values[f.name]; v != "" {
			if err := f.check(v); err != nil {
				fmt.Fprintf(stderr, "qmq tools %s: --%s: %v; nothing was sent to the metaserver\n", cmd.name, f.name, err)
				return 2
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	addr, err := metaserverAddr(ctx, *metaserver)
	if err != nil {
		fmt.Fprintf(stderr, "qmq tools %s: %v\n", cmd.name, err)
		return 1
	}
	body, err := admin.New(addr, token).Post(ctx, form)
	var bad *admin.AddressError
	if errors.As(err, &bad) {
		err = fmt.Errorf("bad --metaserver: %w", bad.Err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "qmq tools %s: %v\n", cmd.name, err)
		return 1
	}
	fmt.Fprintln(stdout, body)
	return exitCode(body, stderr)
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: qmq tools <Command> --metaserver=<host[:port]> [--token=<token>] [flags]")
	fmt.Fprintln(w, "\nCommands (qmq tools <Command> --help for their flags):")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-26s %s\n", c.name, c.help)
	}
}

// metaserverAddr resolves consul://<service> to the host:port of one
// metaserver; any other --metaserver value (host or host:port, default port
// 8080) is left to admin.New, which reads it as QMQ's tools.sh does.
func metaserverAddr(ctx context.Context, v string) (string, error) {
	service, dns, ok := consul.ParseServiceURL(v)
	if !ok {
		return v, nil
	}
	r := &consul.Resolver{DNSAddr: dns}
	eps, err := r.Resolve(ctx, service)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(eps[0].Host, fmt.Sprint(eps[0].Port)), nil
}

// exitCode reads the answer: status -1 or an "error" field is a failure;
// a warning in a successful answer is repeated on stderr.
func exitCode(body string, stderr io.Writer) int {
	var res struct {
		Status  *int    `json:"status"`
		Message string  `json:"message"`
		Error   *string `json:"error"`
	}
	if !strings.HasPrefix(body, "{") {
		if strings.HasPrefix(body, "[") {
			return 0
		}
		fmt.Fprintln(stderr, "qmq tools: the metaserver did not accept the request (see the message above)")
		return 1
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		return 0
	}
	if res.Error != nil {
		return 1
	}
	if res.Status != nil && *res.Status != 0 {
		return 1
	}
	if strings.HasPrefix(res.Message, "warning:") {
		fmt.Fprintln(stderr, "qmq tools:", res.Message)
	}
	return 0
}
