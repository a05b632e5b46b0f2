package broker

import (
	"errors"
	"fmt"
	"time"

	"github.com/qmq-go/qmq/conf"
	"github.com/qmq-go/qmq/storage"
)

// FileBroker is the broker's configuration file in the conf directory.
const FileBroker = "broker.properties"

// Settings are read once at start-up.
type Settings struct {
	MetaEndpoint string // meta.server.endpoint (required): http://host:8080/meta/address, consul://…, or host:port
	Port         int    // broker.port (0 = a free port, for tests)
	SyncPort     int    // sync.port: sent to the metaserver so it can print an exact AddBroker command
	BindHost     string // broker.bind.host (ours): "" = all interfaces
	AdvertiseIP  string // broker.advertise.ip (ours): the IP registered; "" = the IP that reaches the metaserver

	MaxMessageSize int           // max.message.size (ours), bytes including the CRC
	MaxFrameSize   int           // max.frame.size (ours)
	RetryDelay     time.Duration // message.retry.delay.seconds
	RetryLimit     int           // put_need_retry_message.limiter: messages per second moved to retry subjects

	OfflineTimeout    time.Duration // subscriber.offline.timeout.ms (ours; QMQ: 3 min)
	HeartbeatInterval time.Duration // broker.heartbeat.interval.ms (ours; QMQ: 10 s)
	MetaRetry         time.Duration // meta.retry.interval.ms (ours): between BROKER_ACQUIRE_META attempts

	Store storage.Config
}

func loadSettings(dir string, l conf.Lookup) (Settings, error) {
	f, err := conf.LoadFile(dir, FileBroker)
	if err != nil {
		return Settings{}, err
	}
	r := conf.NewReader(f, l)
	s := Settings{
		MetaEndpoint:      r.String("meta.server.endpoint", ""),
		Port:              r.Int("broker.port", 20881, 0, 65535),
		SyncPort:          r.Int("sync.port", 20882, 0, 65535),
		BindHost:          r.String("broker.bind.host", ""),
		AdvertiseIP:       r.String("broker.advertise.ip", ""),
		MaxMessageSize:    r.Int("max.message.size", 4<<20, 1<<10, 64<<20),
		MaxFrameSize:      r.Int("max.frame.size", 64<<20, 1<<16, 64<<20),
		RetryDelay:        r.Seconds("message.retry.delay.seconds", 5*time.Second, 0, 24*time.Hour),
		RetryLimit:        r.Int("put_need_retry_message.limiter", 50, 1, 1_000_000),
		OfflineTimeout:    r.Millis("subscriber.offline.timeout.ms", 3*time.Minute, 100*time.Millisecond, 7*24*time.Hour),
		HeartbeatInterval: r.Millis("broker.heartbeat.interval.ms", 10*time.Second, 10*time.Millisecond, 10*time.Minute),
		MetaRetry:         r.Millis("meta.retry.interval.ms", 5*time.Second, 10*time.Millisecond, 10*time.Minute),
	}
	s.Store = storage.ReadConfig(r)
	if err := r.Err(); err != nil {
		return Settings{}, fmt.Errorf("invalid configuration in %s:\n%w", f.Path, err)
	}
	if s.MetaEndpoint == "" {
		return Settings{}, errors.New(f.Path + ": meta.server.endpoint is required: the metaserver's discovery URL, e.g. meta.server.endpoint=http://<metaserver>:8080/meta/address")
	}
	return s, nil
}
