# qmq-broker: ONE broker group (a master/slave pair) as a Nomad service job; run it once per broker
# group (see jobs/doc.go and README, Deploy on Nomad).
#
#   nomad var put nomad/jobs/qmq-broker-qmq_group01 admin_token=<token> sync_secret=$(openssl rand -hex 32)
#     (or -var admin_token=<token> -var sync_secret=<secret> below)
#   nomad job run -var broker_group=qmq_group01 jobs/qmq-broker.nomad.hcl
#
# The pair is two task groups, "a" and "b", each pinned to its own host volume. Their roles come
# from the metaserver: a is registered as the master and b as the slave the first time, and an
# automatic failover swaps them there, so a and b are not "master" and "slave". Both brokers run
# the same configuration, with wait.slave.wrote=true and failover.enable=true, and register
# themselves in Consul (service qmq-broker, tags group:<group> and role:<role>).

variable "qmq_binary" {
  type        = string
  default     = "/usr/local/bin/qmq"
  description = "Path of the qmq binary on the Nomad clients. With the exec driver it must lie inside the task's chroot (e.g. under /usr)."
}

variable "driver" {
  type        = string
  default     = "exec"
  description = "Task driver: exec (isolated; mounts each host volume at its store root) or raw_exec (no isolation, no mounts: store_root_a and store_root_b are then the host volumes' paths)."

  validation {
    condition     = var.driver == "exec" || var.driver == "raw_exec"
    error_message = "The driver must be exec or raw_exec."
  }
}

variable "datacenters" {
  type        = list(string)
  default     = ["*"]
  description = "Datacenters the brokers may run in."
}

variable "broker_group" {
  type        = string
  default     = "qmq_group01"
  description = "The broker group (AddBroker --brokerGroup); the job is qmq-broker-<broker_group>."

  validation {
    condition     = strlen(var.broker_group) > 0 && strlen(var.broker_group) <= 30 && regex_replace(var.broker_group, "^[A-Za-z0-9_.-]+$", "") == ""
    error_message = "The broker_group must be 1 to 30 letters, digits, '_', '.' or '-' (it is a row of the broker_group table and part of the job ID)."
  }
}

variable "volume_a" {
  type        = string
  default     = "qmq-broker-a"
  description = "Host volume of broker a (client host_volume); a runs only on a client that has it."
}

variable "volume_b" {
  type        = string
  default     = "qmq-broker-b"
  description = "Host volume of broker b."
}

variable "store_root_a" {
  type        = string
  default     = "/data"
  description = "store.root of broker a as its task sees it: where exec mounts volume_a; with raw_exec, volume_a's path on the client."
}

variable "store_root_b" {
  type        = string
  default     = "/data"
  description = "store.root of broker b (see store_root_a)."
}

variable "distinct_hosts" {
  type        = bool
  default     = true
  description = "Place a and b on different clients. Turn off only for a one-node cluster or a test."
}

variable "broker_port_a" {
  type        = number
  default     = 20881
  description = "broker.port of a (AddBroker --servePort)."
}

variable "broker_port_b" {
  type    = number
  default = 20881
}

variable "sync_port_a" {
  type        = number
  default     = 20882
  description = "sync.port of a (AddBroker --syncPort): a master serves its slave here."
}

variable "sync_port_b" {
  type    = number
  default = 20882
}

variable "http_port_a" {
  type        = number
  default     = 8081
  description = "broker.http.port of a: /health (role, replication lag) and /metrics."
}

variable "http_port_b" {
  type    = number
  default = 8081
}

variable "consul_address" {
  type        = string
  default     = "127.0.0.1:8500"
  description = "Consul agent HTTP address (the node's local agent): registration, the master lease (a session lock), and the fallback of consul:// lookups."
}

variable "meta_endpoint" {
  type        = string
  default     = "consul://qmq-metaserver"
  description = "meta.server.endpoint: consul://qmq-metaserver (Consul DNS on 127.0.0.1:8600; add ?dns=host:port for another) or http://<metaserver>:8080/meta/address."
}

variable "admin_token" {
  type        = string
  default     = ""
  description = "API token of qmq tools (a key of the metaserver's valid-api-tokens.properties), for the prestart task's AddBroker. Empty (better: the token stays out of the job): the task reads it from the Nomad variable nomad/jobs/qmq-broker-<broker_group>, key admin_token (nomad var put nomad/jobs/qmq-broker-<broker_group> admin_token=<token>)."
}

variable "sync_secret" {
  type        = string
  default     = ""
  description = "sync.secret of both brokers: the slave proves it to the master on every sync connection (README, Securing replication). Empty (better: the secret stays out of the job): read from the key sync_secret of the Nomad variable nomad/jobs/qmq-broker-<broker_group>; the broker task waits until that variable exists, and without the key it runs unauthenticated and says so in a WARN."
}

variable "broker_config" {
  type        = map(string)
  default     = {}
  description = "More broker.properties keys for both brokers, passed as --set key=value (e.g. { \"messagelog.retention.hours\" = \"168\" })."
}

variable "restart_delay" {
  type        = string
  default     = "10s"
  description = "Wait before a broker that died is started again. Longer than a takeover (the lease's health check TTL, failover.consul.check.ttl.ms 3 s, plus the lock delay: about 4 s), so that a killed master comes back as the slave instead of racing its slave for the lease."
}

variable "cpu" {
  type    = number
  default = 1000
}

variable "memory" {
  type    = number
  default = 1024
}

variable "user" {
  type        = string
  default     = ""
  description = "User the tasks run as; empty = the driver's default (nobody with exec, which refuses root unless the client allows it: the host volumes must be writable by that user)."
}

locals {
  # The two members of the pair. role is only the first registration's: failover swaps roles
  # in the metaserver, and AddBroker --ifAbsent then leaves them as they are.
  members = {
    a = {
      role        = 0
      volume      = var.volume_a
      store_root  = var.store_root_a
      broker_port = var.broker_port_a
      sync_port   = var.sync_port_a
      http_port   = var.http_port_a
    }
    b = {
      role        = 1
      volume      = var.volume_b
      store_root  = var.store_root_b
      broker_port = var.broker_port_b
      sync_port   = var.sync_port_b
      http_port   = var.http_port_b
    }
  }

  # What both brokers share: failover needs them configured alike. broker_config may override
  # these; the task adds the per-member keys after them.
  config_args = flatten([for k, v in merge({
    "meta.server.endpoint" = var.meta_endpoint
    "consul.address"       = var.consul_address
    "wait.slave.wrote"     = "true"
    "failover.enable"      = "true"
  }, var.broker_config) : ["--set", "${k}=${v}"]])

  # qmq tools --metaserver takes consul://<service> or host:port, not the /meta/address URL.
  tools_metaserver = regex_replace(var.meta_endpoint, "^https?://([^/]+).*$", "$1")
}

job "qmq-broker" {
  id          = "qmq-broker-${var.broker_group}"
  type        = "service"
  datacenters = var.datacenters

  # a and b on different machines: the pair survives the loss of one.
  dynamic "constraint" {
    for_each = var.distinct_hosts ? [true] : []
    content {
      operator = "distinct_hosts"
      value    = "true"
    }
  }

  meta {
    broker_group = var.broker_group
  }

  # A change of the job replaces both allocations at once (Nomad updates task groups in
  # parallel): the group is briefly unavailable and producers use their other groups.
  update {
    max_parallel     = 1
    health_check     = "task_states"
    min_healthy_time = "10s"
    healthy_deadline = "5m"
  }

  dynamic "group" {
    for_each = local.members
    labels   = [group.key]

    content {
      count = 1

      network {
        port "broker" {
          static = group.value.broker_port
        }
        port "sync" {
          static = group.value.sync_port
        }
        port "http" {
          static = group.value.http_port
        }
      }

      # The store is on this host volume: the broker runs only where the volume is.
      volume "data" {
        type      = "host"
        source    = group.value.volume
        read_only = false
      }

      # A broker is pinned to its data: restart it in place, forever (20 restarts take longer
      # than the interval), and never reschedule it elsewhere.
      restart {
        attempts = 20
        interval = "10m"
        delay    = var.restart_delay
        mode     = "delay"
      }

      reschedule {
        attempts  = 0
        unlimited = false
      }

      # A client cut off from the Nomad servers keeps its broker running for an hour (the pair
      # fails over by itself) and the original allocation is kept when the client returns. A
      # replacement could only be placed where this member's host volume is, so none starts
      # elsewhere. (max_client_disconnect is the Nomad 1.6 form, the open-source release
      # the tests run on; 1.8 deprecated it for the `disconnect` block.)
      max_client_disconnect = "1h"

      # Registers the broker before each start of the allocation; a broker already in the
      # group (whatever its role now) is left as it is.
      task "register" {
        driver = var.driver
        user   = var.user

        lifecycle {
          hook    = "prestart"
          sidecar = false
        }

        # The metaserver may not be up yet: try again soon.
        restart {
          attempts = 120
          delay    = "5s"
        }

        config {
          command = var.qmq_binary
          args = [
            "tools", "AddBroker", "--ifAbsent",
            "--metaserver=${local.tools_metaserver}",
            "--brokerGroup=${var.broker_group}",
            "--role=${group.value.role}",
            # The broker identifies itself to the metaserver by os.Hostname() and broker.port;
            # Nomad's unique.hostname is the same name.
            "--hostname=${attr.unique.hostname}",
            "--ip=${NOMAD_IP_broker}",
            "--servePort=${NOMAD_PORT_broker}",
            "--syncPort=${NOMAD_PORT_sync}",
          ]
        }

        env {
          CONSUL_HTTP_ADDR = var.consul_address
        }

        # The token reaches qmq tools through its environment (QMQ_TOOLS_TOKEN), never its command
        # line: from the admin_token variable, or else from the job's Nomad variable, which keeps it
        # out of the job too (the task waits until that variable exists).
        template {
          destination = "secrets/tools.env"
          env         = true
          data        = var.admin_token != "" ? "QMQ_TOOLS_TOKEN=${var.admin_token}\n" : "{{ with nomadVar \"nomad/jobs/qmq-broker-${var.broker_group}\" }}QMQ_TOOLS_TOKEN={{ .admin_token }}{{ end }}\n"
        }

        resources {
          cpu    = 100
          memory = 64
        }
      }

      task "broker" {
        driver       = var.driver
        user         = var.user
        kill_timeout = "30s"

        config {
          command = var.qmq_binary
          args = concat(["broker", "--conf", "${NOMAD_TASK_DIR}"], local.config_args, [
            "--set", "broker.port=${NOMAD_PORT_broker}",
            "--set", "sync.port=${NOMAD_PORT_sync}",
            "--set", "broker.http.port=${NOMAD_PORT_http}",
            "--set", "broker.advertise.ip=${NOMAD_IP_broker}",
            "--set", "store.root=${group.value.store_root}",
            "--set", "sync.secret.file=${NOMAD_SECRETS_DIR}/sync.secret",
          ])
        }

        # The sync secret reaches the broker as a file in secrets/, never on its command line: from
        # the sync_secret variable, or else from the job's Nomad variable (like admin_token above).
        template {
          destination = "secrets/sync.secret"
          data        = var.sync_secret != "" ? "${var.sync_secret}\n" : "{{ with nomadVar \"nomad/jobs/qmq-broker-${var.broker_group}\" }}{{ .sync_secret }}{{ end }}\n"
        }

        # raw_exec mounts nothing: the store is then written straight to store_root on the host.
        dynamic "volume_mount" {
          for_each = var.driver == "raw_exec" ? [] : ["data"]
          content {
            volume      = volume_mount.value
            destination = group.value.store_root
            read_only   = false
          }
        }

        env {
          CONSUL_HTTP_ADDR = var.consul_address
        }

        resources {
          cpu    = var.cpu
          memory = var.memory
        }
      }
    }
  }
}
