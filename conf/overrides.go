package conf

import (
	"fmt"
	"os"
	"strings"
)

// Overrides are values given on the command line with --set key=value; they
// win over the environment and the files.
type Overrides map[string]string

// ParseSet turns repeated "key=value" flags into Overrides.
func ParseSet(pairs []string) (Overrides, error) {
	o := Overrides{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--set %q: expected key=value, e.g. --set min.group.num=3", p)
		}
		o[k] = v
	}
	return o, nil
}

// EnvName is the environment variable that overrides key: QMQ_ followed by the
// key upper-cased with dots and dashes turned into underscores.
func EnvName(key string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return "QMQ_" + strings.ToUpper(r.Replace(key))
}

// Lookup decides where key's value comes from. Env defaults to os.LookupEnv.
type Lookup struct {
	Overrides Overrides
	Env       func(string) (string, bool)
}

// Getenv reads the environment variable name through Env ("" when unset):
// for the few keys whose default is another program's variable, such as
// consul.address's CONSUL_HTTP_ADDR.
func (l Lookup) Getenv(name string) string {
	v, _ := l.env(name)
	return v
}

func (l Lookup) env(name string) (string, bool) {
	if l.Env != nil {
		return l.Env(name)
	}
	return os.LookupEnv(name)
}
