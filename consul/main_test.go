package consul

import (
	"os"
	"testing"

	"github.com/hashicorp/consul/sdk/testutil"

	"github.com/qmq-go/qmq/consul/consultest"
)

func TestMain(m *testing.M) { os.Exit(consultest.Main(m)) }

func agent(t *testing.T) *testutil.TestServer { return consultest.Agent(t) }
